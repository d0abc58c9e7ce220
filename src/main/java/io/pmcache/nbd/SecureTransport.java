package io.pmcache.nbd;

import java.io.IOException;
import java.nio.channels.Channel;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A transport that encrypts, set up by {@code NBD_OPT_STARTTLS}: X.509 with the JDK's SSLEngine
 * ({@link TlsTransport}) or pre-shared keys with Bouncy Castle ({@link PskTransport}). The handshake
 * code does not care which; {@link TlsConfig#newTransport} picks it.
 */
sealed interface SecureTransport extends Transport permits TlsTransport, PskTransport {

    /**
     * Runs the server's side of the TLS handshake, blocking (bounded by the caller's deadline, which
     * closes the socket). A failed handshake sends the client TLS's alert when it can and throws
     * {@link javax.net.ssl.SSLException} with the reason.
     */
    void handshake() throws IOException;

    /** What the handshake agreed on, for the log: protocol and cipher suite (and the PSK user). */
    String describe();

    @Override
    default boolean secure() {
        return true;
    }

    /** Sends TLS's close_notify alert (the caller holds the transport's writer lock). */
    interface CloseNotify {
        void send() throws IOException;
    }

    /**
     * Sends close_notify unless a writer holds {@code writeLock} (it may be stuck on a full socket,
     * and the caller must not wait for it). Never throws: the stream ends either way.
     */
    static void closeNotifyIfIdle(ReentrantLock writeLock, CloseNotify alert) {
        if (writeLock.tryLock()) {
            try {
                alert.send();
            } catch (IOException | RuntimeException ignored) {
                // the socket's close or half-close that follows ends the stream either way
            } finally {
                writeLock.unlock();
            }
        }
    }

    /** Closes the socket, ignoring a failure: the connection is over either way. */
    static void closeQuietly(Channel ch) {
        try {
            ch.close();
        } catch (IOException ignored) {
            // as documented
        }
    }
}
