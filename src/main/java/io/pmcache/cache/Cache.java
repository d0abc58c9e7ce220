package io.pmcache.cache;

import io.pmcache.backing.BackingDevice;
import io.pmcache.device.BlockDevice;
import io.pmcache.device.Ranges;
import io.pmcache.format.CacheInfo;
import io.pmcache.format.Layout;
import io.pmcache.format.LogPosition;
import io.pmcache.format.MediaCorruptException;
import io.pmcache.format.SegmentInfo;
import io.pmcache.format.Superblock;
import io.pmcache.index.RangeIndex;
import io.pmcache.media.Medium;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.security.SecureRandom;
import java.util.BitSet;
import java.util.function.LongConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A write-back cache: a {@link BlockDevice} of the backing device's size whose writes land in the
 * persistent {@link Medium} and flow to the backing device in the background.
 *
 * <p>Life: {@link #format} once, then {@link #open} / {@link #close} any number of times. The
 * caller owns the medium and the backing device and closes them after the cache.
 *
 * <p>Exclusive use: a {@link io.pmcache.media.MappedFileMedium} opened read-write holds an
 * exclusive lock on its file and a read-write {@link io.pmcache.backing.FileBackingDevice} one on
 * the backing file, each until closed, so no second process (or second opener in this process)
 * can open the same cache file or write back into the same backing file meanwhile.
 */
public final class Cache implements BlockDevice {
    private static final Logger log = LoggerFactory.getLogger(Cache.class);

    private final Engine e;
    private final WritePath writes;
    private final ReadPath reads;
    private final Workers workers;
    private final Writeback writeback;
    private final GarbageCollector gc;
    /** No I/O runs once close has begun. */
    private final IoGate gate = new IoGate();
    /** What a refused call names (built only when refused: not on every read and write). */
    private final java.util.function.Supplier<String> gateName = this::gateName;

    private Cache(Engine e, CacheOptions options) {
        this.e = e;
        this.writes = new WritePath(e);
        this.reads = new ReadPath(e);
        this.writeback = new Writeback(e);
        this.gc = new GarbageCollector(e);
        this.workers = new Workers(e, writeback, gc, options);
    }

    // ---------------------------------------------------------------- format and open

    /** True when the medium starts with a pmcache superblock magic (it may still be corrupt). */
    public static boolean looksFormatted(Medium medium) {
        return Superblock.hasMagic(medium.segment());
    }

    /** Formats {@code medium} as an empty cache for {@code backing}. Overwrites whatever was there. */
    public static void format(Medium medium, BackingDevice backing, FormatOptions options) throws IOException {
        MemorySegment m = medium.segment();
        int count = Layout.segmentsFitting(medium.size(), options.segmentSize());
        if (count < CacheOptions.SEGMENTS_PER_HEAD) {
            long need = Layout.segmentAreaOffset(CacheOptions.SEGMENTS_PER_HEAD)
                    + CacheOptions.SEGMENTS_PER_HEAD * options.segmentSize();
            throw new IOException(medium.describe() + ": " + medium.size() + " bytes hold " + count
                    + " segments of " + options.segmentSize() + " bytes; a cache needs at least "
                    + CacheOptions.SEGMENTS_PER_HEAD + " (" + need + " bytes)");
        }
        m.asSlice(0, Layout.PAGE).fill((byte) 0);
        medium.persist(0, Layout.PAGE);
        long cacheId = new SecureRandom().nextLong();
        long area = Layout.segmentAreaOffset(count);
        SegmentTable table = new SegmentTable(medium, cacheId, count, options.segmentSize(), area);
        table.formatAll();
        medium.persist(Layout.SEGMENT_TABLE, area - Layout.SEGMENT_TABLE);
        LogPosition start = new LogPosition(0, 0, 1);
        m.asSlice(Layout.CACHE_INFO_SLOT1, CacheInfo.SIZE).fill((byte) 0);
        new CacheInfo(0, start, start, CacheOptions.GC_PERCENT_DEFAULT).encode(m, Layout.CACHE_INFO_SLOT0, cacheId);
        medium.persist(Layout.CACHE_INFO_SLOT0, Layout.SEGMENT_TABLE - Layout.CACHE_INFO_SLOT0);
        new Superblock(Superblock.VERSION, options.dataCrc() ? Superblock.FLAG_DATA_CRC : 0, options.segmentSize(),
                count, area, backing.size(), backing.fingerprint(), cacheId, System.currentTimeMillis(),
                medium.size()).encode(m);
        medium.persist(0, Superblock.SIZE);
        log.info("formatted {}: {} segments of {} MiB for {} ({} bytes){}", medium.describe(), count,
                options.segmentSize() >> 20, backing.describe(), backing.size(),
                options.dataCrc() ? ", data CRC verification on" : "");
    }

    /** Reads the superblock of a formatted medium (for tools). */
    public static Superblock superblock(Medium medium) throws MediaCorruptException {
        return Superblock.decode(medium.segment(), medium.describe());
    }

    /**
     * Opens a formatted cache: validates the superblock against {@code backing}, replays the key
     * log, and starts the background workers.
     */
    public static Cache open(Medium medium, BackingDevice backing, CacheOptions options) throws IOException {
        if (medium instanceof io.pmcache.media.MappedFileMedium f && f.isReadOnly()) {
            throw new IOException(medium.describe() + ": mapped read-only; a cache opens only a read-write medium");
        }
        FailState failure = new FailState();
        try {
            return open(new FailStopMedium(medium, failure), backing, options, failure);
        } catch (EngineAbort ex) {
            throw ex.io(); // a persist failed during replay: nothing was opened
        }
    }

    private static Cache open(Medium medium, BackingDevice backing, CacheOptions options, FailState failure)
            throws IOException {
        Superblock sb = superblock(medium);
        if (sb.backingSize() != backing.size() || sb.backingFingerprint() != backing.fingerprint()) {
            throw new WrongBackingDeviceException(medium.describe() + " caches a backing device of "
                    + sb.backingSize() + " bytes with fingerprint " + Long.toHexString(sb.backingFingerprint())
                    + ", but " + backing.describe() + " has " + backing.size() + " bytes and fingerprint "
                    + Long.toHexString(backing.fingerprint()) + "; refusing to mix them");
        }
        int count = sb.segmentCount();
        if (options.parallel() * CacheOptions.SEGMENTS_PER_HEAD > count) {
            throw new IllegalArgumentException("parallel " + options.parallel() + " needs at least "
                    + options.parallel() * CacheOptions.SEGMENTS_PER_HEAD + " segments ("
                    + (options.parallel() * CacheOptions.SEGMENTS_PER_HEAD * sb.segmentSize() >> 20)
                    + " MiB of segments), but " + medium.describe() + " has " + count
                    + "; use a larger cache, smaller segments or a lower parallel");
        }
        CacheInfo info = CacheInfo.read(medium.segment(), sb.cacheId(), sb, medium.describe());
        CacheStats stats = new CacheStats();
        SegmentTable segments = new SegmentTable(medium, sb.cacheId(), count, sb.segmentSize(),
                sb.segmentAreaOffset());
        BitSet unknown = new BitSet(count);
        BitSet oneSlotDamaged = new BitSet(count);
        for (int s = 0; s < count; s++) {
            SegmentInfo si = SegmentInfo.read(medium.segment(), s, sb.cacheId(), count);
            if (si == null) {
                unknown.set(s);
                si = new SegmentInfo(0, 0, SegmentInfo.NO_NEXT);
            } else if (SegmentInfo.slotDamaged(medium.segment(), s, 0, sb.cacheId(), count)
                    || SegmentInfo.slotDamaged(medium.segment(), s, 1, sb.cacheId(), count)) {
                oneSlotDamaged.set(s);
            }
            segments.load(s, si);
        }
        RangeIndex index = new RangeIndex(backing.size());
        LogReader reader = new LogReader(medium, segments, sb.cacheId(), backing.size());
        Replay.Result replayed = new Replay(medium, segments, reader, index, stats, sb.cacheId(), sb.dataCrc(),
                unknown, oneSlotDamaged).run(info);

        int reserve = Math.max(2, count / 64);
        Runnable[] onPressure = {() -> { }};
        SegmentAllocator allocator = new SegmentAllocator(count, reserve, stats, () -> onPressure[0].run());
        failure.onFail(() -> allocator.fail(failure.exception()));
        for (int s = 0; s < count; s++) {
            if (replayed.logSegments().get(s) || segments.refs(s) > 0) {
                allocator.markUsed(s);
            }
        }
        KeyLog keyLog = new KeyLog(medium, segments, allocator, stats, failure, sb.cacheId(), options.parallel(),
                replayed.head());
        DataHead[] heads = new DataHead[options.parallel()];
        for (int i = 0; i < heads.length; i++) {
            heads[i] = new DataHead(segments, allocator);
        }
        CacheInfoStore store = new CacheInfoStore(medium, sb.cacheId(), info);
        if (!replayed.keyTail().equals(info.keyTail()) || !replayed.dirtyTail().equals(info.dirtyTail())) {
            store.setTails(replayed.keyTail(), replayed.dirtyTail()); // what replay found the log to say
        }
        if (options.gcPercent() >= 0 && options.gcPercent() != info.gcPercent()) {
            store.setGcPercent(options.gcPercent());
        }
        Engine engine = new Engine(medium, backing, sb, segments, allocator, index, keyLog, reader, store, heads,
                stats, failure);
        Cache cache = new Cache(engine, options);
        segments.onUnreferenced(seg -> {
            cache.gc.reclaim(seg);
            cache.workers.poke();
        });
        onPressure[0] = cache.workers::pressure;
        cache.workers.start();
        log.info("opened {}: replayed {} keys in {} ksets in {} ms ({} keys/s); {} of {} segments used, {} dirty bytes",
                medium.describe(), stats.replayKeys, stats.replayKsets, stats.replayNanos / 1_000_000,
                stats.replayKeys * 1_000_000_000L / Math.max(1, stats.replayNanos), allocator.usedCount(), count,
                stats.dirtyBytes.get());
        return cache;
    }

    // ---------------------------------------------------------------- block device

    @Override
    public long size() {
        return e.backing.size();
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        Ranges.check(this, offset, dst.byteSize());
        enter(false);
        try {
            reads.read(offset, dst);
        } catch (EngineAbort ex) {
            throw ex.io();
        } catch (InternalError ex) {
            throw mediumFault(ex);
        } finally {
            exit();
        }
    }

    @Override
    public void write(long offset, MemorySegment src, boolean fua) throws IOException {
        Ranges.check(this, offset, src.byteSize());
        enter(true);
        try {
            writes.write(offset, src, fua);
        } catch (EngineAbort ex) {
            throw ex.io();
        } catch (InternalError ex) {
            throw mediumFault(ex);
        } finally {
            exit();
        }
    }

    @Override
    public void flush() throws IOException {
        run(true, () -> {
            e.keyLog.sealAll();
            e.stats.flushes.increment();
        });
    }

    @Override
    public void trim(long offset, long length) throws IOException {
        Ranges.check(this, offset, length);
        run(true, () -> {
            writes.zero(offset, length, false);
            e.stats.trims.increment();
        });
    }

    @Override
    public void writeZeroes(long offset, long length, boolean fua) throws IOException {
        Ranges.check(this, offset, length);
        run(true, () -> {
            writes.zero(offset, length, fua);
            e.stats.writes.increment();
        });
    }

    /** An engine call that may end in an {@link EngineAbort}. */
    private interface Call {
        void run() throws IOException;
    }

    /** Runs {@code call} inside the gate (a change when {@code changes}), unwrapping aborts. */
    private void run(boolean changes, Call call) throws IOException {
        enter(changes);
        try {
            call.run();
        } catch (EngineAbort ex) {
            throw ex.io();
        } catch (InternalError ex) {
            throw mediumFault(ex);
        } finally {
            exit();
        }
    }

    /**
     * A load or store of the mapped medium faulted (SIGBUS: the cache file was truncated under the
     * mapping, or its device failed a page-in): the medium cannot be trusted, the cache fails.
     */
    private IOException mediumFault(InternalError ex) {
        e.failure.fail("an access to the mapped medium " + e.medium.describe() + " faulted", ex);
        return e.failure.exception();
    }

    /**
     * Admits one call, or throws {@link io.pmcache.device.DeviceClosedException} once close began;
     * a call that changes data or asks for durability also fails once the cache has failed.
     */
    private void enter(boolean changes) throws IOException {
        gate.enter(gateName);
        if (changes && e.failure.failed()) {
            gate.exit();
            throw e.failure.exception();
        }
    }

    private void exit() {
        gate.exit();
    }

    private String gateName() {
        return "cache " + e.medium.describe();
    }

    // ---------------------------------------------------------------- administration

    public int gcPercent() {
        return e.info.current().gcPercent();
    }

    /** Changes gc_percent (0..90) at run time; persisted. */
    public void setGcPercent(int percent) {
        CacheOptions.checkGcPercent(percent);
        e.info.setGcPercent(percent);
        workers.poke();
    }

    public CacheStatus status() {
        CacheStats s = e.stats;
        CacheInfo info = e.info.current();
        var head = e.keyLog.head();
        return new CacheStatus(size(), e.superblock.segmentSize(), e.segments.count(), e.allocator.usedCount(),
                info.gcPercent(), e.superblock.dataCrc(),
                s.reads.sum(), s.readBytes.sum(), s.writes.sum(), s.writeBytes.sum(), s.flushes.sum(), s.trims.sum(),
                s.readHits.sum(), s.readPartialHits.sum(), s.readMisses.sum(), s.fillBytes.sum(),
                s.fillsSkipped.sum(), s.dirtyBytes.get(), s.spaceWaits.sum(),
                s.spaceWaitNanos.sum() + e.allocator.waitingNanos(System.nanoTime()),
                s.ksetsSealed.sum(), s.writebackBytes.sum(), s.writebackKeys.sum(), s.writebackBatches.sum(),
                info.dirtyTail().toString(), s.backingErrors.sum(), s.backingRetries.sum(), s.lastBackingError,
                s.gcPasses.sum(), s.gcKsets.sum(), s.segmentsReclaimed.sum(), s.corruptKeysSkipped.sum(),
                s.dataCrcErrors.sum(), s.replayNanos, s.replayKsets, s.replayKeys,
                info.keyTail().toString(), info.dirtyTail().toString(), head.toString(),
                Math.max(0, head.ksetSeq() - info.dirtyTail().ksetSeq()),
                s.ksetsDamaged.sum(), writeback.stalledMillis(System.nanoTime()), e.failure.reason());
    }

    /**
     * Writes back everything dirty now (the cache stays warm). {@code progress} receives the dirty
     * bytes left, from time to time.
     */
    public void flushAll(LongConsumer progress) throws IOException {
        run(true, () -> {
            e.keyLog.sealAll();
            writeback.drain(progress, workers);
        });
    }

    /**
     * Writes back everything and empties the cache: afterwards the backing device alone holds the
     * data and the cache is clean and empty. {@code progress} receives the dirty bytes left.
     */
    public void detach(LongConsumer progress) throws IOException {
        run(true, () -> {
            workers.pauseGc();
            try {
                e.keyLog.sealAll();
                writeback.drain(progress, workers);
                gc.collectAll();
            } finally {
                workers.resumeGc();
            }
        });
    }

    /** Stops cleanly: every kset sealed and persisted. Does not wait for writeback. */
    @Override
    public void close() throws IOException {
        close(false);
    }

    /**
     * Stops cleanly; with {@code drainWriteback}, first writes back everything dirty.
     *
     * <p>Bounded: new calls are refused, calls waiting for space fail at once with
     * {@link io.pmcache.device.DeviceClosedException}, the calls in flight get up to
     * {@link #CLOSE_DRAIN_MILLIS} to finish, then the workers stop and every open kset is sealed
     * and persisted (unless the cache has failed: then nothing more is written). Whatever was
     * acknowledged stays in the medium.
     */
    public void close(boolean drainWriteback) throws IOException {
        IOException drainFailure = null;
        if (drainWriteback && !gate.isClosed() && !e.failure.failed()) {
            try {
                flushAll(left -> { });
            } catch (IOException ex) {
                drainFailure = ex; // the dirty data stays in the cache; close anyway
                log.error("stop: writeback could not drain ({}); {} dirty bytes stay in the cache", ex.getMessage(),
                        e.stats.dirtyBytes.get());
            }
        }
        if (!gate.close()) {
            return;
        }
        e.allocator.close();
        long left = gate.awaitIdle(CLOSE_DRAIN_MILLIS);
        if (left > 0) {
            log.warn("stop: {} calls still in flight after {} ms (a backing device that does not answer?); "
                    + "closing anyway", left, CLOSE_DRAIN_MILLIS);
        }
        workers.stop();
        if (e.failure.failed()) {
            log.error("closed {} in the FAILED state ({}): nothing more was written to it", e.medium.describe(),
                    e.failure.reason());
            throw e.failure.exception();
        }
        try {
            e.keyLog.sealAll();
            for (DataHead h : e.heads) {
                h.detach();
            }
        } catch (EngineAbort ex) {
            throw ex.io();
        }
        log.info("closed {}: {} dirty bytes not yet written back", e.medium.describe(), e.stats.dirtyBytes.get());
        if (drainFailure != null) {
            throw drainFailure;
        }
    }

    /** How long close waits for the calls in flight before it goes on. */
    static final long CLOSE_DRAIN_MILLIS = 30_000;

    /**
     * Tests only: stops the background threads and refuses further I/O WITHOUT sealing or
     * persisting anything, as if the process had been killed at this instant.
     */
    void abandonForTests() {
        if (gate.close()) {
            e.allocator.close();
            gate.awaitIdle(CLOSE_DRAIN_MILLIS);
            workers.stop();
        }
    }

    /** Tests only: installs a hook called at named points of writeback and gc steps. */
    void stepHookForTests(StepHook h) {
        e.hook = h == null ? StepHook.NONE : h;
    }

    /** Tests only: the writeback stepper (drive it with the workers off). */
    Writeback writebackForTests() {
        return writeback;
    }

    /** Tests only: the garbage collector (drive it with the workers off). */
    GarbageCollector gcForTests() {
        return gc;
    }

    /** Index and log internals for tests in this package. */
    Engine engine() {
        return e;
    }

    /** The background workers, for tests in this package. */
    Workers workers() {
        return workers;
    }
}
