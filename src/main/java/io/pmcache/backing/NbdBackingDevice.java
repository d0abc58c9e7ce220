package io.pmcache.backing;

import static io.pmcache.nbd.NbdConstants.NBD_CMD_BLOCK_STATUS;
import static io.pmcache.nbd.NbdConstants.NBD_CMD_FLAG_FUA;
import static io.pmcache.nbd.NbdConstants.NBD_CMD_FLUSH;
import static io.pmcache.nbd.NbdConstants.NBD_CMD_READ;
import static io.pmcache.nbd.NbdConstants.NBD_CMD_WRITE;
import static io.pmcache.nbd.NbdConstants.NBD_CMD_WRITE_ZEROES;
import static io.pmcache.nbd.NbdConstants.NBD_STATE_HOLE;
import static io.pmcache.nbd.NbdConstants.NBD_STATE_ZERO;

import io.pmcache.device.BlockStatus;
import io.pmcache.device.Ranges;
import io.pmcache.nbd.TlsClientConfig;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link BackingDevice} on a remote NBD export: an NBD client (fixed-newstyle handshake with
 * {@code NBD_OPT_GO}, structured replies, pipelined requests).
 *
 * <h2>Mapping of the device interface</h2>
 * <ul>
 *   <li>{@code read}/{@code write}: {@code NBD_CMD_READ}/{@code WRITE}, cut into pieces of at most
 *       the server's maximum block size (32 MiB when it names none) that are sent together, spread
 *       over the connections. A range that is not aligned to the server's minimum block size is
 *       read whole-block and, for writes, read-modified-written; such writes hold a lock that keeps
 *       every other write out meanwhile (aligned writes share it), so no write is lost to another's
 *       read-modify-write.</li>
 *   <li>A plain write (not FUA, block-aligned) returns once it is sent ({@link WritesInFlight}:
 *       up to 64 in flight, overlapping requests wait for them, and a write that fails after it
 *       returned fails the next {@code flush}). This relaxes the device contract in one way only:
 *       a write's error may be reported by the next flush instead of by the write, as a disk with
 *       a volatile cache does; callers that need the outcome at once use FUA.</li>
 *   <li>{@code fua}: {@code NBD_CMD_FLAG_FUA} when the server offers it, else write then flush.</li>
 *   <li>{@code flush}: {@code NBD_CMD_FLUSH} on one connection: that covers every connection only
 *       because more than one is opened only when the server offers {@code CAN_MULTI_CONN}. A server
 *       that offers no flush is taken as writing through (a WARN at connect says so).</li>
 *   <li>{@code trim} and {@code writeZeroes}: {@code NBD_CMD_WRITE_ZEROES} without
 *       {@code NO_HOLE} (so the server may punch a hole) when offered, else zero-filled writes.
 *       {@code NBD_CMD_TRIM} is never sent: the protocol lets trimmed blocks read back as anything,
 *       and this interface promises zeros.</li>
 * </ul>
 *
 *   <li>{@code blockStatus}: {@code NBD_CMD_BLOCK_STATUS} on the {@code base:allocation} meta
 *       context when the server offers it (see {@link #blockStatus}); otherwise, and while the
 *       remote is down, every byte is DATA (not known), which is always a correct answer.</li>
 * </ul>
 *
 * <h2>TLS</h2>
 * With {@code nbds://} or {@code nbds+unix://} every connection, and every reconnection, runs
 * STARTTLS and the TLS handshake before anything else ({@link TlsClientConfig}, read once at
 * open); a server that does not offer TLS, or whose certificate does not verify, is refused,
 * never used in plain text. While reconnecting, such a refusal is the reason status shows.
 *
 * <h2>Failure handling</h2>
 * The set of connections is a <em>link</em>. The link is lost when a connection breaks (the server
 * closed it, a send or receive failed, a reply broke the protocol) or stalls (requests outstanding
 * and no reply byte for {@code requestTimeout}). Then: the device is <em>down</em> and every call
 * fails at once with an {@link IOException} naming the reason (reads of a cache miss fail, the
 * cache's writeback retries); each old connection's sending side is shut down and its replies taken
 * until the server closes it (so a write still queued at the server cannot land after a newer write
 * on the next link): for {@code fenceTimeout}, and past it for as long as the server still holds a
 * write, write-zeroes or trim of ours (a request outstanding then is answered when the server
 * answers); then the supervisor reconnects with exponential backoff ({@code reconnectMin} to
 * {@code reconnectMax}). A reconnected export must have
 * the size it had at open; otherwise the device stays down, saying why.
 *
 * <p>Flush across a lost link: writes that completed on a link that was lost before a flush
 * covered them may be lost with the server's volatile cache. The next {@code flush} therefore fails
 * (once), so that its caller writes them again — the cache's writeback retries its batch.
 *
 * <p>Identity ({@link #fingerprint()}): the export name only; the size is checked by the cache
 * beside it. See docs/format.md for what this can and cannot tell apart.
 */
public final class NbdBackingDevice implements BackingDevice {
    private static final Logger log = LoggerFactory.getLogger(NbdBackingDevice.class);
    /** Longest WRITE_ZEROES request (the length field is 32 bits). */
    private static final long MAX_ZERO_REQUEST = 1L << 30;
    /** Longest range one BLOCK_STATUS request asks about (the length field is 32 bits). */
    private static final long MAX_STATUS_REQUEST = 1L << 30;

    /** One generation of connections; replaced as a whole when lost. */
    private static final class Link {
        final int generation;
        final NbdExportInfo info;
        final List<NbdConnection> conns;
        final AtomicInteger next = new AtomicInteger();
        /** Writes (not FUA) completed on this link, and how many of them a flush covered. */
        final AtomicLong writeSeq = new AtomicLong();
        final AtomicLong flushedSeq = new AtomicLong();
        volatile boolean dead;

        Link(int generation, List<NbdConnection> conns) {
            this.generation = generation;
            this.conns = conns;
            this.info = conns.getFirst().info;
        }

        NbdConnection pick() {
            return conns.get(Math.floorMod(next.getAndIncrement(), conns.size()));
        }
    }

    private final NbdUri uri;
    private final NbdClientOptions options;
    /** TLS for every connection, null without ({@code nbd://}). */
    private final TlsClientConfig tls;
    private final long size;
    private final long fingerprint;
    /** Writes that need a read-modify-write take the write lock, all other writes the read lock. */
    private final ReentrantReadWriteLock rmwLock = new ReentrantReadWriteLock();
    private final WritesInFlight behind = new WritesInFlight(WritesInFlight.NBD_WINDOW);
    /** {@link #flush()} as a flusher (of links lost with unflushed writes). */
    private final WritesInFlight.Cursor flushCursor = behind.newCursor();
    /** The flushes that stand in for FUA where the server has none: a flusher apart from {@link #flush()}. */
    private final WritesInFlight.Cursor fuaCursor = behind.newCursor();
    private final Object stateLock = new Object();
    private final Thread supervisor;

    private volatile Link link;
    /** The link being fenced after a loss; guarded by stateLock. */
    private Link lost;
    private int generations;
    private volatile boolean closed;
    private volatile String downReason;
    private volatile long downSinceMillis;
    private volatile int reconnectAttempts;
    private final AtomicLong linkLosses = new AtomicLong();
    private final AtomicLong reconnects = new AtomicLong();

    private NbdBackingDevice(NbdUri uri, NbdClientOptions options, TlsClientConfig tls, Link first) {
        this.uri = uri;
        this.options = options;
        this.tls = tls;
        this.link = first;
        this.size = first.info.size();
        this.fingerprint = fingerprintOf(uri.exportName());
        this.supervisor = Thread.ofPlatform().daemon().name("pmcache-nbd-client-supervisor").unstarted(this::supervise);
    }

    /** Connects to the export; fails (naming the URI and the reason) when it cannot. */
    public static NbdBackingDevice open(NbdUri uri, NbdClientOptions options) throws IOException {
        TlsClientConfig tls = null;
        if (uri.tls()) {
            try {
                tls = TlsClientConfig.x509(uri.tlsCertificates(), uri.tlsVerifyPeer());
            } catch (IOException e) {
                throw new IOException(uri + ": " + e.getMessage(), e);
            }
            if (!uri.tlsVerifyPeer()) {
                log.warn("{}: tls-verify-peer=false: the server's certificate is not verified (encrypted, but "
                        + "anyone in the middle can pose as the server)", uri);
            }
        }
        NbdBackingDevice d = new NbdBackingDevice(uri, options, tls, connect(uri, options, tls, 1));
        d.generations = 1;
        d.supervisor.start();
        log.info("connected to {}", d.describe());
        return d;
    }

    public static NbdBackingDevice open(String uri) throws IOException {
        return open(NbdUri.parse(uri), NbdClientOptions.defaults());
    }

    /**
     * The identity of an export as far as NBD can tell it: its name (NBD has no volume UUID). A
     * distinct tag keeps it apart from every file's fingerprint.
     */
    static long fingerprintOf(String exportName) {
        long h = 0xcbf29ce484222325L; // FNV-1a 64 over "nbd-export\0" + name
        for (byte b : ("nbd-export\0" + exportName).getBytes(StandardCharsets.UTF_8)) {
            h = (h ^ (b & 0xff)) * 0x100000001b3L;
        }
        h = (h ^ (h >>> 30)) * 0xbf58476d1ce4e5b9L;
        h = (h ^ (h >>> 27)) * 0x94d049bb133111ebL;
        return h ^ (h >>> 31);
    }

    public NbdUri uri() {
        return uri;
    }

    /** The export's properties as the current link has them (the first link's while down). */
    public NbdExportInfo info() {
        Link l = link;
        if (l != null) {
            return l.info;
        }
        synchronized (stateLock) {
            return lost != null ? lost.info : null;
        }
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public long fingerprint() {
        return fingerprint;
    }

    @Override
    public String describe() {
        Link l = link;
        return uri + " (NBD export '" + uri.exportName() + "', " + size + " bytes"
                + (l != null ? ", " + l.conns.size() + " connection" + (l.conns.size() > 1 ? "s" : "") + ", "
                + l.info.describeFlags() + ", block sizes " + l.info.minBlock() + "/" + l.info.preferredBlock() + "/"
                + l.info.maxPayload() : ", down") + ")";
    }

    /** The remote's state for status: up or down (since when, why), connections, reconnects. */
    public Map<String, Object> state() {
        Map<String, Object> m = new LinkedHashMap<>();
        Link l = link;
        m.put("uri", uri.toString());
        m.put("export", uri.exportName());
        m.put("state", closed ? "closed" : l != null ? "up" : "down");
        m.put("connections", l != null ? l.conns.size() : 0);
        m.put("tls", uri.tls());
        NbdExportInfo info = info();
        if (info != null) {
            m.put("flags", info.describeFlags());
            m.put("block_size_min", info.minBlock());
            m.put("block_size_max", info.maxPayload());
        }
        String reason = downReason;
        m.put("down_since", l == null && reason != null ? Instant.ofEpochMilli(downSinceMillis).toString() : null);
        m.put("down_reason", l == null ? reason : null);
        m.put("reconnect_attempts", l == null ? reconnectAttempts : 0);
        m.put("links_lost", linkLosses.get());
        m.put("reconnects", reconnects.get());
        return m;
    }

    /** True while connected. */
    public boolean isUp() {
        return link != null;
    }

    // ---- the device interface ----

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        Ranges.check(this, offset, dst.byteSize());
        if (dst.byteSize() == 0) {
            ensureOpen();
            return;
        }
        Link l = linkOrThrow("read", offset, dst.byteSize());
        long end = offset + dst.byteSize();
        behind.awaitOverlapping(alignDown(offset, l.info.minBlock()), alignUp(end, l.info.minBlock()));
        int min = l.info.minBlock();
        long midStart = alignUp(offset, min);
        long midEnd = alignDown(end, min);
        if (midStart >= midEnd) { // within one or two blocks, no whole block in between
            readUnaligned(l, offset, dst);
            return;
        }
        if (offset < midStart) {
            readUnaligned(l, offset, dst.asSlice(0, midStart - offset));
        }
        pieces(l, NBD_CMD_READ, 0, midStart, midEnd - midStart, null, dst.asSlice(midStart - offset, midEnd - midStart));
        if (midEnd < end) {
            readUnaligned(l, midEnd, dst.asSlice(midEnd - offset, end - midEnd));
        }
    }

    @Override
    public void write(long offset, MemorySegment src, boolean fua) throws IOException {
        Ranges.check(this, offset, src.byteSize());
        Link l = writableLink("write", offset, src.byteSize());
        if (src.byteSize() == 0) {
            return;
        }
        boolean nativeFua = fua && l.info.canFua();
        int flags = nativeFua ? NBD_CMD_FLAG_FUA : 0;
        long end = offset + src.byteSize();
        int min = l.info.minBlock();
        long midStart = alignUp(offset, min);
        long midEnd = alignDown(end, min);
        boolean edges = offset < midStart || midEnd < end || midStart >= midEnd;
        behind.awaitOverlapping(alignDown(offset, min), alignUp(end, min));
        var lock = edges ? rmwLock.writeLock() : rmwLock.readLock();
        lock.lock();
        try {
            if (midStart >= midEnd) {
                modify(l, offset, src.byteSize(), flags, src);
            } else {
                if (offset < midStart) {
                    modify(l, offset, midStart - offset, flags, src.asSlice(0, midStart - offset));
                }
                pieces(l, NBD_CMD_WRITE, flags, midStart, midEnd - midStart,
                        src.asSlice(midStart - offset, midEnd - midStart), null);
                if (midEnd < end) {
                    modify(l, midEnd, end - midEnd, flags, src.asSlice(midEnd - offset, end - midEnd));
                }
            }
        } finally {
            lock.unlock();
        }
        wrote(l, nativeFua);
        if (fua && !nativeFua) {
            ensureOpen();
            flushAs(fuaCursor);
        }
    }

    /**
     * Returns once the write is sent, with up to {@link WritesInFlight#NBD_WINDOW} such writes in
     * flight; one the server fails is reported by the next {@link #flush()} (not by other
     * flushers). Whole blocks only: a write with partial blocks waits, as {@link #write} does.
     */
    @Override
    public void writeBehind(long offset, MemorySegment src) throws IOException {
        Ranges.check(this, offset, src.byteSize());
        Link l = writableLink("write", offset, src.byteSize());
        int min = l.info.minBlock();
        long end = offset + src.byteSize();
        long midStart = alignUp(offset, min);
        long midEnd = alignDown(end, min);
        if (offset < midStart || midEnd < end || midStart >= midEnd) { // partial blocks, or nothing
            write(offset, src, false);
            return;
        }
        behind.awaitOverlapping(offset, end);
        rmwLock.readLock().lock();
        try {
            sendBehind(l, offset, src);
        } finally {
            rmwLock.readLock().unlock();
        }
    }

    /** Waits for the writes behind before it and reports their failures (once): writeback's flush. */
    @Override
    public void flush() throws IOException {
        ensureOpen();
        behind.settle(behind.mark(), uri.toString());
        flushAs(flushCursor);
    }

    /**
     * A flusher of its own, for writes that wait for their reply ({@link #write}): it fails after a
     * link was lost with writes no flush had covered, as every flusher does. Closing it forgets its
     * cursor.
     */
    @Override
    public Flusher newFlusher() {
        WritesInFlight.Cursor c = behind.newCursor();
        return new Flusher() {
            private volatile boolean closed;

            @Override
            public void flush() throws IOException {
                ensureOpen();
                if (closed) {
                    throw new IOException(uri + ": flusher is closed");
                }
                flushAs(c);
            }

            @Override
            public void close() {
                closed = true;
                behind.dropCursor(c);
            }
        };
    }

    /** The cursors of the flushers not closed yet, the device's own two included (tests). */
    int flusherCursors() {
        return behind.cursorCount();
    }

    private void flushAs(WritesInFlight.Cursor cursor) throws IOException {
        Link l = linkOrThrow("flush", 0, 0);
        if (WritesInFlight.takeLinkLoss(cursor)) {
            throw new IOException(uri + ": flush failed: the connection was lost after writes that no flush had "
                    + "covered yet; the server may have dropped them, so they must be written again");
        }
        if (l.info.readOnly() || !l.info.canFlush()) {
            return;
        }
        long seq = l.writeSeq.get();
        pieces(l, NBD_CMD_FLUSH, 0, 0, 0, null, null);
        l.flushedSeq.accumulateAndGet(seq, Math::max);
    }

    @Override
    public void trim(long offset, long length) throws IOException {
        writeZeroes(offset, length, false);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean fua) throws IOException {
        Ranges.check(this, offset, length);
        Link l = writableLink("write-zeroes", offset, length);
        if (length == 0) {
            return;
        }
        if (!l.info.canWriteZeroes()) {
            BackingDevice.super.writeZeroes(offset, length, fua);
            return;
        }
        boolean nativeFua = fua && l.info.canFua();
        int flags = nativeFua ? NBD_CMD_FLAG_FUA : 0;
        long end = offset + length;
        int min = l.info.minBlock();
        long midStart = alignUp(offset, min);
        long midEnd = alignDown(end, min);
        boolean edges = offset < midStart || midEnd < end || midStart >= midEnd;
        behind.awaitOverlapping(alignDown(offset, min), alignUp(end, min));
        var lock = edges ? rmwLock.writeLock() : rmwLock.readLock();
        lock.lock();
        try {
            if (midStart >= midEnd) {
                modify(l, offset, length, flags, null);
            } else {
                if (offset < midStart) {
                    modify(l, offset, midStart - offset, flags, null);
                }
                for (long at = midStart; at < midEnd; ) {
                    long n = Math.min(alignDown(MAX_ZERO_REQUEST, min), midEnd - at);
                    pieces(l, NBD_CMD_WRITE_ZEROES, flags, at, n, null, null);
                    at += n;
                }
                if (midEnd < end) {
                    modify(l, midEnd, end - midEnd, flags, null);
                }
            }
        } finally {
            lock.unlock();
        }
        wrote(l, nativeFua);
        if (fua && !nativeFua) {
            ensureOpen();
            flushAs(fuaCursor);
        }
    }

    /**
     * The remote's allocation, from {@code NBD_CMD_BLOCK_STATUS} on {@code base:allocation}:
     * HOLE|ZERO is HOLE, ZERO alone is ZERO, anything else DATA (a hole the server does not say
     * reads as zeros is not one for this interface). The request is widened to the server's
     * minimum block size and the answer clipped back; it covers a prefix when the server answers
     * for less (the caller asks again). Writes still in flight on the range land first. Every
     * byte is DATA when the server offers no such context, while the remote is down, and when the
     * server answers the request with an error: always correct, only less precise.
     */
    @Override
    public List<BlockStatus> blockStatus(long offset, long length, int maxExtents) throws IOException {
        Ranges.check(this, offset, length);
        ensureOpen();
        Link l = link;
        if (l == null || !l.info.hasAllocation()) {
            return BackingDevice.super.blockStatus(offset, length, maxExtents);
        }
        NbdConnection c = l.pick();
        int min = l.info.minBlock();
        long end = offset + length;
        long from = alignDown(offset, min);
        long to = alignUp(Math.min(end, from + MAX_STATUS_REQUEST), min);
        behind.awaitOverlapping(from, to);
        NbdConnection.Pending p;
        try {
            p = c.submit(NBD_CMD_BLOCK_STATUS, 0, from, (int) (to - from), null, null);
            NbdConnection.await(p);
        } catch (NbdConnection.Broken e) {
            lose(l, e.getMessage());
            return BackingDevice.super.blockStatus(offset, length, maxExtents);
        } catch (IOException e) {
            log.debug("{}: block status of [{}, +{}) failed, reporting data: {}", uri, from, to - from, e.getMessage());
            return BackingDevice.super.blockStatus(offset, length, maxExtents);
        }
        BlockStatus.Builder out = new BlockStatus.Builder(offset, length, maxExtents);
        long pos = from;
        int[] s = p.status;
        for (int i = 0; i + 1 < s.length && pos < end && !out.full(); i += 2) {
            long n = Integer.toUnsignedLong(s[i]);
            if (n == 0) {
                break; // the spec forbids it; what came before stands
            }
            long stop = Math.min(pos + n, end);
            if (stop > offset) {
                out.add(stop - Math.max(pos, offset), kindOf(s[i + 1]));
            }
            pos += n;
        }
        if (out.size() == 0) { // an answer that ends before offset: nothing learnt
            return BackingDevice.super.blockStatus(offset, length, maxExtents);
        }
        return out.build();
    }

    private static BlockStatus.Kind kindOf(int flags) {
        if ((flags & NBD_STATE_ZERO) == 0) {
            return BlockStatus.Kind.DATA;
        }
        return (flags & NBD_STATE_HOLE) != 0 ? BlockStatus.Kind.HOLE : BlockStatus.Kind.ZERO;
    }

    @Override
    public void close() throws IOException {
        Link l;
        Link fencing;
        if (closed) {
            return;
        }
        try {
            // Bounded: a server that holds a write past the fence could hold up a stop for ever.
            behind.settle(behind.mark(), uri.toString(),
                    options.requestTimeout().toNanos() + options.fenceTimeout().toNanos());
        } catch (IOException e) {
            log.warn("{}: closing with writes that failed after returning: {}", uri, e.getMessage());
        }
        synchronized (stateLock) {
            if (closed) {
                return;
            }
            closed = true;
            l = link;
            link = null;
            fencing = lost;
            lost = null;
        }
        LockSupport.unpark(supervisor);
        try {
            supervisor.join(TimeUnit.SECONDS.toMillis(5));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (Link x : new Link[] {l, fencing}) {
            if (x != null) {
                for (NbdConnection c : x.conns) {
                    c.close();
                }
            }
        }
        log.info("disconnected from {}", uri);
    }

    @Override
    public String toString() {
        return "NbdBackingDevice[" + uri + "]";
    }

    // ---- requests ----

    /**
     * Sends an aligned, non-FUA write as pieces that are not waited for ({@link WritesInFlight}):
     * each piece's reply ends it, counting it as written or keeping its failure for the next flush.
     * An error while sending fails this call (pieces already sent end on their own).
     */
    private void sendBehind(Link l, long offset, MemorySegment src) throws IOException {
        long length = src.byteSize();
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(l.info.maxPayload(), length - done);
            long at = offset + done;
            long seq = behind.begin(at, at + n);
            try {
                l.pick().submit(NBD_CMD_WRITE, 0, at, n, src.asSlice(done, n), null, p -> {
                    IOException f = p.failure;
                    if (f == null) {
                        wrote(l, false);
                    } else if (f instanceof NbdConnection.Broken) {
                        lose(l, f.getMessage());
                    }
                    behind.end(seq, f == null ? null : f.getMessage());
                });
            } catch (IOException e) {
                behind.end(seq, null); // never sent, or never known to be: this call reports it
                if (e instanceof NbdConnection.Broken) {
                    lose(l, e.getMessage());
                    throw new IOException(uri + ": write of [" + at + ", +" + n + ") failed: " + e.getMessage()
                            + "; reconnecting", e);
                }
                throw e;
            }
            done += n;
        }
    }

    /**
     * Sends {@code [offset, offset+length)} as pieces of at most the maximum payload (for
     * READ/WRITE; one request otherwise), all at once over the link's connections, then waits for
     * every one. A lost connection marks the link lost.
     */
    private void pieces(Link l, int type, int flags, long offset, long length, MemorySegment src,
                        MemorySegment dst) throws IOException {
        boolean payload = type == NBD_CMD_READ || type == NBD_CMD_WRITE;
        long step = payload ? l.info.maxPayload() : Math.max(1, length);
        List<NbdConnection.Pending> sent = new ArrayList<>();
        IOException failure = null;
        long done = 0;
        do {
            int n = (int) Math.min(step, length - done);
            try {
                sent.add(l.pick().submit(type, flags, offset + done, n,
                        src != null ? src.asSlice(done, n) : null, dst != null ? dst.asSlice(done, n) : null));
            } catch (IOException e) {
                failure = e;
                break;
            }
            done += n;
        } while (done < length);
        for (NbdConnection.Pending p : sent) {
            try {
                NbdConnection.await(p);
            } catch (IOException e) {
                if (failure == null) {
                    failure = e;
                }
            }
        }
        if (failure instanceof NbdConnection.Broken b) {
            lose(l, b.getMessage());
            throw new IOException(uri + ": " + io.pmcache.nbd.NbdConstants.commandName(type) + " of [" + offset
                    + ", +" + length + ") failed: " + b.getMessage() + "; reconnecting", b);
        }
        if (failure != null) {
            throw failure;
        }
    }

    /** Reads a range that lies within whole blocks [alignDown(offset), alignUp(end)) through a bounce buffer. */
    private void readUnaligned(Link l, long offset, MemorySegment dst) throws IOException {
        int min = l.info.minBlock();
        long start = alignDown(offset, min);
        long end = Math.min(size, alignUp(offset + dst.byteSize(), min));
        MemorySegment bounce = MemorySegment.ofArray(new byte[(int) (end - start)]);
        pieces(l, NBD_CMD_READ, 0, start, end - start, null, bounce);
        MemorySegment.copy(bounce, offset - start, dst, 0, dst.byteSize());
    }

    /**
     * Read-modify-write of {@code [offset, offset+length)} (data from {@code src}, zeros when null)
     * over whole blocks. The caller holds the write side of {@link #rmwLock}.
     */
    private void modify(Link l, long offset, long length, int flags, MemorySegment src) throws IOException {
        int min = l.info.minBlock();
        long start = alignDown(offset, min);
        long end = Math.min(size, alignUp(offset + length, min));
        // Under the write lock no write-behind starts; one still in flight on these blocks must land
        // before they are read, or this would write its old bytes back over it.
        behind.awaitOverlapping(start, end);
        {
            MemorySegment block = MemorySegment.ofArray(new byte[Math.toIntExact(end - start)]);
            boolean headPartial = start < offset;
            boolean tailPartial = offset + length < end;
            if (headPartial || tailPartial) {
                pieces(l, NBD_CMD_READ, 0, start, end - start, null, block);
            }
            if (src != null) {
                MemorySegment.copy(src, 0, block, offset - start, length);
            } else {
                block.asSlice(offset - start, length).fill((byte) 0);
            }
            pieces(l, NBD_CMD_WRITE, flags, start, end - start, block, null);
        }
    }

    /** After a successful write: count it for the flush-across-a-lost-link rule. */
    private void wrote(Link l, boolean durable) {
        if (durable) {
            return;
        }
        l.writeSeq.incrementAndGet();
        if (l.dead) {
            behind.linkLost(); // the link was given up while this write's reply was on its way
        }
    }

    private boolean isAligned(long at, int min) {
        return at % min == 0 || at == size;
    }

    private long alignUp(long at, int min) {
        return at % min == 0 ? at : Math.min(size, at - at % min + min);
    }

    private long alignDown(long at, int min) {
        return at == size ? at : at - at % min;
    }

    private void ensureOpen() throws IOException {
        if (closed) {
            throw new IOException(uri + ": backing device is closed");
        }
    }

    private Link writableLink(String what, long offset, long length) throws IOException {
        Link l = linkOrThrow(what, offset, length);
        if (l.info.readOnly()) {
            throw new IOException(uri + ": " + what + " of [" + offset + ", +" + length + ") refused: the server "
                    + "exports '" + uri.exportName() + "' read-only");
        }
        return l;
    }

    private Link linkOrThrow(String what, long offset, long length) throws IOException {
        ensureOpen();
        Link l = link;
        if (l != null) {
            return l;
        }
        ensureOpen();
        throw new IOException(uri + ": " + what + (what.equals("flush") ? "" : " of [" + offset + ", +" + length + ")")
                + " failed: the remote is unreachable since " + Instant.ofEpochMilli(downSinceMillis) + " ("
                + downReason + "); reconnecting (attempt " + reconnectAttempts + ")");
    }

    // ---- losing and regaining the link ----

    /** Marks {@code l} lost (once): calls fail fast from now on, its connections stop sending. */
    private void lose(Link l, String reason) {
        synchronized (stateLock) {
            if (link != l || closed) {
                return;
            }
            link = null;
            lost = l;
            downReason = reason;
            downSinceMillis = System.currentTimeMillis();
            reconnectAttempts = 0;
            linkLosses.incrementAndGet();
        }
        log.warn("{}: connection lost: {}; calls fail until it is back (reconnecting with backoff {} to {} ms)",
                uri, reason, options.reconnectMin().toMillis(), options.reconnectMax().toMillis());
        for (NbdConnection c : l.conns) {
            c.breakGracefully(reason);
        }
        LockSupport.unpark(supervisor);
    }

    /** Watches the link for breaks and stalls; while down, fences the lost link and reconnects. */
    private void supervise() {
        long tick = Math.max(TimeUnit.MILLISECONDS.toNanos(10),
                Math.min(TimeUnit.SECONDS.toNanos(1), options.requestTimeout().toNanos() / 4));
        long backoff = options.reconnectMin().toNanos();
        while (!closed) {
            try {
                Link l = link;
                if (l != null) {
                    watch(l);
                    LockSupport.parkNanos(this, tick);
                    continue;
                }
                fenceLost();
                if (closed) {
                    break;
                }
                try {
                    Link n;
                    synchronized (stateLock) {
                        generations++;
                    }
                    n = connect(uri, options, tls, generations);
                    if (n.info.size() != size) {
                        for (NbdConnection c : n.conns) {
                            c.close();
                        }
                        throw new IOException("the export now has " + n.info.size() + " bytes, but had " + size
                                + " at open: not the same device; staying disconnected");
                    }
                    synchronized (stateLock) {
                        if (closed) {
                            for (NbdConnection c : n.conns) {
                                c.close();
                            }
                            break;
                        }
                        link = n;
                        reconnects.incrementAndGet();
                    }
                    log.info("{}: reconnected after {} attempts ({} down since {})", uri, reconnectAttempts + 1,
                            describe(), Instant.ofEpochMilli(downSinceMillis));
                    backoff = options.reconnectMin().toNanos();
                } catch (IOException e) {
                    int attempt = ++reconnectAttempts;
                    String why = e.getMessage();
                    if (attempt == 1 || attempt % 10 == 0 || !why.equals(downReason)) {
                        log.warn("{}: reconnect attempt {} failed: {}; next in {} ms", uri, attempt, why,
                                TimeUnit.NANOSECONDS.toMillis(backoff));
                    }
                    downReason = why;
                    LockSupport.parkNanos(this, backoff);
                    backoff = Math.min(backoff * 2, options.reconnectMax().toNanos());
                }
            } catch (RuntimeException | Error e) {
                log.error("{}: NBD client supervisor: unexpected {}", uri, e.toString(), e);
                LockSupport.parkNanos(this, tick);
            }
        }
    }

    /**
     * After the fence: waits while a connection of {@code l} is open with changes outstanding, the
     * device down with that reason (logged now and every minute). True when none is left open.
     */
    private boolean awaitChangesOf(Link l) {
        long poll = Math.min(TimeUnit.SECONDS.toNanos(1), options.fenceTimeout().toNanos());
        long logged = 0;
        boolean waited = false;
        try {
            while (!closed) {
                int changes = 0;
                NbdConnection open = null;
                for (NbdConnection c : l.conns) {
                    if (!c.awaitClosed(0) && c.outstandingChanges() > 0) {
                        changes += c.outstandingChanges();
                        open = c;
                    }
                }
                if (open == null) {
                    break;
                }
                waited = true;
                String why = "the server still holds " + changes + " write(s) of the lost connection past the "
                        + options.fenceTimeout().toMillis() + " ms fence; reconnecting only once it has carried "
                        + "them out and closed it, so that none lands after a newer write";
                downReason = why;
                long now = System.nanoTime();
                if (logged == 0 || now - logged > TimeUnit.MINUTES.toNanos(1)) {
                    log.warn("{}: {}", uri, why);
                    logged = now;
                }
                open.awaitClosed(poll);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        boolean clean = true;
        for (NbdConnection c : l.conns) {
            try {
                clean &= c.awaitClosed(0);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (waited && clean) {
            log.info("{}: the server has closed the lost connections; reconnecting", uri);
        } else if (!clean && !closed) {
            log.warn("{}: the server did not close the lost connections within {} ms; closing them (it holds no "
                    + "write of ours: only reads, flushes or block status)", uri, options.fenceTimeout().toMillis());
        }
        return clean;
    }

    private void watch(Link l) {
        long now = System.nanoTime();
        long limit = options.requestTimeout().toNanos();
        for (NbdConnection c : l.conns) {
            if (c.isBroken()) {
                lose(l, c.brokenReason());
                return;
            }
            long stalled = c.stalledNanos(now);
            if (stalled > limit) {
                lose(l, "no reply for " + TimeUnit.NANOSECONDS.toMillis(stalled) + " ms with " + c.outstanding()
                        + " requests outstanding (request timeout " + options.requestTimeout().toMillis() + " ms)");
                return;
            }
        }
    }

    /**
     * Waits (at least {@code fenceTimeout}) for the server to finish and close each connection of
     * the lost link, then closes what is left and records whether writes went unflushed with it.
     * A connection the server keeps open past the fence while it still holds a write, write-zeroes
     * or trim of ours is waited for as long as that lasts (or until this device closes): such a
     * request carried out late would overwrite what the next link writes there. Reads, flushes and
     * block status it still holds are harmless: those connections are closed at the fence.
     */
    private void fenceLost() {
        Link l;
        synchronized (stateLock) {
            l = lost;
        }
        if (l == null) {
            return;
        }
        long deadline = System.nanoTime() + options.fenceTimeout().toNanos();
        boolean clean = true;
        try {
            for (NbdConnection c : l.conns) {
                clean &= c.awaitClosed(Math.max(0, deadline - System.nanoTime()));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            clean = false;
        }
        if (!clean) {
            clean = awaitChangesOf(l);
        }
        for (NbdConnection c : l.conns) {
            c.breakNow("fenced");
            try {
                c.awaitClosed(TimeUnit.SECONDS.toNanos(5));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        l.dead = true;
        if (l.writeSeq.get() > l.flushedSeq.get() && l.info.canFlush()) {
            behind.linkLost();
        }
        synchronized (stateLock) {
            if (lost == l) {
                lost = null;
            }
        }
    }

    /** Opens one connection, and when the server offers CAN_MULTI_CONN, the others. */
    private static Link connect(NbdUri uri, NbdClientOptions options, TlsClientConfig tls, int generation)
            throws IOException {
        List<NbdConnection> conns = new ArrayList<>();
        try {
            NbdConnection first = NbdConnection.open(uri, options, tls);
            conns.add(first);
            int n = first.info.canMultiConn() ? options.connections() : 1;
            for (int i = 1; i < n; i++) {
                NbdConnection c = NbdConnection.open(uri, options, tls);
                conns.add(c);
                if (c.info.size() != first.info.size() || c.info.flags() != first.info.flags()
                        || c.info.minBlock() != first.info.minBlock()
                        || c.info.hasAllocation() != first.info.hasAllocation()) {
                    throw new IOException(uri + ": connection " + (i + 1) + " saw another export (size "
                            + c.info.size() + ", flags " + c.info.flags() + ") than the first (size "
                            + first.info.size() + ", flags " + first.info.flags() + ")");
                }
            }
            if (generation == 1 && !first.info.canFlush() && !first.info.readOnly()) {
                log.warn("{}: the server offers no flush: its writes are taken as durable when acknowledged", uri);
            }
            return new Link(generation, List.copyOf(conns));
        } catch (IOException | RuntimeException e) {
            for (NbdConnection c : conns) {
                c.close();
            }
            throw e;
        }
    }
}
