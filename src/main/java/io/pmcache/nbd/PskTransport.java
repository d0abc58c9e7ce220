package io.pmcache.nbd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.util.concurrent.locks.ReentrantLock;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLHandshakeException;
import org.bouncycastle.tls.TlsServerProtocol;

/**
 * TLS with pre-shared keys over a connection's socket: Bouncy Castle's {@link TlsServerProtocol} in
 * its non-blocking mode (we move the bytes: {@code offerInput} takes ciphertext read from the socket,
 * {@code readInput} gives the plaintext, {@code writeApplicationData} encrypts, {@code readOutput}
 * gives what to send), driven in blocking style like {@link TlsTransport}. The policy (versions,
 * suites, keys) is {@link PskServer}.
 *
 * <h2>Threads</h2>
 * The {@link Transport} contract: one reader and one writer at a time, concurrently. Bouncy Castle's
 * protocol object is not safe for that (reads and writes share its output queue), so every call to
 * it is made under {@link #engine}, and {@link #engine} is never held across socket I/O: a reader
 * blocked on the socket never holds up the writer, and a writer blocked on a full socket never holds
 * up the reader (which may be what the client waits for). Ciphertext leaves in the order the protocol
 * produced it because it is taken out of the protocol ({@code readOutput}) and sent under
 * {@link #writeLock}, and only there. The reader sends what decrypting made the protocol answer (a TLS
 * 1.3 KeyUpdate, the peer's close_notify) under {@link #writeLock} too.
 *
 * <h2>Buffers</h2>
 * Per connection, bounded: {@link #netIn} (ciphertext read from the socket, handed to the protocol at
 * once), {@link #plainOut} (a caller's plaintext copied out for the protocol, {@link #CHUNK} bytes at a
 * time) and {@link #netOut} (the encrypted chunk, sent before the next is made). The protocol holds
 * decrypted data not yet read; the reader reads the socket only when that is empty, so it stays below
 * one {@link #netIn} of records.
 */
final class PskTransport implements SecureTransport {
    /** Plaintext encrypted before one socket write: four full TLS records. */
    static final int CHUNK = 4 * 16384;
    /** Room for a chunk's records with their headers, tags and padding, and a pending message. */
    private static final int NET_OUT = CHUNK + 4096;

    private final SocketStream ch;
    private final PskServer server;
    private final TlsServerProtocol tls = new TlsServerProtocol(); // non-blocking mode
    /** Guards every call to {@link #tls}; never held across socket I/O. */
    private final Object engine = new Object();
    /** Held by whoever takes ciphertext out of {@link #tls} until it is sent. */
    private final ReentrantLock writeLock = new ReentrantLock();
    /** Reader-owned. */
    private final ByteBuffer netIn = ByteBuffer.allocate(CHUNK + 4096);
    /** Guarded by {@link #writeLock}. */
    private final byte[] plainOut = new byte[CHUNK];
    private ByteBuffer netOut = ByteBuffer.allocateDirect(NET_OUT);
    /** The peer closed (close_notify or EOF): reads return -1 once the data is read (reader-owned). */
    private boolean inputDone;

    PskTransport(SocketStream ch, PskServer server) {
        this.ch = ch;
        this.server = server;
    }

    @Override
    public void handshake() throws IOException {
        try {
            synchronized (engine) {
                tls.accept(server);
            }
            flushOutput();
            while (true) {
                synchronized (engine) {
                    if (tls.isClosed()) {
                        throw new SSLHandshakeException("the client closed TLS during the handshake");
                    }
                    if (tls.isConnected()) {
                        return;
                    }
                }
                if (!readNet()) {
                    throw new SSLHandshakeException("the client closed the connection during the TLS handshake"
                            + (server.user() != null ? " (PSK user '" + server.user() + "')" : ""));
                }
                offer();
            }
        } catch (SSLException e) {
            throw e;
        } catch (IOException e) {
            sendQuietly();
            String why = server.failure() != null ? server.failure() : e.getMessage();
            throw new SSLHandshakeException("TLS-PSK: " + why);
        }
    }

    @Override
    public String describe() {
        return server.describe() + ", PSK user '" + server.user() + "'";
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        if (!dst.hasRemaining()) {
            return 0;
        }
        while (true) {
            synchronized (engine) {
                int available = tls.getAvailableInputBytes();
                if (available > 0) {
                    return tls.readInput(dst, Math.min(available, dst.remaining()));
                }
                if (tls.isClosed()) {
                    inputDone = true;
                }
            }
            if (inputDone || !readNet()) {
                inputDone = true;
                return -1;
            }
            offer();
        }
    }

    /** Reads ciphertext into {@link #netIn}, blocking; false at the end of the stream. */
    private boolean readNet() throws IOException {
        netIn.clear();
        return ch.read(netIn) >= 0; // blocking: at least one byte, or the end

    }

    /** Hands {@link #netIn} to the protocol; sends what it answers (alerts, handshake, KeyUpdate). */
    private void offer() throws IOException {
        boolean answer;
        try {
            synchronized (engine) {
                tls.offerInput(netIn.array(), 0, netIn.position());
                answer = tls.getAvailableOutputBytes() > 0;
            }
        } catch (IOException e) {
            sendQuietly(); // the alert Bouncy Castle queued
            throw e;
        }
        if (answer) {
            flushOutput();
        }
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        int n = src.remaining();
        writeLock.lock();
        try {
            writeOne(src);
        } finally {
            writeLock.unlock();
        }
        return n;
    }

    @Override
    public long write(ByteBuffer[] srcs) throws IOException {
        return write(srcs, 0, srcs.length);
    }

    /** Encrypts and sends every byte of {@code srcs} (blocking), then returns their count. */
    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
        long n = 0;
        writeLock.lock();
        try {
            for (int i = offset; i < offset + length; i++) {
                n += srcs[i].remaining();
                writeOne(srcs[i]);
            }
        } finally {
            writeLock.unlock();
        }
        return n;
    }

    /** Under the write lock: encrypts {@code src} chunk by chunk, each sent before the next is made. */
    private void writeOne(ByteBuffer src) throws IOException {
        while (src.hasRemaining()) {
            int n = Math.min(src.remaining(), plainOut.length);
            src.get(plainOut, 0, n);
            synchronized (engine) {
                if (tls.isClosed()) {
                    throw new ClosedChannelException(); // TLS closed: no more data can go out
                }
                tls.writeApplicationData(plainOut, 0, n);
                takeOutput();
            }
            sendNetOut();
        }
    }

    /** Sends whatever the protocol has for the peer, under the write lock. */
    private void flushOutput() throws IOException {
        writeLock.lock();
        try {
            synchronized (engine) {
                takeOutput();
            }
            sendNetOut();
        } finally {
            writeLock.unlock();
        }
    }

    /** Under both locks: moves the protocol's pending ciphertext into {@link #netOut}. */
    private void takeOutput() {
        int n = tls.getAvailableOutputBytes();
        if (n > netOut.remaining()) {
            ByteBuffer bigger = ByteBuffer.allocateDirect(netOut.position() + n);
            netOut.flip();
            netOut = bigger.put(netOut);
        }
        tls.readOutput(netOut, n);
    }

    /** Under the write lock: writes {@link #netOut} to the socket, blocking. */
    private void sendNetOut() throws IOException {
        netOut.flip();
        try {
            while (netOut.hasRemaining()) {
                ch.write(netOut);
            }
        } finally {
            netOut.clear();
        }
    }

    private void sendQuietly() {
        try {
            flushOutput();
        } catch (IOException | RuntimeException ignored) {
            // the connection fails anyway; the alert is a courtesy
        }
    }

    @Override
    public boolean isOpen() {
        return ch.isOpen();
    }

    /** close_notify, if no writer is busy (one that is would be stuck on a full socket), then close. */
    @Override
    public void closeGracefully() {
        SecureTransport.closeNotifyIfIdle(writeLock, this::closeNotify);
        SecureTransport.closeQuietly(ch);
    }

    /** Called with {@link #writeLock} held. */
    private void closeNotify() throws IOException {
        synchronized (engine) {
            tls.close();
            takeOutput();
        }
        sendNetOut();
    }

    @Override
    public void close() throws IOException {
        ch.close();
    }
}
