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
 *               1. take the 28-byte header from the input buffer, which each socket read fills
 *                  with as much as the client has sent (a pipelining client's next requests);
 *                  bad magic ─► close the connection (ProtocolException)
 *               2. DISC ─► stop reading, let in-flight requests finish, close
 *               3. RequestValidator; refused ─► drop a WRITE payload, error reply, next request
 *               4. InFlightLimiter.acquire(payload bytes)  — blocks while too much is in flight:
 *                  the socket is not read, so the client's sends block (back-pressure)
 *               5. take a pooled direct buffer; for WRITE copy the payload into it (from the
 *                  input buffer, the rest straight from the socket)
 *               6. small requests (and any request while nothing else is in flight or buffered)
 *                  run steps 7-9 right here on the reader, their replies coalesced and sent
 *                  before the reader next blocks on the socket; others go to a virtual thread,
 *                  as do all requests for a while after an inline one was slow. Go back to 1.
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
    /**
     * When half of the last 8 inline requests took longer than this (they wait for something,
     * e.g. read misses on a disk), pipelined requests run on their own threads...
     */
    static final long SLOW_INLINE_NANOS = 50_000L;
    /** ...for this long, after which running inline is tried again. */
    static final long HAND_OFF_NANOS = 20_000_000L;
    /** Requests with payloads up to this size run inline even while others are pipelined. */
    static final long INLINE_MAX_BYTES = 128 << 10;
    /** Socket reads take up to this much at once (a pipelining client's next requests). */
    static final int IN_CAPACITY = 256 << 10;
    /** Id of the request running inline on the reader, 0 when none; the timer zeroes it to take over. */
    private final AtomicLong inlineRun = new AtomicLong();
    private volatile long inlineSinceNanos;
    /** Reader-owned (passed on with the role): ids of inline runs, and the transmission state. */
    private long inlineRuns;
    private RequestValidator validator;
    private ReplyWriter replies;
    private CommandExecutor executor;
    /** Bytes read from the socket and not yet consumed, in read mode (reader-owned). */
    private ByteBuffer in;
    /** Pipelined requests are not run inline before this instant (inline ones were slow). */
    private long handOffUntilNanos;
    /** One bit per recent inline request (newest lowest): set if it was slow. */
    private int slowInline;
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
                in = ByteBuffer.allocateDirect(IN_CAPACITY).flip();
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
            // The overtaken request may still be reading its payload from the old input buffer.
            in = ByteBuffer.allocateDirect(IN_CAPACITY).put(in).flip();
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
            flushQuietly(); // answers to the requests before the violation
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
        replies.deferFor(Thread.currentThread());
        while (!stopping) {
            if (!fill(REQUEST_HEADER_SIZE)) {
                return false;
            }
            Request r = Request.decode(in);
            ctx.stats().request(r.type());
            if (r.type() == NBD_CMD_DISC) {
                return false;
            }
            Rejection rejection = validator.validate(r);
            if (rejection != null) {
                reject(r, rejection, replies);
                continue;
            }
            long bytes = r.type() == NBD_CMD_READ || r.type() == NBD_CMD_WRITE ? r.length() : 0;
            if (!limiter.tryAcquire(bytes)) {
                replies.flush(); // the client may wait for these before it lets anything finish
                if (!limiter.acquire(bytes)) {
                    return false;
                }
            }
            if (dispatch(r, bytes)) {
                return true;
            }
        }
        return false;
    }

    /**
     * Makes at least {@code n} unconsumed bytes available in {@link #in}, reading the socket as
     * needed (after sending coalesced replies, since the read may block); false on EOF before any
     * byte of them (a clean disconnect at a request boundary), {@link EOFException} after some.
     */
    private boolean fill(int n) throws IOException {
        if (in.remaining() >= n) {
            return true;
        }
        boolean none = !in.hasRemaining();
        in.compact();
        try {
            replies.flush();
            while (in.position() < n) {
                if (ch.read(in) < 0) {
                    if (none && in.position() == 0) {
                        return false;
                    }
                    throw new EOFException("peer closed the connection in the middle of a request");
                }
            }
        } finally {
            in.flip();
        }
        return true;
    }

    /** Fills {@code dst} to its limit: first from what was already read, then from the socket. */
    private void readPayload(ByteBuffer dst) throws IOException {
        int n = Math.min(in.remaining(), dst.remaining());
        if (n > 0) {
            int limit = in.limit();
            in.limit(in.position() + n);
            dst.put(in);
            in.limit(limit);
        }
        if (dst.hasRemaining()) {
            replies.flush();
            ChannelIO.readFully(ch, dst);
        }
    }

    /** Reads and drops {@code count} payload bytes. */
    private void skipPayload(long count) throws IOException {
        int n = (int) Math.min(in.remaining(), count);
        in.position(in.position() + n);
        if (count > n) {
            replies.flush();
            ChannelIO.skip(ch, count - n, ByteBuffer.allocate(64 << 10));
        }
    }

    /**
     * Runs or hands off one request; true if it ran inline and the reader's role was taken over
     * meanwhile. Inline (on the reader, reply coalesced): any request while nothing else is in
     * flight or buffered, and requests with small payloads unless inline requests were often slow
     * (read misses on a disk, a full cache), which sends pipelined requests to their own
     * virtual threads for {@link #HAND_OFF_NANOS} so that they can wait concurrently.
     */
    private boolean dispatch(Request r, long bytes) throws IOException {
        long payload = r.hasPayload() ? bytes : 0;
        boolean alone = limiter.inFlight() == 1 && in.remaining() <= payload;
        boolean inline = alone || (bytes <= INLINE_MAX_BYTES && System.nanoTime() - handOffUntilNanos >= 0);
        ByteBuffer buf;
        boolean pooled;
        if (inline && payload > 0 && in.remaining() >= payload) {
            // The payload is already in the input buffer: the device reads it from there. Valid
            // until the next fill, which comes after this request (or, after a takeover, on a
            // fresh input buffer: see continueReading).
            buf = in.slice(in.position(), (int) payload);
            in.position(in.position() + (int) payload);
            pooled = false;
        } else {
            buf = bytes > 0 ? ctx.buffers().acquire((int) bytes) : null;
            pooled = buf != null;
        }
        try {
            if (pooled && r.hasPayload()) {
                readPayload(buf);
                buf.flip();
            }
            if (!inline) {
                ctx.requests().execute(() -> complete(r, buf, pooled, bytes, executor));
            }
        } catch (IOException | RejectedExecutionException e) {
            release(buf, pooled, bytes);
            throw e instanceof IOException io ? io : new ClosedChannelException();
        }
        if (!inline) {
            return false;
        }
        long run = ++inlineRuns;
        long start = System.nanoTime();
        inlineSinceNanos = start;
        inlineRun.set(run);
        ctx.inlineWatch().inlineStarted();
        ctx.stats().inlineRequest();
        complete(r, buf, pooled, bytes, executor);
        if (!inlineRun.compareAndSet(run, 0)) {
            return true;
        }
        // Several, not one: a thread preempted on a busy machine or a GC pause is no slow request.
        long end = System.nanoTime();
        slowInline = (slowInline << 1 | (end - start > SLOW_INLINE_NANOS ? 1 : 0)) & 0xff;
        if (Integer.bitCount(slowInline) >= 4) {
            handOffUntilNanos = end + HAND_OFF_NANOS;
            slowInline = 0;
        }
        return false;
    }

    private void complete(Request r, ByteBuffer buf, boolean pooled, long bytes, CommandExecutor executor) {
        try {
            executor.execute(r, buf);
        } catch (IOException e) {
            log.debug("{}: reply to {} not sent: {}", peer, r, e.toString());
            abort();
        } finally {
            release(buf, pooled, bytes);
        }
    }

    private void release(ByteBuffer buf, boolean pooled, long bytes) {
        if (pooled) {
            ctx.buffers().release(buf);
        }
        limiter.release(bytes);
    }

    private void reject(Request r, Rejection rejection, ReplyWriter replies) throws IOException {
        log.debug("{}: refused {}: {}", peer, r, rejection.message);
        ctx.stats().error(rejection.error);
        boolean payload = r.hasPayload() && r.length() > 0;
        if (payload && r.length() <= DISCARD_LIMIT) {
            skipPayload(r.length());
        }
        replies.error(r.handle(), rejection.error, rejection.message);
        if (payload && r.length() > DISCARD_LIMIT) {
            throw new ProtocolException("write of " + r.length() + " bytes is too large to read and drop");
        }
    }

    private void flushQuietly() {
        try {
            if (replies != null) {
                replies.flush();
            }
        } catch (IOException e) {
            log.debug("{}: replies not sent: {}", peer, e.toString());
        }
    }

    /** Waits for in-flight requests (their buffers and permits come back), then closes the socket. */
    private void finish() {
        flushQuietly();
        try {
            limiter.awaitIdle(Long.MAX_VALUE);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        abort();
        onClose.accept(this);
    }
}
