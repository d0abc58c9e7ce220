package io.pmcache.nbd;

import java.io.IOException;

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
}
