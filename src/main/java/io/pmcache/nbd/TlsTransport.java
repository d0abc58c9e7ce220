package io.pmcache.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.util.concurrent.locks.ReentrantLock;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult;
import javax.net.ssl.SSLEngineResult.HandshakeStatus;
import javax.net.ssl.SSLException;

/**
 * TLS over a connection's socket with the JDK's {@link SSLEngine}, in blocking style.
 *
 * <h2>Buffers</h2>
 * Bounded and allocated once per connection (sizes from the session, ~16 KiB per record):
 * {@link #netIn} holds ciphertext read from the socket and not yet decrypted; {@link #appIn} holds
 * at most one decrypted record not yet handed out; {@link #netOut} holds up to
 * {@link #NET_OUT_RECORDS} encrypted records waiting to be sent. A read decrypts straight into the
 * caller's buffer when it has room for a whole record (the connection's 256 KiB input buffer
 * usually has), else through {@link #appIn}; a write encrypts from the caller's buffers (several at
 * once, like a gathering write) into {@link #netOut}.
 *
 * <h2>Threads</h2>
 * The {@link Transport} contract: one reader and one writer at a time, concurrently. SSLEngine
 * allows {@code wrap} and {@code unwrap} from two threads at once (the JDK's engine serialises the
 * crypto on an internal lock, never across socket I/O), so a reader blocked on the socket never
 * holds up the writer, except when decrypting a record makes the engine answer (a TLS 1.3 KeyUpdate, the peer's
 * close_notify): the reader then sends the answer under {@link #writeLock}, which every write holds.
 * Invariants: {@link #netIn} and {@link #appIn} are in read mode and touched by the reader only;
 * {@link #netOut} is empty (write mode) whenever {@link #writeLock} is free.
 */
final class TlsTransport implements SecureTransport {
    /** Records encrypted before one socket write (4 x ~16 KiB). */
    static final int NET_OUT_RECORDS = 4;
    private static final ByteBuffer[] NOTHING = {ByteBuffer.allocate(0)};

    private final SocketStream ch;
    private final SSLEngine engine;
    private final ReentrantLock writeLock = new ReentrantLock();
    private ByteBuffer netIn;
    private ByteBuffer appIn;
    private ByteBuffer netOut;
    /** A single-buffer write's array, reused (guarded by {@link #writeLock}). */
    private final ByteBuffer[] one = new ByteBuffer[1];
    /** The peer closed (close_notify or EOF): reads return -1 (reader-owned). */
    private boolean inputDone;

    TlsTransport(SocketStream ch, SSLEngine engine) {
        this.ch = ch;
        this.engine = engine;
        int packet = engine.getSession().getPacketBufferSize();
        this.netIn = ByteBuffer.allocateDirect(packet).flip();
        this.appIn = ByteBuffer.allocateDirect(engine.getSession().getApplicationBufferSize()).flip();
        this.netOut = ByteBuffer.allocateDirect(NET_OUT_RECORDS * packet);
    }

    /**
     * Runs the TLS handshake, blocking (bounded by the caller's deadline, which closes the socket):
     * the server's side or the client's, as the engine's mode says (the NBD server after it
     * acknowledged STARTTLS, the backing device's NBD client after the server did). A failed
     * handshake (say, a certificate from another CA) sends the peer TLS's alert when it can and
     * throws {@link SSLException}.
     */
    @Override
    public void handshake() throws IOException {
        try {
            engine.beginHandshake();
            while (true) {
                switch (engine.getHandshakeStatus()) {
                    case NEED_TASK -> runTasks();
                    case NEED_WRAP -> send(NOTHING, 0, 1);
                    case NEED_UNWRAP, NEED_UNWRAP_AGAIN -> unwrapHandshake();
                    case FINISHED, NOT_HANDSHAKING -> {
                        return;
                    }
                }
            }
        } catch (SSLException e) {
            sendAlertQuietly();
            throw e;
        }
    }

    /** What the handshake agreed on, for the log: protocol and cipher suite. */
    @Override
    public String describe() {
        return engine.getSession().getProtocol() + " " + engine.getSession().getCipherSuite();
    }

    private void unwrapHandshake() throws IOException {
        if (!netIn.hasRemaining() && engine.getHandshakeStatus() != HandshakeStatus.NEED_UNWRAP_AGAIN) {
            readNet("during the TLS handshake");
        }
        appIn.compact();
        SSLEngineResult r;
        try {
            r = engine.unwrap(netIn, appIn);
        } finally {
            appIn.flip();
        }
        switch (r.getStatus()) {
            case BUFFER_UNDERFLOW -> readNet("during the TLS handshake");
            case BUFFER_OVERFLOW -> appIn = grow(appIn, engine.getSession().getApplicationBufferSize());
            case CLOSED -> throw new SSLException("the peer closed TLS during the handshake");
            case OK -> {
            }
        }
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        if (appIn.hasRemaining()) {
            return drainAppIn(dst);
        }
        int total = 0;
        while (dst.hasRemaining() && !inputDone) {
            if (!netIn.hasRemaining()) {
                if (total > 0) {
                    return total; // do not block with data in hand
                }
                if (!readNetOrEof()) {
                    break;
                }
                continue;
            }
            boolean direct = dst.remaining() >= appIn.capacity();
            ByteBuffer target = direct ? dst : appIn.clear();
            SSLEngineResult r;
            try {
                r = engine.unwrap(netIn, target);
            } finally {
                if (!direct) {
                    appIn.flip();
                }
            }
            afterUnwrap(r.getHandshakeStatus());
            switch (r.getStatus()) {
                case OK -> {
                    if (direct) {
                        total += r.bytesProduced();
                    } else if (appIn.hasRemaining()) {
                        return total + drainAppIn(dst);
                    }
                }
                case BUFFER_UNDERFLOW -> {
                    if (total > 0) {
                        return total;
                    }
                    if (netIn.limit() == netIn.capacity() && netIn.position() == 0) {
                        netIn = grow(netIn, engine.getSession().getPacketBufferSize());
                    }
                    if (!readNetOrEof()) {
                        break;
                    }
                }
                case BUFFER_OVERFLOW -> appIn = grow(appIn, engine.getSession().getApplicationBufferSize());
                case CLOSED -> inputDone = true; // close_notify: answered in afterUnwrap
            }
        }
        return total > 0 || !inputDone ? total : -1;
    }

    private int drainAppIn(ByteBuffer dst) {
        int n = Math.min(appIn.remaining(), dst.remaining());
        int limit = appIn.limit();
        appIn.limit(appIn.position() + n);
        dst.put(appIn);
        appIn.limit(limit);
        return n;
    }

    /** Post-handshake messages: run the engine's tasks, send what it must answer. */
    private void afterUnwrap(HandshakeStatus status) throws IOException {
        HandshakeStatus s = status;
        while (true) {
            if (s == HandshakeStatus.NEED_TASK) {
                runTasks();
            } else if (s == HandshakeStatus.NEED_WRAP) {
                if (engine.isOutboundDone()) {
                    return;
                }
                send(NOTHING, 0, 1);
            } else {
                return;
            }
            s = engine.getHandshakeStatus();
        }
    }

    /** Reads more ciphertext; false (and input done) at the end of the stream. */
    private boolean readNetOrEof() throws IOException {
        netIn.compact();
        int n;
        try {
            n = ch.read(netIn);
        } finally {
            netIn.flip();
        }
        if (n < 0) {
            inputDone = true; // no close_notify: a client that just hangs up (NBD_CMD_DISC allows it)
            return false;
        }
        return true;
    }

    private void readNet(String when) throws IOException {
        if (netIn.limit() == netIn.capacity() && netIn.position() == 0) {
            netIn = grow(netIn, engine.getSession().getPacketBufferSize());
        }
        if (!readNetOrEof()) {
            throw new EOFException("peer closed the connection " + when);
        }
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        writeLock.lock(); // reentrant: send takes it again
        try {
            one[0] = src;
            int n = src.remaining();
            send(one, 0, 1);
            return n;
        } finally {
            one[0] = null;
            writeLock.unlock();
        }
    }

    @Override
    public long write(ByteBuffer[] srcs) throws IOException {
        return write(srcs, 0, srcs.length);
    }

    /** Encrypts and sends every byte of {@code srcs} (blocking), then returns their count. */
    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
        long before = remaining(srcs, offset, length);
        send(srcs, offset, length);
        return before - remaining(srcs, offset, length);
    }

    /**
     * Under the write lock: encrypts {@code srcs} record by record into {@link #netOut}, sending it
     * whenever it cannot take another record, and any handshake or alert message the engine has
     * pending; returns with everything sent.
     */
    private void send(ByteBuffer[] srcs, int offset, int length) throws IOException {
        writeLock.lock();
        try {
            while (true) {
                boolean data = remaining(srcs, offset, length) > 0;
                if (!data && engine.getHandshakeStatus() != HandshakeStatus.NEED_WRAP) {
                    break;
                }
                int packet = engine.getSession().getPacketBufferSize();
                if (netOut.remaining() < packet) {
                    if (netOut.position() > 0) {
                        flushNetOut();
                    } else {
                        netOut = ByteBuffer.allocateDirect(NET_OUT_RECORDS * packet);
                    }
                }
                SSLEngineResult r = engine.wrap(srcs, offset, length, netOut);
                if (r.getHandshakeStatus() == HandshakeStatus.NEED_TASK) {
                    runTasks();
                }
                if (r.getStatus() == SSLEngineResult.Status.CLOSED) {
                    flushNetOut();
                    if (data) {
                        throw new ClosedChannelException(); // TLS closed: no more data can go out
                    }
                    break;
                }
                if (r.getStatus() == SSLEngineResult.Status.OK && r.bytesProduced() == 0 && r.bytesConsumed() == 0
                        && r.getHandshakeStatus() != HandshakeStatus.NEED_TASK) {
                    if (data) { // never claim data as sent that was not: fail the connection instead
                        throw new SSLException("TLS will not send data now (handshake status "
                                + r.getHandshakeStatus() + ")");
                    }
                    break; // nothing to send (the engine waits for the peer)
                }
                // BUFFER_OVERFLOW: the next turn sends or enlarges netOut
            }
            flushNetOut();
        } finally {
            netOut.clear(); // a failed send leaves nothing half-sent behind for the next writer
            writeLock.unlock();
        }
    }

    private void flushNetOut() throws IOException {
        netOut.flip();
        try {
            while (netOut.hasRemaining()) {
                ch.write(netOut);
            }
        } finally {
            netOut.clear();
        }
    }

    private void runTasks() {
        Runnable task;
        while ((task = engine.getDelegatedTask()) != null) {
            task.run();
        }
    }

    private void sendAlertQuietly() {
        try {
            if (engine.getHandshakeStatus() == HandshakeStatus.NEED_WRAP) {
                send(NOTHING, 0, 1);
            }
        } catch (IOException | RuntimeException ignored) {
            // the handshake failed already; the alert is a courtesy
        }
    }

    private static ByteBuffer grow(ByteBuffer b, int atLeast) {
        ByteBuffer bigger = ByteBuffer.allocateDirect(Math.max(atLeast, b.capacity() * 2));
        bigger.put(b).flip();
        return bigger;
    }

    private static long remaining(ByteBuffer[] srcs, int offset, int length) {
        long n = 0;
        for (int i = offset; i < offset + length; i++) {
            n += srcs[i].remaining();
        }
        return n;
    }

    @Override
    public boolean isOpen() {
        return ch.isOpen();
    }

    /** close_notify, if no writer is busy (one that is would be stuck on a full socket), then half-close. */
    @Override
    public void shutdownOutput() throws IOException {
        SecureTransport.closeNotifyIfIdle(writeLock, this::closeNotify);
        ch.shutdownOutput();
    }

    /** close_notify, if no writer is busy (one that is would be stuck on a full socket), then close. */
    @Override
    public void closeGracefully() {
        SecureTransport.closeNotifyIfIdle(writeLock, this::closeNotify);
        SecureTransport.closeQuietly(ch);
    }

    /** Called with {@link #writeLock} held. */
    private void closeNotify() throws IOException {
        engine.closeOutbound();
        send(NOTHING, 0, 1);
    }

    @Override
    public void close() throws IOException {
        ch.close();
    }
}
