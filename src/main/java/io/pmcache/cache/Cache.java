package io.pmcache.cache;

import io.pmcache.backing.BackingDevice;
import io.pmcache.backing.FileBackingDevice;
import io.pmcache.device.BlockDevice;
import io.pmcache.device.Ranges;
import io.pmcache.format.CacheInfo;
import io.pmcache.format.Layout;
import io.pmcache.format.LogPosition;
import io.pmcache.format.MediaCorruptException;
import io.pmcache.format.Superblock;
import io.pmcache.index.RangeIndex;
import io.pmcache.media.MappedFileMedium;
import io.pmcache.media.Medium;
import io.pmcache.device.PayloadSource;
import io.pmcache.os.FileUseLock;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.function.LongConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A write-back cache: a {@link BlockDevice} of the backing device's size whose writes land in the
 * persistent {@link Medium} and flow to the backing device in the background.
 *
 * <p>Life: {@link #format} once, then {@link #open} / {@link #close} any number of times. The
 * caller owns the medium and the backing device and closes them after the cache. Or, in one call,
 * {@link #openOrCreate}: it creates and formats a missing cache file, opens an existing one, and
 * the cache it returns owns both files (see docs/library.md).
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
    private final BlockStatusQuery blockStatus;
    /** Writes to the backing device (writethrough, writearound, none, the sequential cutoff). */
    private final DirectPath direct;
    /** One mode switch at a time. */
    private final java.util.concurrent.locks.ReentrantLock modeSwitch = new java.util.concurrent.locks.ReentrantLock();
    private final Workers workers;
    private final Writeback writeback;
    private final GarbageCollector gc;
    /** How fast writeback runs; the one authority on pacing. */
    private final WritebackPolicy pacing;
    private final boolean writebackOn;
    /** No I/O runs once close has begun. */
    private final IoGate gate = new IoGate();
    /** What this cache opened itself ({@link #openOrCreate}) and closes after itself, in order. */
    private AutoCloseable[] owned = {};
    /** What a refused call names (built only when refused: not on every read and write). */
    private final java.util.function.Supplier<String> gateName = this::gateName;

    private Cache(Engine e, CacheOptions options) throws IOException {
        this.e = e;
        this.writes = new WritePath(e);
        this.reads = new ReadPath(e);
        this.blockStatus = new BlockStatusQuery(e);
        this.direct = new DirectPath(e, reads, e.backing.newFlusher());
        this.writeback = new Writeback(e);
        this.gc = new GarbageCollector(e);
        this.pacing = new WritebackPolicy(options.pacing());
        this.writebackOn = options.writeback();
        this.workers = new Workers(e, writeback, gc, pacing, options);
    }

    // ---------------------------------------------------------------- format and open

    /** True when the medium starts with a pmcache superblock magic (it may still be corrupt). */
    public static boolean looksFormatted(Medium medium) {
        return Superblock.hasMagic(medium.segment());
    }

    /** Formats {@code medium} as an empty cache for {@code backing}. Overwrites whatever was there. */
    public static void format(Medium medium, BackingDevice backing, FormatOptions options) throws IOException {
        MemorySegment m = medium.segment();
        long segmentSize = options.segmentSizeFor(medium.size());
        int count = Layout.segmentsFitting(medium.size(), segmentSize);
        if (count < CacheOptions.SEGMENTS_PER_HEAD) {
            throw new IOException(medium.describe() + ": " + tooSmall(medium.size(), segmentSize, count));
        }
        m.asSlice(0, Layout.PAGE).fill((byte) 0);
        medium.persist(0, Layout.PAGE);
        long cacheId = new SecureRandom().nextLong();
        long area = Layout.segmentAreaOffset(count);
        SegmentTable table = new SegmentTable(medium, cacheId, count, segmentSize, area);
        table.formatAll();
        medium.persist(Layout.SEGMENT_TABLE, area - Layout.SEGMENT_TABLE);
        LogPosition start = new LogPosition(0, 0, 1);
        m.asSlice(Layout.CACHE_INFO_SLOT1, CacheInfo.SIZE).fill((byte) 0);
        new CacheInfo(0, start, start, CacheOptions.GC_PERCENT_DEFAULT).encode(m, Layout.CACHE_INFO_SLOT0, cacheId);
        medium.persist(Layout.CACHE_INFO_SLOT0, Layout.SEGMENT_TABLE - Layout.CACHE_INFO_SLOT0);
        new Superblock(Superblock.VERSION, options.dataCrc() ? Superblock.FLAG_DATA_CRC : 0, segmentSize,
                count, area, backing.size(), backing.fingerprint(), cacheId, System.currentTimeMillis(),
                medium.size()).encode(m);
        medium.persist(0, Superblock.SIZE);
        log.info("formatted {}: {} segments of {} MiB for {}{}", medium.describe(), count, segmentSize >> 20,
                backing.describe(), options.dataCrc() ? ", data CRC verification on" : "");
    }

    /** Why a medium of {@code size} bytes holding {@code count} segments cannot be a cache, and what would fit. */
    private static String tooSmall(long size, long segmentSize, int count) {
        int min = CacheOptions.SEGMENTS_PER_HEAD;
        String found = size + " bytes hold " + count + " segment" + (count == 1 ? "" : "s") + " of "
                + (segmentSize >> 20) + " MiB; a cache needs at least " + min;
        long fits = segmentSize >> 1;
        while (fits >= Superblock.MIN_SEGMENT_SIZE && Layout.segmentsFitting(size, fits) < min) {
            fits >>= 1;
        }
        if (fits >= Superblock.MIN_SEGMENT_SIZE) {
            return found + ": use a segment size of " + (fits >> 20) + " MiB or less (--segment-size "
                    + (fits >> 20) + "M), or a larger medium";
        }
        return found + ": the smallest cache is " + smallestMedium() + " bytes (" + min + " segments of 1 MiB)";
    }

    /** The smallest medium a cache fits in: its metadata and the fewest segments, of the smallest size. */
    public static long smallestMedium() {
        int min = CacheOptions.SEGMENTS_PER_HEAD;
        return Layout.segmentAreaOffset(min) + min * Superblock.MIN_SEGMENT_SIZE;
    }

    /**
     * The result of {@link #openOrFormat}: the mapped medium, and whether this call created and
     * formatted it (so a caller that fails later knows the file is its own to remove).
     */
    public record OpenedMedium(MappedFileMedium medium, boolean formatted) {
    }

    /** True when {@code file} is missing or an empty regular file: {@link #openOrFormat} creates it. */
    public static boolean isNewFile(Path file) throws IOException {
        return !Files.exists(file) || (Files.isRegularFile(file) && Files.size(file) == 0);
    }

    /**
     * Maps the cache medium in {@code file}. A missing or empty file is created with
     * {@code sizeIfNew} bytes and formatted for {@code backing} with {@code format}; if that fails
     * the new file is removed again. An existing file must already be a pmcache cache: anything
     * else is refused and never overwritten (format it explicitly with {@link #format}). Whether
     * the cache is the one for {@code backing} is checked by {@link #open}.
     */
    public static OpenedMedium openOrFormat(Path file, long sizeIfNew, BackingDevice backing, FormatOptions format)
            throws IOException {
        if (!isNewFile(file)) {
            MappedFileMedium m = MappedFileMedium.open(file);
            if (!looksFormatted(m)) {
                m.close();
                throw new IOException(file + " is neither empty nor a pmcache cache; refusing to overwrite it "
                        + "(format it explicitly, e.g. `pmcache format --force`, if it may be erased)");
            }
            return new OpenedMedium(m, false);
        }
        if (Files.exists(file)) {
            // An empty file: never delete one that another opener is about to format.
            try (FileUseLock l = FileUseLock.acquire(file, FileUseLock.Mode.EXCLUSIVE, "cache file")) {
                Files.delete(file);
            }
        }
        MappedFileMedium m = MappedFileMedium.create(file, sizeIfNew);
        try {
            format(m, backing, format);
        } catch (IOException | RuntimeException e) {
            m.close();
            Files.deleteIfExists(file);
            throw e;
        }
        return new OpenedMedium(m, true);
    }

    /** {@link #openOrCreate(Path, long, Path, FormatOptions, CacheOptions)} with the default options. */
    public static Cache openOrCreate(Path cacheFile, long cacheSize, Path backingFile) throws IOException {
        return openOrCreate(cacheFile, cacheSize, backingFile, FormatOptions.defaults(), CacheOptions.defaults());
    }

    /**
     * Create-or-open in one call: opens the backing file (which must exist) read-write, maps the
     * cache file ({@link #openOrFormat}: created with {@code cacheSize} bytes and formatted with
     * {@code format} when missing or empty) and opens the cache ({@link #open}). The cache owns
     * both files: {@link #close()} closes them after itself. If anything fails, what was opened is
     * closed and a cache file this call created is removed.
     */
    public static Cache openOrCreate(Path cacheFile, long cacheSize, Path backingFile, FormatOptions format,
                                     CacheOptions options) throws IOException {
        FileBackingDevice disk = FileBackingDevice.open(backingFile, false);
        OpenedMedium opened = null;
        try {
            opened = openOrFormat(cacheFile, cacheSize, disk, format);
            Cache c = open(opened.medium(), disk, options);
            c.owned = new AutoCloseable[] {opened.medium(), disk};
            return c;
        } catch (IOException | RuntimeException e) {
            try {
                if (opened != null) {
                    opened.medium().close();
                    if (opened.formatted()) {
                        Files.deleteIfExists(cacheFile);
                    }
                }
                disk.close();
            } catch (IOException | RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
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
        if (medium instanceof MappedFileMedium f && f.isReadOnly()) {
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
        WrongBackingDeviceException.Mismatch wrong = WrongBackingDeviceException.mismatch(sb, backing);
        if (wrong != null) {
            throw new WrongBackingDeviceException(medium.describe() + ": wrong backing device: " + wrong.reason()
                    + "; refusing to mix them. Next: " + wrong.nextStep());
        }
        int count = sb.segmentCount();
        int parallel = options.parallelFor(count);
        if (parallel * CacheOptions.SEGMENTS_PER_HEAD > count) {
            throw new IllegalArgumentException("parallel " + parallel + " needs at least "
                    + parallel * CacheOptions.SEGMENTS_PER_HEAD + " segments ("
                    + (parallel * CacheOptions.SEGMENTS_PER_HEAD * sb.segmentSize() >> 20)
                    + " MiB of segments), but " + medium.describe() + " has " + count
                    + "; use a larger cache, smaller segments or a lower parallel");
        }
        CacheStats stats = new CacheStats();
        Replay.Prepared prepared = Replay.prepare(medium, sb, backing.size(), stats);
        CacheInfo info = prepared.info();
        SegmentTable segments = prepared.segments();
        LogReader reader = prepared.reader();
        RangeIndex index = prepared.index();
        Replay.Result replayed = prepared.run();

        int reserve = Math.max(2, count / 64);
        SegmentAllocator allocator = new SegmentAllocator(count, reserve, stats);
        failure.onFail(() -> allocator.fail(failure.exception()));
        for (int s = 0; s < count; s++) {
            if (replayed.logSegments().get(s) || segments.refs(s) > 0) {
                allocator.markUsed(s);
            }
        }
        KeyLog keyLog = new KeyLog(medium, segments, allocator, stats, failure, sb.cacheId(), parallel,
                replayed.head());
        DataHead[] heads = new DataHead[parallel];
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
        if (info.cleanUntrustedBefore() == CacheInfo.CLEAN_UNTRUSTED_ALL) {
            // Replay left the clean keys of the log out; those written from now on are trusted
            // until the next direct write of the backing device (DirectPath). First make durable
            // what the last run wrote directly (a crashed process leaves it in the OS): a read-miss
            // fill of such data must not outlive a power cut that loses it.
            backing.flush();
            store.setCleanUntrustedBefore(replayed.head().ksetSeq());
        }
        Engine engine = new Engine(medium, backing, sb, segments, allocator, index, keyLog, reader, store, heads,
                stats, failure);
        engine.policy.setMode(CacheMode.values()[info.cacheMode()]);
        Cache cache = new Cache(engine, options);
        segments.onUnreferenced(seg -> {
            cache.gc.reclaim(seg);
            cache.workers.poke();
        });
        cache.workers.start();
        log.info("opened {}: replayed {} keys in {} ksets in {} ms ({} keys/s); {} of {} segments used, {} dirty bytes",
                medium.describe(), stats.replayKeys, stats.replayKsets, stats.replayNanos / 1_000_000,
                stats.replayKeys * 1_000_000_000L / Math.max(1, stats.replayNanos), allocator.usedCount(), count,
                stats.dirtyBytes.sum());
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
        write(offset, src.byteSize(), src, null, fua);
    }

    /**
     * Cached writes read {@code data} straight into the medium ({@link WritePath#writeFrom}); the
     * others take it whole ({@link PayloadSource#rest}).
     */
    @Override
    public void writeFrom(long offset, int length, PayloadSource data, boolean fua) throws IOException {
        write(offset, length, null, data, fua);
    }

    /** {@link #write} and {@link #writeFrom}: the data in {@code src}, or else delivered by {@code data}. */
    private void write(long offset, long length, MemorySegment src, PayloadSource data, boolean fua)
            throws IOException {
        Ranges.check(this, offset, length);
        enter(true);
        try {
            CachePolicy.Route route = e.policy.write(offset, length);
            if (route == CachePolicy.Route.CACHE) {
                if (src != null) {
                    writes.write(offset, src, fua);
                } else {
                    writes.writeFrom(offset, (int) length, data, fua);
                }
            } else {
                writeDirect(route, offset, src != null ? src : data.rest(), fua);
            }
            if (fua) {
                e.barriers.passed();
            }
        } catch (EngineAbort ex) {
            throw ex.io();
        } catch (InternalError ex) {
            throw mediumFault(ex);
        } finally {
            exit();
        }
    }

    /** A write the policy routes past the cache (THROUGH or AROUND), piece by piece ({@link DirectPath}). */
    private void writeDirect(CachePolicy.Route route, long offset, MemorySegment src, boolean fua) throws IOException {
        boolean[] cached = {false};
        direct.write(offset, src.byteSize(), route == CachePolicy.Route.THROUGH ? src : null,
                (pos, n, done) -> e.backing.write(pos, src.asSlice(done, n), fua),
                (pos, n, done) -> {
                    writes.writeData(pos, src.asSlice(done, n), fua);
                    cached[0] = true;
                });
        e.stats.writes.increment();
        e.stats.writeBytes.add(src.byteSize());
        if (cached[0]) {
            writtenThrough();
        }
    }

    /**
     * Reserves ahead the next kset of each stream whose kset filled up ({@link KeyLog#reserveAhead}):
     * its next write then need not, and the work is done while the caller would wait anyway.
     */
    @Override
    public void idle() {
        if (!e.keyLog.reserveAheadWanted()) {
            return;
        }
        try {
            enter(true);
        } catch (IOException closedOrFailed) {
            return;
        }
        try {
            e.keyLog.reserveAhead();
        } catch (EngineAbort ex) {
            // a failed persist: the cache has failed, and its next write or flush says so
        } catch (InternalError ex) {
            mediumFault(ex); // likewise
        } finally {
            exit();
        }
    }

    @Override
    public void flush() throws IOException {
        run(true, () -> {
            e.keyLog.sealAll();
            e.barriers.passed();
            direct.flushBacking(); // direct writes are on the backing device only
            e.stats.flushes.increment();
        });
    }

    @Override
    public void trim(long offset, long length) throws IOException {
        Ranges.check(this, offset, length);
        run(true, () -> {
            zero(offset, length, false);
            e.stats.trims.increment();
        });
    }

    @Override
    public void writeZeroes(long offset, long length, boolean fua) throws IOException {
        Ranges.check(this, offset, length);
        run(true, () -> {
            zero(offset, length, fua);
            if (fua) {
                e.barriers.passed();
            }
            e.stats.writes.increment();
        });
    }

    /**
     * Zeroing and trimming: in the cache (a zero extent) in writeback mode; in the other modes on
     * the backing device (as write-zeroes: a trim must read back as zeros, as it does from the
     * cache), dropping the cached data of the range.
     */
    private void zero(long offset, long length, boolean fua) throws IOException {
        if (e.policy.zero() == CachePolicy.Route.CACHE) {
            writes.zero(offset, length, fua);
        } else {
            boolean[] cached = {false};
            direct.write(offset, length, null, (pos, n, done) -> e.backing.writeZeroes(pos, n, fua),
                    (pos, n, done) -> {
                        writes.zero(pos, n, fua);
                        cached[0] = true;
                    });
            if (cached[0]) {
                writtenThrough();
            }
        }
    }

    /**
     * In writethrough mode, a piece that went into the cache (its range held dirty data not yet
     * written back: the moments after a switch from writeback) is written back before the write
     * is acknowledged, so writethrough's promise holds: on the backing device at the acknowledgement.
     */
    private void writtenThrough() throws IOException {
        if (e.policy.mode() == CacheMode.WRITETHROUGH) {
            e.keyLog.sealAll();
            drain(left -> { });
        }
    }

    /**
     * Zero and trimmed ranges the index holds are HOLE, cached data is DATA, the rest is what the
     * backing device says (see {@link BlockStatusQuery}).
     */
    @Override
    public java.util.List<io.pmcache.device.BlockStatus> blockStatus(long offset, long length, int maxExtents)
            throws IOException {
        Ranges.check(this, offset, length);
        enter(false);
        try {
            return blockStatus.query(offset, length, maxExtents);
        } catch (EngineAbort ex) {
            throw ex.io();
        } finally {
            exit();
        }
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

    /** The cache mode in force ({@link CacheMode}). */
    public CacheMode cacheMode() {
        return e.policy.mode();
    }

    /**
     * Switches the cache mode; persisted in the cache (cache info), so the next open starts in it.
     * Leaving writeback (any mode but writeback) first writes back everything dirty, at full speed,
     * reporting the dirty bytes left to {@code progress}; only then does the mode change, and a
     * second drain writes back what was written meanwhile. To {@link CacheMode#NONE}, the clean
     * cached data is then dropped ({@link #invalidate}). A failure of the first drain leaves the
     * mode as it was; of the second, the mode is switched and the failure thrown (the data stays
     * dirty and is written back as usual).
     */
    public void setCacheMode(CacheMode mode, LongConsumer progress) throws IOException {
        java.util.Objects.requireNonNull(mode, "mode");
        modeSwitch.lock();
        try {
            if (mode != CacheMode.WRITEBACK) {
                flushAll(progress);
            }
            run(true, () -> {
                e.policy.setMode(mode);
                e.info.setCacheMode(mode.ordinal());
            });
            if (mode != CacheMode.WRITEBACK) {
                flushAll(progress);
            }
            if (mode == CacheMode.NONE) {
                invalidate();
            }
            log.info("cache mode is now {}", mode.label());
        } finally {
            modeSwitch.unlock();
        }
    }

    /** The sequential cutoff in bytes (0: off); see {@link CachePolicy}. */
    public long sequentialCutoff() {
        return e.policy.cutoff();
    }

    /**
     * Sets the sequential cutoff (bcache's {@code sequential_cutoff}): a stream of sequential
     * writes or reads longer than {@code bytes} bypasses the cache (0 turns it off). Not persisted;
     * the library's default is 0, {@code pmcache serve}'s 4 MiB.
     */
    public void setSequentialCutoff(long bytes) {
        e.policy.setCutoff(bytes);
    }

    /**
     * Drops the clean cached data: afterwards reads of those bytes come from the backing device
     * (and fill again, as the mode allows). Dirty data stays. Persisted: the next open leaves out
     * the clean keys logged before. Returns the bytes of extents dropped.
     */
    public long invalidate() throws IOException {
        long[] dropped = {0};
        run(true, () -> {
            e.info.setCleanUntrustedBefore(CacheInfo.CLEAN_UNTRUSTED_ALL); // before: a crash must not bring them back
            for (int r = 0; r < e.index.rangeCount(); r++) {
                io.pmcache.index.ExtentMap map = e.index.rangeIfPresent(r);
                if (map == null) {
                    continue;
                }
                map.lock().lock();
                try {
                    boolean allClean = direct.durablyClean(map);
                    // The dirty flag of an extent written back stays set; a range whose newest dirty
                    // key is behind the persisted dirty tail holds no dirty data at all.
                    map.removeIf(x -> {
                        boolean drop = x.kind() != io.pmcache.index.Extent.Kind.PLACEHOLDER && (allClean || !x.dirty());
                        if (drop) {
                            dropped[0] += x.length();
                        }
                        return drop;
                    }, Integer.MAX_VALUE);
                } finally {
                    map.lock().unlock();
                }
            }
            e.stats.invalidatedBytes.add(dropped[0]);
        });
        log.info("invalidated {} bytes of clean cached data", dropped[0]);
        return dropped[0];
    }

    /** The writeback pacing knobs in force. */
    public WritebackSettings writebackSettings() {
        return pacing.settings();
    }

    /** Changes the writeback pacing knobs at run time (not persisted); takes effect at the next turn. */
    public void setWritebackSettings(WritebackSettings s) {
        pacing.settings(java.util.Objects.requireNonNull(s, "settings"));
        workers.hurry();
    }

    public CacheStatus status() {
        CacheStats s = e.stats;
        CacheInfo info = e.info.current();
        var head = e.keyLog.head();
        return new CacheStatus(size(), e.superblock.segmentSize(), e.segments.count(), e.allocator.usedCount(),
                info.gcPercent(), e.superblock.dataCrc(),
                s.reads.sum(), s.readBytes.sum(), s.writes.sum(), s.writeBytes.sum(), s.flushes.sum(), s.trims.sum(),
                s.readHits.sum(), s.readPartialHits.sum(), s.readMisses.sum(), s.fillBytes.sum(),
                s.fillsSkipped.sum(), s.dirtyBytes.sum(), s.spaceWaits.sum(),
                s.spaceWaitNanos.sum() + e.allocator.waitingNanos(System.nanoTime()),
                s.ksetsSealed.sum(), s.writebackBytes.sum(), s.writebackKeys.sum(), s.writebackBatches.sum(),
                info.dirtyTail().toString(), s.backingErrors.sum(), s.backingRetries.sum(), s.lastBackingError,
                s.gcPasses.sum(), s.gcKsets.sum(), s.segmentsReclaimed.sum(), s.corruptKeysSkipped.sum(),
                s.dataCrcErrors.sum(), s.replayNanos, s.replayKsets, s.replayKeys,
                info.keyTail().toString(), info.dirtyTail().toString(), head.toString(),
                Math.max(0, head.ksetSeq() - info.dirtyTail().ksetSeq()),
                s.ksetsDamaged.sum(), writeback.stalledMillis(System.nanoTime()), e.failure.reason(),
                s.writebackZeroBytes.sum(),
                100.0 * s.dirtyBytes.sum() / ((double) e.segments.count() * e.superblock.segmentSize()),
                pacing.settings().targetPercent(), writebackOn ? pacing.last().rate() == WritebackPolicy.FULL_SPEED
                        ? -1 : pacing.last().rate() : 0,
                writebackOn ? pacing.last().reason().label() : "off",
                e.policy.mode().label(), e.policy.cutoff(), direct.directWrites.sum(), direct.directWriteBytes.sum(),
                direct.throughWrites.sum(), direct.dirtyRangeFallbacks.sum(), e.policy.sequentialWrites.sum(),
                e.policy.sequentialWriteBytes.sum(), e.policy.sequentialReads.sum(), e.stats.fillsBypassed.sum(),
                e.direct.waits.sum(), s.invalidatedBytes.sum(), s.writebackWrittenBytes.sum(),
                s.writebackLeftToNewerBytes.sum(), s.ksetsReservedAhead.sum());
    }

    /**
     * Writes back everything dirty now (the cache stays warm). {@code progress} receives the dirty
     * bytes left, from time to time.
     */
    public void flushAll(LongConsumer progress) throws IOException {
        run(true, () -> {
            e.keyLog.sealAll();
            drain(progress);
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
                drain(progress);
                gc.collectAll();
            } finally {
                workers.resumeGc();
            }
        });
    }

    /** Writes back everything sealed, at full speed (the worker too: reason "drain"). */
    private void drain(LongConsumer progress) throws IOException {
        pacing.beginDrain();
        try {
            workers.hurry();
            writeback.drain(progress, workers);
        } finally {
            pacing.endDrain();
        }
        direct.flushBacking(); // and what was written to the backing device directly
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
                        e.stats.dirtyBytes.sum());
            }
        }
        if (!gate.close()) {
            return;
        }
        Throwable failed = null;
        try {
            stop(drainFailure);
        } catch (IOException | RuntimeException | Error t) {
            failed = t;
            throw t;
        } finally {
            closeOwned(failed);
        }
    }

    /**
     * Gives back the backing device's flusher the cache took at open ({@link DirectPath}), then
     * closes what {@link #openOrCreate} opened; a failure is added to {@code failed} or thrown.
     */
    private void closeOwned(Throwable failed) throws IOException {
        IOException first = null;
        AutoCloseable[] all = new AutoCloseable[owned.length + 1];
        all[0] = direct::close;
        System.arraycopy(owned, 0, all, 1, owned.length);
        for (AutoCloseable c : all) {
            try {
                c.close();
            } catch (Exception ex) {
                if (failed != null) {
                    failed.addSuppressed(ex);
                } else if (first == null) {
                    first = ex instanceof IOException io ? io : new IOException(ex);
                } else {
                    first.addSuppressed(ex);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    /** The stop itself, once the gate is closed: workers stopped, every open kset sealed. */
    private void stop(IOException drainFailure) throws IOException {
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
        direct.flushBacking(); // what was written to the backing device directly is durable after a clean stop
        log.info("closed {}: {} dirty bytes not yet written back", e.medium.describe(), e.stats.dirtyBytes.sum());
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
