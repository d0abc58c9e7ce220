package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;

import io.pmcache.device.BlockDevice;
import io.pmcache.device.DeviceClosedException;
import io.pmcache.device.PayloadSource;
import java.io.EOFException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.util.Optional;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One client connection: handshake, then the transmission phase.
 *
 * <h2>Request pipeline</h2>
 * <pre>
 *  socket ──► reader (a platform thread of the server's reader pool, the only reader of the socket)
 *               1. take the 28-byte header from the input buffer, which each socket read fills
 *                  with as much as the client has sent (a pipelining client's next requests), or
 *                  only {@link #HEADER_READ_BYTES} after a large payload (the next one is read to
 *                  where it goes, see 7); bad magic ─► close the connection (ProtocolException)
 *               2. DISC or EOF ─► stop reading; the connection ends when its last request is answered
 *               3. RequestValidator; refused ─► drop a WRITE payload, error reply, next request
 *               4. the server is stopping ─► drop a WRITE payload, ESHUTDOWN, next request
 *               5. InFlightLimiter.acquire (this connection's bound) — blocks while too much is in
 *                  flight: the socket is not read, so the client's sends block (back-pressure)
 *               6. payload buffer: PayloadBudget (the whole server's bound) — blocks like 5 while the
 *                  server's payload memory is in use; then a pooled buffer; none can be allocated
 *                  (direct memory exhausted) ─► release 5 and 6, drop a WRITE payload, ENOMEM, next
 *               7. for WRITE copy the payload into the buffer (from the input buffer, the rest
 *                  straight from the socket); an inline WRITE of {@link #STREAM_MIN_BYTES} or more
 *                  whose payload has not all arrived skips 6 and 7: the device reads the payload
 *                  itself, on the reader ({@link #streamWrite})
 *               8. small requests (and a request while nothing else is in flight or buffered) run
 *                  steps 9-11 right here on the reader, their replies coalesced and sent before the
 *                  reader next blocks on the socket; others go to a virtual thread, as do requests
 *                  in hand-off mode (see below). Go back to 1.
 *  virtual thread per request (or the reader, see 8)
 *               9. CommandExecutor: device call on a MemorySegment view of the buffer
 *              10. ReplyWriter: one whole reply under the socket's write lock (any order)
 *              11. buffer back to the pool, budget and limiter released
 * </pre>
 *
 * <h2>Slow requests</h2>
 * A device call that blocks (a slow backing device, a full cache) must not hold up the requests
 * the client sends meanwhile. The server's timer ({@link InlineWatch}, armed only while some
 * request runs inline) checks every millisecond: a request that has run inline for more than
 * {@link #INLINE_TAKEOVER_NANOS} makes the reader's role pass to a thread of the reader pool, which
 * goes on reading the socket with a pooled input buffer (the overtaken request may still read its
 * payload from the old one, which it returns to the pool when done); the old thread finishes its
 * request and goes back to the pool. A run id in {@link #inlineRun} decides who owns the role, so
 * exactly one thread reads. Hand-off mode sends requests to their own virtual threads for
 * {@link #HAND_OFF_NANOS}, so that slow ones wait concurrently, in two strengths:
 * <ul>
 *   <li>for pipelined requests only ({@link #handOffUntilNanos}): started by a takeover, and by half
 *       of the last 8 inline requests taking over {@link #SLOW_INLINE_NANOS}. A request alone
 *       still runs inline, which is what keeps queue-depth-1 latency low on a busy machine: there,
 *       one takeover (or one slow request) is most often a thread preempted for a while, or a GC
 *       pause, not a slow device, and nothing waits behind it;</li>
 *   <li>for every request, even one alone ({@link #slowDeviceUntilNanos}): started by a second
 *       takeover within {@link #HAND_OFF_NANOS} of the last (a slow device, beyond doubt), and
 *       renewed by every handed-off request whose device call takes over
 *       {@link #INLINE_TAKEOVER_NANOS} too: a slow device costs one takeover at queue depth &gt; 1
 *       and two at queue depth 1, not one per request (issue 9: 200 for 200 slow reads).</li>
 * </ul>
 *
 * <h2>Ending</h2>
 * {@link #holds} counts the reader's role plus every request in flight; whoever drops it to zero
 * closes the socket and ends the connection, so no thread ever waits for another's requests. A
 * clean DISC or EOF at a request boundary lets the requests in flight finish and answer. A protocol
 * violation, a disconnect in the middle of a request, or a failed reply closes the socket at once;
 * requests still in the device finish there and return what they hold. A rejected WRITE whose
 * payload exceeds {@link #DISCARD_LIMIT} is answered and the connection closed, since reading
 * gigabytes only to drop them would let one client tie up the server.
 *
 * <h2>Stop</h2>
 * {@link #stopServing}: requests read from then on are answered ESHUTDOWN without touching the
 * device (the spec's answer for "the server is shutting down"), so are requests waiting for room in
 * step 5 or 6, and handshake options get {@code NBD_REP_ERR_SHUTDOWN}. The reader keeps reading, so
 * every request the client sent is answered; the server closes the socket once the requests in
 * flight are answered and the reader waits for more ({@link #quiet}), or after its grace.
 *
 * <p>Invariants: only the reader reads the socket; only {@link ReplyWriter} writes it after the
 * handshake; every acquired limiter permit, budget, buffer and hold is released exactly once, by
 * step 11 or by the reader when it fails or refuses the request before step 8.
 */
final class Connection implements Runnable {
    private static final Logger log = LoggerFactory.getLogger(Connection.class);

    /** Largest payload of a refused WRITE that is read and dropped to keep the connection usable. */
    static final long DISCARD_LIMIT = 2L * MAX_PAYLOAD_SIZE;
    /** After this long, an inline request's reader role is taken over by another thread. */
    static final long INLINE_TAKEOVER_NANOS = 1_000_000L;
    /**
     * When half of the last 8 inline requests took longer than this (they wait for something,
     * e.g. read misses on a disk), pipelined requests run on their own threads...
     */
    static final long SLOW_INLINE_NANOS = 50_000L;
    /** ...for this long (hand-off mode), after which running inline is tried again. */
    static final long HAND_OFF_NANOS = 20_000_000L;
    /** Requests with payloads up to this size run inline even while others are pipelined. */
    static final long INLINE_MAX_BYTES = 128 << 10;
    /**
     * An inline WRITE of at least this much payload that has not all been read yet is streamed: the
     * device reads it from the input buffer and the socket straight into its medium
     * ({@link #streamWrite}) instead of through a pooled buffer (one copy less). Smaller payloads
     * mostly sit in the input buffer whole already, which the device reads from as it is.
     */
    static final long STREAM_MIN_BYTES = 64 << 10;
    /** Socket reads take up to this much at once (a pipelining client's next requests). */
    static final int IN_CAPACITY = 256 << 10;
    /**
     * ...except right after a request with a payload of {@link #STREAM_MIN_BYTES} or more: the
     * client is likely sending large WRITEs, whose payloads are best read straight to where they
     * go (the medium, or a pooled buffer), not first into the input buffer and copied out of it.
     * The next request's header (and no more than this much of what follows it) is read alone.
     */
    static final int HEADER_READ_BYTES = 4 << 10;

    /** The socket (closed only through it: see {@link SocketStream}). */
    private final SocketStream ch;
    /** The socket, or TLS over it once the handshake did STARTTLS (set by the handshake, then fixed). */
    private volatile Transport io;
    /** The client sent NBD_CMD_DISC: the end is a soft disconnect (TLS says goodbye). */
    private volatile boolean softDisconnect;
    private final String peer;
    private final ConnectionContext ctx;
    private final InFlightLimiter limiter;
    private final Consumer<Connection> onEnd;
    /** The reader's role (one, until it stops reading) plus one per request in flight; 0 ends the connection. */
    private final AtomicInteger holds = new AtomicInteger(1);
    private final AtomicBoolean ended = new AtomicBoolean();
    /** The server is stopping: no request starts any more (see class comment). */
    private volatile boolean stopping;
    /** The export the handshake chose (for {@link NbdServer#removeExport}); null before. */
    private volatile Export export;
    /** In the transmission phase and still reading. */
    private volatile boolean reading;
    /** The reader waits in a socket read at a request boundary: all it read is answered or in flight. */
    private volatile boolean readerIdle;
    /** Socket reads the reader has completed (written by the reader only). */
    private volatile long readsDone;
    /** Every request is handed off until this instant (see class comment); any thread writes it, racily but harmlessly. */
    private volatile long slowDeviceUntilNanos = System.nanoTime();
    /** Pipelined requests are handed off until this instant (reader-owned). */
    private long handOffUntilNanos = System.nanoTime();
    /** When the timer last took the reader's role over (the timer's thread only). */
    private long lastTakeoverNanos = System.nanoTime() - HAND_OFF_NANOS;
    /** Id of the request running inline on the reader, 0 when none; the timer zeroes it to take over. */
    private final AtomicLong inlineRun = new AtomicLong();
    private volatile long inlineSinceNanos;
    /** A streamed WRITE reads its payload (in the device, on the reader's thread; see {@link #streamWrite}). */
    private volatile boolean streamingPayload;
    /** Reader-owned (passed on with the role): ids of inline runs, and the transmission state. */
    private long inlineRuns;
    private RequestValidator validator;
    private ReplyWriter replies;
    private CommandExecutor executor;
    /** The export's device; told when the reader is about to wait for a request ({@link BlockDevice#idle}). */
    private BlockDevice device;
    /** Bytes read from the socket and not yet consumed, in read mode (a pooled buffer, reader-owned). */
    private ByteBuffer in;
    /** Requests taken from the input since the reader last read the socket (for {@link BusyPoll}). */
    private int requestsSinceRead;
    /** The last request read had a large payload: the next socket read takes little (see {@link #HEADER_READ_BYTES}). */
    private boolean largePayloadLast;
    /** One bit per recent inline request (newest lowest): set if it was slow. */
    private int slowInline;
    private boolean warnedNoMemory;

    /** {@code onEnd}: called once, when the connection has ended (socket closed, nothing in flight). */
    Connection(SocketStream ch, String peer, ConnectionContext ctx, Consumer<Connection> onEnd) {
        this.ch = ch;
        this.io = Transport.plain(ch);
        this.peer = peer;
        this.ctx = ctx;
        this.limiter = new InFlightLimiter(ctx.maxInFlightRequests(), ctx.maxInFlightBytes());
        this.onEnd = onEnd;
    }

    @Override
    public void run() {
        Thread me = Thread.currentThread();
        String poolName = me.getName();
        me.setName(peer);
        boolean handedOver = false;
        try {
            Optional<Session> session = handshake();
            if (session.isPresent()) {
                Session s = session.get();
                export = s.export();
                // NbdServer.removeExport removes the export, then closes the connections whose export
                // is it. One that chose it but had not published it yet (above) is missed there, so it
                // looks again here, after publishing: one of the two always sees the other.
                if (!ctx.exports().offers(export)) {
                    log.info("{}: export '{}' was removed as the handshake ended; closing", peer, export.name());
                    return;
                }
                log.debug("{}: transmission (structured replies {}, base:allocation {})", peer,
                        s.structuredReplies(), s.baseAllocation());
                validator = new RequestValidator(s);
                replies = new ReplyWriter(io, s.structuredReplies(), ctx.readers());
                device = s.export().device();
                executor = new CommandExecutor(device, replies, ctx.stats(), peer);
                in = ctx.buffers().acquire(IN_CAPACITY).flip();
                reading = true;
                handedOver = transmit();
            } else {
                log.debug("{}: client aborted the handshake", peer);
            }
        } catch (Throwable e) {
            failed(e);
        } finally {
            if (!handedOver) {
                readerDone();
            }
            me.setName(poolName);
        }
    }

    /** The reader's loop on a reader-pool thread after a takeover (the timer prepared {@link #in}). */
    private void continueReading() {
        Thread me = Thread.currentThread();
        String poolName = me.getName();
        me.setName(peer);
        boolean handedOver = false;
        handOffUntilNanos = System.nanoTime() + HAND_OFF_NANOS; // what is pipelined behind a slow request
        try {
            handedOver = transmit();
        } catch (Throwable e) {
            failed(e);
        } finally {
            if (!handedOver) {
                readerDone();
            }
            me.setName(poolName);
        }
    }

    /** The reader stops for good: sends what it coalesced, returns its buffer, drops its hold. */
    private void readerDone() {
        reading = false;
        flushQuietly();
        ByteBuffer b = in;
        in = null;
        if (b != null) {
            ctx.buffers().release(b);
        }
        unhold();
    }

    private void unhold() {
        if (holds.decrementAndGet() == 0 && ended.compareAndSet(false, true)) {
            if (softDisconnect) {
                io.closeGracefully(); // the spec: after NBD_CMD_DISC, close the TLS session, then TCP
            }
            abort();
            log.debug("{}: disconnected", peer);
            onEnd.accept(this);
        }
    }

    /**
     * Called by the server's timer ({@link InlineWatch}): if the request running inline on the
     * reader has taken longer than {@link #INLINE_TAKEOVER_NANOS}, a reader-pool thread becomes the
     * reader. True if a request still runs inline here (not old enough yet).
     */
    boolean takeOverSlowInline(long now) {
        long run = inlineRun.get();
        if (run == 0) {
            return false;
        }
        if (now - inlineSinceNanos < INLINE_TAKEOVER_NANOS) {
            return true;
        }
        // Copy the unread input before taking the role: once the role is taken, the overtaken
        // request may return the old buffer to the pool at any moment (it is its last user), and
        // a new connection may fill it with its own requests. The copy leaves the old buffer's
        // position alone: if the request ends first (the CAS fails), the reader goes on with it.
        ByteBuffer old = in; // seen as of inlineRun.set(run): the reader does not touch it until its CAS
        ByteBuffer next;
        try {
            next = ctx.buffers().acquire(IN_CAPACITY);
        } catch (BufferPool.OutOfBuffers e) {
            if (!inlineRun.compareAndSet(run, 0)) {
                return inlineRun.get() != 0;
            }
            log.warn("{}: closing: no memory to go on reading while a slow request runs: {}", peer, e.getMessage());
            ctx.stats().inlineTakeover();
            in = null; // the overtaken request returns the old buffer
            reading = false;
            abort();
            unhold();
            return false;
        }
        try {
            int unread = old.remaining();
            next.put(0, old, old.position(), unread).position(0).limit(unread);
        } catch (IndexOutOfBoundsException movedOn) {
            // only if the request ended and the reader moved the buffer on meanwhile: it keeps the role
            ctx.buffers().release(next);
            return inlineRun.get() != 0;
        }
        if (!inlineRun.compareAndSet(run, 0)) {
            ctx.buffers().release(next);
            return inlineRun.get() != 0;
        }
        // This thread holds the reader's role until the new reader starts: the old reader is in its
        // request and touches no reader state any more (it saw its run id zeroed, or will).
        ctx.stats().inlineTakeover();
        if (now - lastTakeoverNanos < HAND_OFF_NANOS) {
            slowDeviceUntilNanos = now + HAND_OFF_NANOS; // twice in a row: a slow device, hand off what follows
        }
        lastTakeoverNanos = now;
        // (the timer never takes the reply lock: a reply blocked on a client that does not read
        // would stall every connection's takeovers; the new reader takes over the coalescing)
        in = next;
        try {
            ctx.readers().execute(this::continueReading);
        } catch (RejectedExecutionException e) {
            log.debug("{}: server closed; nobody reads on", peer);
            readerDone();
            abort();
        }
        return false;
    }

    boolean runsInline() {
        return inlineRun.get() != 0;
    }

    /**
     * True for the errors a socket write or read gives when the client has gone away (the OS's
     * EPIPE and ECONNRESET, which the JDK reports as a plain IOException with the C library's
     * text): an expected event, logged at DEBUG like a clean disconnect.
     */
    static boolean clientGone(IOException e) {
        String m = e.getMessage();
        return m != null && (m.contains("Broken pipe") || m.contains("Connection reset"));
    }

    private void failed(Throwable ex) {
        if (ex instanceof ProtocolException e) {
            ctx.stats().protocolViolation();
            log.info("{}: closing connection: {}", peer, e.getMessage());
            flushQuietly(); // answers to the requests before the violation
        } else if (ex instanceof EOFException || ex instanceof ClosedChannelException) {
            log.debug("{}: {}", peer, stopping ? "closed by server shutdown" : "client disconnected");
        } else if (ex instanceof IOException io && clientGone(io)) {
            log.debug("{}: client disconnected ({})", peer, io.getMessage());
        } else if (ex instanceof IOException) {
            log.info("{}: connection failed: {}", peer, ex.toString());
        } else if (!(ex instanceof InterruptedException)) {
            log.error("{}: connection failed unexpectedly", peer, ex);
        }
        abort();
    }

    /** The export this connection serves; null until its handshake chose one. */
    Export export() {
        return export;
    }

    /**
     * The server is stopping: from now on no request starts; requests read are answered ESHUTDOWN,
     * and so are handshake options. Safe from any thread.
     */
    void stopServing() {
        stopping = true;
        limiter.cancel();
    }

    /**
     * Closes the connection if a streamed WRITE still waits for its payload (the server stops and
     * its grace is over: the device is about to close, and the request waits on the client, not on
     * the device, so closing the device would not end it). True if it did.
     */
    boolean abortStreamedPayload() {
        if (!streamingPayload) {
            return false;
        }
        log.info("{}: closing: a WRITE's payload has not arrived within the shutdown grace", peer);
        abort();
        return true;
    }

    /** Waits (up to the deadline) until no request of this connection is in flight. */
    boolean awaitIdle(long deadlineNanos) throws InterruptedException {
        return limiter.awaitIdle(Math.max(0, deadlineNanos - System.nanoTime()));
    }

    /**
     * A token that is the same on two calls some time apart only if every request this connection
     * has read was answered meanwhile and the reader kept waiting for the next one (or reads no
     * more), so closing now loses no reply; -1 while that is not so. Twice, because a reader that
     * just started a socket read may be about to get requests the client sent already.
     */
    long quiet() {
        if (limiter.inFlight() != 0) {
            return -1;
        }
        if (!reading) {
            return Long.MAX_VALUE;
        }
        long reads = readsDone;
        return readerIdle ? reads : -1;
    }

    /** Closes the socket now; blocked reads and writes on it fail. Safe from any thread. */
    void abort() {
        try {
            ch.close();
        } catch (IOException e) {
            log.debug("{}: close failed: {}", peer, e.toString());
        }
        ctx.budget().wake(); // a reader waiting for memory gives up
    }

    private Optional<Session> handshake() throws IOException {
        ScheduledFuture<?> deadline = ctx.timer().schedule(() -> {
            log.info("{}: handshake not finished within {}; closing", peer, ctx.handshakeTimeout());
            abort();
        }, ctx.handshakeTimeout().toNanos(), TimeUnit.NANOSECONDS);
        try {
            Handshake h = new Handshake(io, ch, ctx.tls(), ctx.exports(), peer,
                    () -> stopping ? Handshake.Refusal.SHUTDOWN : null);
            Optional<Session> session = h.run();
            io = h.transport();
            return session;
        } finally {
            deadline.cancel(false);
        }
    }

    /** Reads and dispatches requests; true if the reader's role was handed over to another thread. */
    private boolean transmit() throws IOException, InterruptedException {
        replies.deferFor(Thread.currentThread());
        while (true) {
            if (!fill(REQUEST_HEADER_SIZE)) {
                return false;
            }
            Request r = Request.decode(in);
            requestsSinceRead++;
            largePayloadLast = r.hasPayload() && r.length() >= STREAM_MIN_BYTES;
            ctx.stats().request(r.type());
            if (r.type() == NBD_CMD_DISC) {
                log.debug("{}: client disconnects", peer);
                softDisconnect = true;
                return false;
            }
            Rejection rejection = validator.validate(r);
            if (rejection != null) {
                reject(r, rejection);
                continue;
            }
            if (stopping) {
                refuseShuttingDown(r, true);
                continue;
            }
            long bytes = r.type() == NBD_CMD_READ || r.type() == NBD_CMD_WRITE ? r.length() : 0;
            if (!limiter.tryAcquire(bytes)) {
                replies.flush(); // the client may wait for these before it lets anything finish
                if (!limiter.acquire(bytes)) { // the server is stopping
                    refuseShuttingDown(r, true);
                    continue;
                }
            }
            holds.incrementAndGet();
            if (dispatch(r, bytes)) {
                return true;
            }
        }
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
        if (largePayloadLast) {
            in.limit(Math.max(n, HEADER_READ_BYTES));
        }
        try {
            replies.flush();
            ch.requestsRead(requestsSinceRead);
            requestsSinceRead = 0;
            if (none) {
                device.idle(); // the replies are out, no request is buffered: the device's turn
            }
            while (in.position() < n) {
                readerIdle = none && in.position() == 0;
                int got;
                try {
                    got = io.read(in);
                } finally {
                    readerIdle = false;
                    readsDone++;
                }
                if (got < 0) {
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
            ChannelIO.readFully(io, dst);
        }
    }

    /** Reads and drops {@code count} payload bytes. */
    private void skipPayload(long count) throws IOException {
        int n = (int) Math.min(in.remaining(), count);
        in.position(in.position() + n);
        if (count > n) {
            replies.flush();
            ChannelIO.skip(io, count - n, ByteBuffer.allocate(64 << 10));
        }
    }

    /**
     * Runs or hands off one request (its limiter permit and hold are taken); true if it ran inline
     * and the reader's role was taken over meanwhile. Inline (on the reader, reply coalesced): any
     * request while nothing else is in flight or buffered, and requests with small payloads, unless
     * in hand-off mode (of either strength, see class comment).
     */
    private boolean dispatch(Request r, long bytes) throws IOException, InterruptedException {
        long payload = r.hasPayload() ? bytes : 0;
        boolean alone = limiter.inFlight() == 1 && in.remaining() <= payload;
        long now = System.nanoTime();
        boolean inline = now - slowDeviceUntilNanos >= 0
                && (alone || (bytes <= INLINE_MAX_BYTES && now - handOffUntilNanos >= 0));
        if (inline && r.type() == NBD_CMD_WRITE && payload >= STREAM_MIN_BYTES && in.remaining() < payload) {
            return streamWrite(r, bytes);
        }
        ByteBuffer buf = null;
        long charged = 0; // payload budget taken for buf
        boolean passed = false; // from here on complete() releases what the request holds
        try {
            if (inline && payload > 0 && in.remaining() >= payload) {
                // The payload is already in the input buffer: the device reads it from there. Valid
                // until the next fill, which comes after this request (or, after a takeover, on
                // another input buffer: see takeOverSlowInline).
                buf = in.slice(in.position(), (int) payload);
                in.position(in.position() + (int) payload);
            } else if (bytes > 0) {
                long need = BufferPool.capacityFor((int) bytes);
                if (!reserve(need)) {
                    refuseShuttingDown(r, true);
                    return false;
                }
                charged = need;
                try {
                    buf = ctx.buffers().acquire((int) bytes);
                } catch (BufferPool.OutOfBuffers e) {
                    ctx.budget().release(charged);
                    charged = 0;
                    noMemory(r, e);
                    return false;
                }
                if (r.hasPayload()) {
                    readPayload(buf);
                    buf.flip();
                }
            }
            if (stopping) { // the stop began while this request waited or its payload arrived
                refuseShuttingDown(r, false);
                return false;
            }
            if (!inline) {
                ByteBuffer b = buf;
                long c = charged;
                ctx.requests().execute(() -> complete(r, b, c, bytes, false));
                passed = true;
                return false;
            }
            passed = true;
        } catch (RejectedExecutionException e) {
            throw new ClosedChannelException(); // the server has closed
        } finally {
            if (!passed) {
                release(buf, charged, bytes);
            }
        }
        long run = ++inlineRuns;
        ByteBuffer input = in;
        long start = System.nanoTime();
        inlineSinceNanos = start;
        inlineRun.set(run);
        ctx.inlineWatch().inlineStarted();
        ctx.stats().inlineRequest();
        complete(r, buf, charged, bytes, true);
        if (!inlineRun.compareAndSet(run, 0)) {
            // Overtaken: another reader owns the connection, with another input buffer. This
            // request was the last user of the old one.
            ctx.buffers().release(input);
            return true;
        }
        inlineEnded(start);
        return false;
    }

    /** An inline run that began at {@code start} ended on the reader: counts it if it was slow. */
    private void inlineEnded(long start) {
        // Several, not one: a thread preempted on a busy machine or a GC pause is no slow request.
        long end = System.nanoTime();
        slowInline = (slowInline << 1 | (end - start > SLOW_INLINE_NANOS ? 1 : 0)) & 0xff;
        if (Integer.bitCount(slowInline) >= 4) {
            handOffUntilNanos = end + HAND_OFF_NANOS;
            slowInline = 0;
        }
    }

    /**
     * Runs inline a WRITE whose payload has not arrived yet (its limiter permit and hold are
     * taken): the device reads the payload from the input buffer and the socket straight to where
     * it keeps it ({@link StreamedPayload}; the cache's medium: no buffer, no copy), or asks for the
     * rest in a pooled buffer. The run is published to the watch only once the whole payload is
     * read: until then this thread is the reader, reading the socket, and no other may take over
     * (it would read payload bytes as requests). If the device stops before it has read the whole
     * payload (an error), the rest is dropped here. Returns as {@link #dispatch}.
     */
    private boolean streamWrite(Request r, long bytes) throws IOException {
        long run = ++inlineRuns;
        ByteBuffer input = in;
        StreamedPayload payload = new StreamedPayload(r, run, (int) bytes);
        ctx.stats().inlineRequest();
        ctx.stats().streamedWrite();
        streamingPayload = true;
        try {
            executor.executeWrite(r, payload);
        } catch (CommandExecutor.PayloadLost e) {
            throw e.socketFailure(); // the connection is lost: the reader ends it, as for any failed read
        } catch (IOException e) {
            replyNotSent(r, e);
        } catch (RuntimeException | Error e) {
            failedUnexpectedly(r, e);
        } finally {
            streamingPayload = false;
            release(payload.buf, payload.charged, bytes);
        }
        if (!payload.published) {
            skipPayload(bytes - payload.delivered); // still the reader: nothing was published
            return false;
        }
        if (!inlineRun.compareAndSet(run, 0)) {
            ctx.buffers().release(input); // overtaken, as in dispatch
            return true;
        }
        inlineEnded(payload.publishedAt);
        return false;
    }

    /**
     * The payload of a {@linkplain #streamWrite streamed WRITE}, read on the reader's thread as the
     * device asks for it: first what the input buffer holds, then from the socket. Reading its last
     * byte publishes the inline run.
     */
    private final class StreamedPayload implements PayloadSource {
        private final Request r;
        private final long run;
        private final int length;
        int delivered;
        boolean published;
        long publishedAt;
        /** The pooled buffer {@link #rest} read into, and the payload budget taken for it. */
        ByteBuffer buf;
        long charged;

        StreamedPayload(Request r, long run, int length) {
            this.r = r;
            this.run = run;
            this.length = length;
        }

        @Override
        public void readInto(MemorySegment dst) throws IOException {
            if (dst.byteSize() > length - delivered) {
                throw new IllegalArgumentException("asked for " + dst.byteSize() + " bytes, "
                        + (length - delivered) + " of the payload left");
            }
            try {
                readPayload(dst.asByteBuffer());
            } catch (IOException e) {
                throw new CommandExecutor.PayloadLost(e);
            }
            delivered += (int) dst.byteSize();
            if (delivered == length) {
                publish();
            }
        }

        @Override
        public MemorySegment rest() throws IOException {
            if (buf != null) {
                throw new IllegalStateException("the rest of the payload was asked for twice");
            }
            int n = length - delivered;
            if (n == 0) {
                return MemorySegment.ofArray(new byte[0]); // all delivered (and published) already
            }
            long need = BufferPool.capacityFor(n);
            try {
                if (!reserve(need)) {
                    throw new DeviceClosedException("the server is shutting down");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted waiting for payload memory");
            }
            charged = need;
            try {
                buf = ctx.buffers().acquire(n);
            } catch (BufferPool.OutOfBuffers e) {
                ctx.budget().release(charged);
                charged = 0;
                noteNoMemory(r, e);
                throw new CommandExecutor.NoPayloadMemory(e.getMessage());
            }
            try {
                readPayload(buf);
            } catch (IOException e) {
                throw new CommandExecutor.PayloadLost(e);
            }
            buf.flip();
            delivered = length;
            publish();
            return MemorySegment.ofBuffer(buf);
        }

        private void publish() {
            streamingPayload = false;
            published = true;
            publishedAt = System.nanoTime();
            inlineSinceNanos = publishedAt;
            inlineRun.set(run);
            ctx.inlineWatch().inlineStarted();
        }
    }

    /**
     * Takes {@code need} bytes of the server's payload budget, waiting (after sending coalesced
     * replies) while it is in use; false if the server began to stop meanwhile.
     */
    private boolean reserve(long need) throws IOException, InterruptedException {
        PayloadBudget budget = ctx.budget();
        if (budget.tryAcquire(need)) {
            return true;
        }
        replies.flush(); // the client may wait for these before it lets anything finish
        ctx.stats().bufferWait();
        if (budget.acquire(need, () -> stopping || !ch.isOpen())) {
            return true;
        }
        if (!ch.isOpen()) {
            throw new ClosedChannelException();
        }
        return false;
    }

    /** No buffer for {@code r}: ENOMEM for this request only (its payload is read and dropped). */
    private void noMemory(Request r, BufferPool.OutOfBuffers e) throws IOException {
        noteNoMemory(r, e);
        ctx.stats().error(NBD_ENOMEM);
        if (r.hasPayload()) {
            skipPayload(r.length());
        }
        replies.error(r.handle(), NBD_ENOMEM, "the server is out of memory for this request");
    }

    /** No buffer could be allocated for {@code r} (answered ENOMEM): counted, and logged once per connection at WARN. */
    private void noteNoMemory(Request r, BufferPool.OutOfBuffers e) {
        ctx.stats().allocationFailure();
        if (!warnedNoMemory) {
            warnedNoMemory = true;
            log.warn("{}: {} answered ENOMEM: {} (later ones on this connection are logged at debug)",
                    peer, r, e.getMessage());
        } else {
            log.debug("{}: {} answered ENOMEM: {}", peer, r, e.getMessage());
        }
    }

    private void complete(Request r, ByteBuffer buf, long charged, long bytes, boolean inline) {
        long device = 0;
        try {
            device = executor.execute(r, buf);
        } catch (IOException e) {
            replyNotSent(r, e);
        } catch (RuntimeException | Error e) {
            failedUnexpectedly(r, e);
        } finally {
            if (!inline && device > INLINE_TAKEOVER_NANOS) {
                // a device call as slow as an inline request that would have been overtaken: stay in
                // hand-off mode (the device's time only: a reply's hop to a platform thread on a
                // busy machine, or a slowly reading client, must not keep every request handed off)
                slowDeviceUntilNanos = System.nanoTime() + HAND_OFF_NANOS;
            }
            release(buf, charged, bytes);
        }
    }

    private void replyNotSent(Request r, IOException e) {
        // The reply's write may be what meets a client's reset first (before the reader does):
        // the same event, so the same words.
        log.debug("{}: {}reply to {} not sent: {}", peer, clientGone(e) ? "client disconnected; " : "", r,
                e.toString());
        abort();
    }

    private void failedUnexpectedly(Request r, Throwable e) {
        log.error("{}: {} failed unexpectedly; closing", peer, r, e);
        abort();
    }

    /** Returns what one request held: its buffer and budget (if pooled), its permit and its hold. */
    private void release(ByteBuffer buf, long charged, long bytes) {
        if (charged > 0) {
            if (buf != null) {
                ctx.buffers().release(buf);
            }
            ctx.budget().release(charged);
        }
        limiter.release(bytes);
        unhold();
    }

    private void reject(Request r, Rejection rejection) throws IOException {
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

    /** ESHUTDOWN for a request the stopping server does not start (its payload dropped if unread). */
    private void refuseShuttingDown(Request r, boolean payloadUnread) throws IOException {
        log.debug("{}: not started, the server is stopping: {}", peer, r);
        ctx.stats().error(NBD_ESHUTDOWN);
        if (payloadUnread && r.hasPayload()) {
            skipPayload(r.length());
        }
        replies.error(r.handle(), NBD_ESHUTDOWN, "the server is shutting down");
    }

    private void flushQuietly() {
        try {
            if (replies != null) {
                replies.flush();
            }
        } catch (IOException e) {
            log.debug("{}: {}replies not sent: {}", peer, clientGone(e) ? "client disconnected; " : "", e.toString());
        }
    }
}
