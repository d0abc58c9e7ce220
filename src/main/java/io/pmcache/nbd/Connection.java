package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.util.Optional;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One client connection: handshake, then the transmission phase.
 *
 * <h2>Request pipeline</h2>
 * <pre>
 *  socket ──► reader (this connection's thread, the only reader of the socket)
 *               1. read the 28-byte header; bad magic ─► close the connection (ProtocolException)
 *               2. DISC ─► stop reading, let in-flight requests finish, close
 *               3. RequestValidator; refused ─► drop a WRITE payload, error reply, next request
 *               4. InFlightLimiter.acquire(payload bytes)  — blocks while too much is in flight:
 *                  the socket is not read, so the client's sends block (back-pressure)
 *               5. take a pooled direct buffer; for WRITE read the payload straight into it
 *               6. hand (request, buffer) to a virtual thread and go back to 1
 *  virtual thread per request
 *               7. CommandExecutor: device call on a MemorySegment view of the buffer
 *               8. ReplyWriter: one whole reply under the socket's write lock (any order)
 *               9. buffer back to the pool, limiter released
 * </pre>
 * Invariants: only the reader reads the socket; only {@link ReplyWriter} writes it after the
 * handshake; each acquired buffer and limiter permit is released exactly once, by step 9 or by the
 * reader when it fails before step 6.
 *
 * <p>Ending: a clean DISC or EOF at a request boundary waits for in-flight requests, then closes.
 * A protocol violation, a disconnect in the middle of a request, or a failed reply closes the
 * socket at once (in-flight device calls still finish and return their buffers). A rejected WRITE
 * whose payload exceeds {@link #DISCARD_LIMIT} is answered and the connection closed, since
 * reading gigabytes only to drop them would let one client tie up the server.
 */
final class Connection implements Runnable {
    private static final Logger log = LoggerFactory.getLogger(Connection.class);

    /** Largest payload of a refused WRITE that is read and dropped to keep the connection usable. */
    static final long DISCARD_LIMIT = 2L * MAX_PAYLOAD_SIZE;

    private final SocketChannel ch;
    private final String peer;
    private final ConnectionContext ctx;
    private final InFlightLimiter limiter;
    private final Consumer<Connection> onClose;
    private volatile boolean stopping;

    Connection(SocketChannel ch, String peer, ConnectionContext ctx, Consumer<Connection> onClose) {
        this.ch = ch;
        this.peer = peer;
        this.ctx = ctx;
        this.limiter = new InFlightLimiter(ctx.maxInFlightRequests(), ctx.maxInFlightBytes());
        this.onClose = onClose;
    }

    @Override
    public void run() {
        try {
            Optional<Session> session = handshake();
            if (session.isPresent()) {
                Session s = session.get();
                log.debug("{}: transmission (structured replies {}, base:allocation {})", peer,
                        s.structuredReplies(), s.baseAllocation());
                transmit(s);
                log.debug("{}: disconnected", peer);
            } else {
                log.debug("{}: client aborted the handshake", peer);
            }
        } catch (ProtocolException e) {
            ctx.stats().protocolViolation();
            log.info("{}: closing connection: {}", peer, e.getMessage());
            abort();
        } catch (EOFException | ClosedChannelException e) {
            log.debug("{}: {}", peer, stopping ? "closed by server shutdown" : "client disconnected");
            abort();
        } catch (IOException e) {
            log.info("{}: connection failed: {}", peer, e.toString());
            abort();
        } catch (InterruptedException e) {
            abort();
            Thread.currentThread().interrupt();
        } finally {
            finish();
        }
    }

    /** Stops reading requests; in-flight ones finish and are answered. Safe from any thread. */
    void stopReading() {
        stopping = true;
        limiter.cancel();
        try {
            ch.shutdownInput();
        } catch (IOException e) {
            abort();
        }
    }

    /** Closes the socket now; blocked reads and writes on it fail. Safe from any thread. */
    void abort() {
        try {
            ch.close();
        } catch (IOException e) {
            log.debug("{}: close failed: {}", peer, e.toString());
        }
    }

    private Optional<Session> handshake() throws IOException {
        ScheduledFuture<?> deadline = ctx.timer().schedule(() -> {
            log.info("{}: handshake not finished within {}; closing", peer, ctx.handshakeTimeout());
            abort();
        }, ctx.handshakeTimeout().toNanos(), TimeUnit.NANOSECONDS);
        try {
            return new Handshake(ch, ctx.export(), peer).run();
        } finally {
            deadline.cancel(false);
        }
    }

    private void transmit(Session session) throws IOException, InterruptedException {
        RequestValidator validator = new RequestValidator(session);
        ReplyWriter replies = new ReplyWriter(ch, session.structuredReplies());
        CommandExecutor executor = new CommandExecutor(session.export().device(), replies, ctx.stats(), peer);
        ByteBuffer header = ByteBuffer.allocateDirect(REQUEST_HEADER_SIZE);
        while (!stopping) {
            header.clear();
            if (!readHeader(header)) {
                return;
            }
            Request r = Request.decode(header.flip());
            ctx.stats().request(r.type());
            if (r.type() == NBD_CMD_DISC) {
                return;
            }
            Rejection rejection = validator.validate(r);
            if (rejection != null) {
                reject(r, rejection, replies);
                continue;
            }
            long bytes = r.type() == NBD_CMD_READ || r.type() == NBD_CMD_WRITE ? r.length() : 0;
            if (!limiter.acquire(bytes)) {
                return;
            }
            dispatch(r, bytes, executor);
        }
    }

    /** Reads a header; false on EOF before its first byte (a clean disconnect). */
    private boolean readHeader(ByteBuffer header) throws IOException {
        if (ch.read(header) < 0) {
            return false;
        }
        ChannelIO.readFully(ch, header);
        return true;
    }

    private void dispatch(Request r, long bytes, CommandExecutor executor) throws IOException {
        ByteBuffer buf = bytes > 0 ? ctx.buffers().acquire((int) bytes) : null;
        try {
            if (r.hasPayload()) {
                ChannelIO.readFully(ch, buf);
                buf.flip();
            }
            ctx.requests().execute(() -> complete(r, buf, bytes, executor));
        } catch (IOException | RejectedExecutionException e) {
            release(buf, bytes);
            throw e instanceof IOException io ? io : new ClosedChannelException();
        }
    }

    private void complete(Request r, ByteBuffer buf, long bytes, CommandExecutor executor) {
        try {
            executor.execute(r, buf);
        } catch (IOException e) {
            log.debug("{}: reply to {} not sent: {}", peer, r, e.toString());
            abort();
        } finally {
            release(buf, bytes);
        }
    }

    private void release(ByteBuffer buf, long bytes) {
        if (buf != null) {
            ctx.buffers().release(buf);
        }
        limiter.release(bytes);
    }

    private void reject(Request r, Rejection rejection, ReplyWriter replies) throws IOException {
        log.debug("{}: refused {}: {}", peer, r, rejection.message);
        ctx.stats().error(rejection.error);
        boolean payload = r.hasPayload() && r.length() > 0;
        if (payload && r.length() <= DISCARD_LIMIT) {
            ChannelIO.skip(ch, r.length(), ByteBuffer.allocate(64 << 10));
        }
        replies.error(r.handle(), rejection.error, rejection.message);
        if (payload && r.length() > DISCARD_LIMIT) {
            throw new ProtocolException("write of " + r.length() + " bytes is too large to read and drop");
        }
    }

    /** Waits for in-flight requests (their buffers and permits come back), then closes the socket. */
    private void finish() {
        try {
            limiter.awaitIdle(Long.MAX_VALUE);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        abort();
        onClose.accept(this);
    }
}
