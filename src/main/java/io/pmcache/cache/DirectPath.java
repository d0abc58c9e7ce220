package io.pmcache.cache;

import io.pmcache.format.CacheInfo;
import io.pmcache.index.Extent;
import io.pmcache.index.ExtentMap;
import io.pmcache.index.RangeIndex;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.LongAdder;

/**
 * Writes that go to the backing device directly ({@link CachePolicy.Route#THROUGH} and
 * {@link CachePolicy.Route#AROUND}), without the backing device and the cache ever disagreeing on
 * what a read returns.
 *
 * <h2>One piece (within one 4 MiB range)</h2>
 * <ol>
 *   <li>Under the range's lock: if the range may hold dirty data not yet written back — its newest
 *       dirty key is not behind the <em>persisted</em> dirty tail ({@link ExtentMap#dirtyKsetBound})
 *       — the piece is not written directly: it goes into the cache as an ordinary write-back
 *       write (the caller does that). Writing it to the backing device could be overtaken by the
 *       writeback of that older data, or undone by its replay after a power cut. If another direct
 *       write is in flight over the piece, wait for it and start again: direct writes to the same
 *       bytes never overlap, so the backing device and the cache see them in the same order.
 *       Otherwise put a <em>direct placeholder</em> (a placeholder whose id is registered here)
 *       over the piece: it drops the clean extents there and trims read-miss placeholders (their
 *       fills are then refused, and their reads start over).</li>
 *   <li>Before the first direct write of an open, persist that clean keys of the log are not to
 *       be trusted at replay ({@link CacheInfo#CLEAN_UNTRUSTED_ALL}): the invalidation of step 1 is
 *       only in memory, so after a crash a replayed clean key could be older than the backing
 *       device.</li>
 *   <li>Write the piece to the backing device (with FUA if asked).</li>
 *   <li>THROUGH: copy the data into the cache like a read fill (never waiting for space), turning
 *       the placeholder into clean data. Finally remove the placeholder.</li>
 * </ol>
 * While the placeholder is there, a cached write or zeroing of those bytes waits for it
 * ({@link InFlightDirect}) before it goes into the index, so its data reaches the backing
 * device (by writeback) only after the direct write did; a read of those bytes waits too, so it
 * never reads a backing-device sector half written. Nobody else removes or trims a direct
 * placeholder.
 */
final class DirectPath {
    private final Engine e;
    private final ReadPath reads;
    /**
     * The backing device's flusher for direct writes, not writeback's: a direct write lost after it
     * returned (a page cache's write-out error, a remote's connection lost before its flush) fails
     * the next FLUSH even when a writeback flush learned of the loss first.
     */
    private final io.pmcache.device.BlockDevice.Flusher flusher;
    /**
     * Some direct write completed since the last backing-device flush (a FLUSH must flush it).
     * False at open: direct writes a crashed process left unflushed in the OS were flushed by the
     * open (Cache.open flushes the backing device when cache info says a direct write happened),
     * and a cache that never wrote directly keeps its FLUSH free of the backing device.
     */
    private final AtomicBoolean unflushed = new AtomicBoolean();
    final LongAdder directWrites = new LongAdder();
    final LongAdder directWriteBytes = new LongAdder();
    final LongAdder throughWrites = new LongAdder();
    /** Pieces that had to go into the cache: their range held dirty data not yet written back. */
    final LongAdder dirtyRangeFallbacks = new LongAdder();

    DirectPath(Engine e, ReadPath reads, io.pmcache.device.BlockDevice.Flusher flusher) {
        this.e = e;
        this.reads = reads;
        this.flusher = flusher;
    }

    /** What a piece does on the backing device, or in the cache for a fallback. */
    interface PieceOp {
        void apply(long offset, long length, long done) throws IOException;
    }

    /**
     * Writes {@code [offset, offset + length)} directly, range by range, with {@code op}; a piece
     * that must go into the cache instead goes to {@code fallback}.
     *
     * @param data the bytes, for THROUGH (null: the cache only drops the range)
     */
    void write(long offset, long length, MemorySegment data, PieceOp op, PieceOp fallback) throws IOException {
        long done = 0;
        while (done < length) {
            long pos = offset + done;
            long n = Math.min(length - done, RangeIndex.roomInRange(pos));
            if (!writePiece(pos, (int) n, done, data, op)) {
                dirtyRangeFallbacks.increment();
                fallback.apply(pos, n, done);
            }
            done += n;
        }
    }

    private boolean writePiece(long pos, int n, long done, MemorySegment data, PieceOp op) throws IOException {
        if (e.info.current().cleanUntrustedBefore() != CacheInfo.CLEAN_UNTRUSTED_ALL) {
            e.info.setCleanUntrustedBefore(CacheInfo.CLEAN_UNTRUSTED_ALL); // step 2, once per open
        }
        ExtentMap map = e.index.rangeFor(pos);
        long id = ReadPath.newFillId();
        CountDownLatch mine;
        while (true) {
            CountDownLatch other;
            map.lock().lock();
            try {
                if (!durablyClean(map)) {
                    return false;
                }
                other = e.direct.overlapping(map, pos, pos + n);
                if (other == null) {
                    mine = e.direct.begin(id);
                    map.insert(Extent.placeholder(pos, n, id), null);
                    break;
                }
            } finally {
                map.lock().unlock();
            }
            e.direct.await(other, e.failure);
        }
        try {
            op.apply(pos, n, done);
            unflushed.set(true);
            directWrites.increment();
            directWriteBytes.add(n);
            if (data != null && !e.failure.failed()) {
                throughWrites.increment();
                try {
                    reads.fill(map, List.of(Extent.placeholder(pos, n, id)), id, pos, data.asSlice(done, n));
                } catch (EngineAbort ex) {
                    e.stats.fillsSkipped.increment(); // stopping or failed: the data is on the backing device
                }
            }
        } finally {
            ReadPath.removePlaceholders(map, pos, pos + n, id);
            e.direct.end(id, mine);
        }
        return true;
    }

    /**
     * True when every dirty key logged for the range lies before the persisted dirty tail: what
     * the range holds in the cache is also on the backing device, durably, and no replay will make
     * any of it dirty again. Caller holds the range's lock.
     */
    boolean durablyClean(ExtentMap map) {
        return map.dirtyKsetBound() <= e.info.current().dirtyTail().ksetSeq();
    }

    /** Gives the backing device's flusher back (the cache has closed). */
    void close() throws IOException {
        flusher.close();
    }

    /** Flushes the backing device if a direct write completed since the last flush. */
    void flushBacking() throws IOException {
        if (unflushed.getAndSet(false)) {
            try {
                flusher.flush();
            } catch (IOException | RuntimeException ex) {
                unflushed.set(true);
                throw ex;
            }
        }
    }
}
