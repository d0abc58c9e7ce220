package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
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
 *               6. if nothing else is in flight and the client has sent nothing more yet (a
 *                  non-blocking read of the next header finds no bytes), run steps 7-9 right here
 *                  on the reader (a queue-depth-1 client pays no thread hand-off); otherwise hand
 *                  (request, buffer) to a virtual thread. Go back to 1 (with any header bytes the
 *                  look-ahead read got).
 *  virtual thread per request (or the reader, see 6)
 *               7. CommandExecutor: device call on a MemorySegment view of the buffer
 *               8. ReplyWriter: one whole reply under the socket's write lock (any order)
 *               9. buffer back to the pool, limiter released
 * </pre>
 * Inline requests: a device call that blocks (a slow backing device, a full cache) must not hold
 * up requests the client sends meanwhile, so the server's timer ({@link InlineWatch}, armed only
 * while some request runs inline) checks every millisecond: a request
 * that has run inline for more than {@link #INLINE_TAKEOVER_NANOS} makes the reader's role pass to
 * a new reader thread, which goes on reading the socket; the old thread finishes its request and
 * exits. A run id in {@link #inlineRun} decides who owns the role, so exactly one thread reads.
 *
 * <p>Invariants: only the reader reads the socket; only {@link ReplyWriter} writes it after the
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

    /** After this long, an inline request's reader role is taken over by a new thread. */
    static final long INLINE_TAKEOVER_NANOS = 1_000_000L;
    /** Id of the request running inline on the reader, 0 when none; the timer zeroes it to take over. */
    private final AtomicLong inlineRun = new AtomicLong();
    private volatile long inlineSinceNanos;
    /** Reader-owned (passed on with the role): ids of inline runs, and the transmission state. */
    private long inlineRuns;
    private RequestValidator validator;
    private ReplyWriter replies;
    private CommandExecutor executor;
    private ByteBuffer header;
    private final Set<Thread> threads;

    /** {@code threads}: where the server tracks the threads that read connections (for shutdown). */
    Connection(SocketChannel ch, String peer, ConnectionContext ctx, Set<Thread> threads, Consumer<Connection> onClose) {
        this.threads = threads;
        this.ch = ch;
        this.peer = peer;
        this.ctx = ctx;
        this.limiter = new InFlightLimiter(ctx.maxInFlightRequests(), ctx.maxInFlightBytes());
        this.onClose = onClose;
    }

    @Override
    public void run() {
        boolean handedOver = false;
        try {
            Optional<Session> session = handshake();
            if (session.isPresent()) {
                Session s = session.get();
                log.debug("{}: transmission (structured replies {}, base:allocation {})", peer,
                        s.structuredReplies(), s.baseAllocation());
                validator = new RequestValidator(s);
                replies = new ReplyWriter(ch, s.structuredReplies());
                executor = new CommandExecutor(s.export().device(), replies, ctx.stats(), peer);
                header = ByteBuffer.allocateDirect(REQUEST_HEADER_SIZE);
                handedOver = transmit();
            } else {
                log.debug("{}: client aborted the handshake", peer);
            }
        } catch (Exception e) {
            failed(e);
        } finally {
            ended(handedOver);
        }
    }

    /** The reader's loop on a new thread after a takeover. */
    private void continueReading() {
        boolean handedOver = false;
        try {
            handedOver = transmit();
        } catch (Exception e) {
            failed(e);
        } finally {
            ended(handedOver);
        }
    }

    private void ended(boolean handedOver) {
        if (handedOver) {
            threads.remove(Thread.currentThread());
        } else {
            log.debug("{}: disconnected", peer);
            finish();
        }
    }

    /**
     * Called by the server's timer ({@link InlineWatch}): if the request running inline on the
     * reader has taken longer than {@link #INLINE_TAKEOVER_NANOS}, a new thread becomes the reader.
     * True if a request still runs inline here (not old enough yet).
     */
    boolean takeOverSlowInline(long now) {
        long run = inlineRun.get();
        if (run == 0) {
            return false;
        }
        if (now - inlineSinceNanos < INLINE_TAKEOVER_NANOS) {
            return true;
        }
        if (!inlineRun.compareAndSet(run, 0)) {
            return inlineRun.get() != 0;
        }
        ctx.stats().inlineTakeover();
        Thread t = Thread.ofPlatform().daemon().name(peer).unstarted(this::continueReading);
        threads.add(t);
        t.start();
        return false;
    }

    boolean runsInline() {
        return inlineRun.get() != 0;
    }

    private void failed(Exception ex) {
        try {
            throw ex;
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
        } catch (Exception e) {
            log.error("{}: connection failed unexpectedly", peer, e);
            abort();
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

    /** Reads and dispatches requests; true if the reader's role was handed over to a new thread. */
    private boolean transmit() throws IOException, InterruptedException {
        while (!stopping) {
            if (!readHeader(header)) {
                return false;
            }
            Request r = Request.decode(header.flip());
            ctx.stats().request(r.type());
            if (r.type() == NBD_CMD_DISC) {
                return false;
            }
            header.clear();
            Rejection rejection = validator.validate(r);
            if (rejection != null) {
                reject(r, rejection, replies);
                continue;
            }
            long bytes = r.type() == NBD_CMD_READ || r.type() == NBD_CMD_WRITE ? r.length() : 0;
            if (!limiter.acquire(bytes)) {
                return false;
            }
            if (dispatch(r, bytes, header)) {
                return true;
            }
        }
        return false;
    }

    /**
     * Completes a header in {@code header} (which may already hold bytes from the look-ahead);
     * false on EOF before its first byte (a clean disconnect).
     */
    private boolean readHeader(ByteBuffer header) throws IOException {
        if (header.position() == 0 && ch.read(header) < 0) {
            return false;
        }
        ChannelIO.readFully(ch, header);
        return true;
    }

    /** Runs or hands off one request; true if it ran inline and the reader's role was taken over meanwhile. */
    private boolean dispatch(Request r, long bytes, ByteBuffer nextHeader) throws IOException {
        ByteBuffer buf = bytes > 0 ? ctx.buffers().acquire((int) bytes) : null;
        boolean inline;
        try {
            if (r.hasPayload()) {
                ChannelIO.readFully(ch, buf);
                buf.flip();
            }
            inline = limiter.inFlight() == 1 && !clientSentMore(nextHeader);
            if (!inline) {
                ctx.requests().execute(() -> complete(r, buf, bytes, executor));
            }
        } catch (IOException | RejectedExecutionException e) {
            release(buf, bytes);
            throw e instanceof IOException io ? io : new ClosedChannelException();
        }
        if (!inline) {
            return false;
        }
        long run = ++inlineRuns;
        inlineSinceNanos = System.nanoTime();
        inlineRun.set(run);
        ctx.inlineWatch().inlineStarted();
        ctx.stats().inlineRequest();
        complete(r, buf, bytes, executor);
        return !inlineRun.compareAndSet(run, 0);
    }

    /**
     * Reads, without blocking, whatever the client has already sent of its next request header into
     * {@code nextHeader}; true if that is anything (or end of stream, which the next
     * {@link #readHeader} reports), i.e. the client is pipelining and the current request should
     * run concurrently. Called only while nothing else is in flight, so no reply is being written
     * while the channel is briefly non-blocking.
     */
    private boolean clientSentMore(ByteBuffer nextHeader) throws IOException {
        synchronized (ch.blockingLock()) {
            ch.configureBlocking(false);
            try {
                return ch.read(nextHeader) != 0;
            } finally {
                ch.configureBlocking(true);
            }
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
