package io.pmcache.cache;

import io.pmcache.format.KeyRecord;
import io.pmcache.format.LogPosition;
import io.pmcache.index.Extent;
import io.pmcache.index.ExtentMap;
import io.pmcache.index.RangeIndex;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reclaims space.
 *
 * <h2>One step</h2>
 * Runs while used segments reach {@code segments * gc_percent / 100} (or a writer waits for
 * space): take the kset at the key tail, provided it lies before the dirty tail (it is written
 * back), drop the reference each of its keys holds on its data segment, then advance and persist
 * the key tail. When the key tail leaves a log segment, that segment is freed.
 *
 * <h2>Reclaim</h2>
 * A data segment whose last reference goes (no live key, no head, no in-flight allocation points
 * into it) gets its generation bumped and persisted, then returns to the free pool. Index extents
 * still naming the old generation are stale: reads treat them as misses, and
 * {@link #cleanIndex()} removes them in the background, visiting only the ranges of the keys that
 * referenced the reclaimed segment ({@link StaleExtents}), one key's range per range-lock hold.
 */
final class GarbageCollector {
    private static final Logger log = LoggerFactory.getLogger(GarbageCollector.class);
    private final Engine e;
    private final ReentrantLock lock = new ReentrantLock();
    private final StaleExtents staleExtents;

    GarbageCollector(Engine e) {
        this.e = e;
        this.staleExtents = new StaleExtents(e.segments.count());
    }

    /** Used segments at or above which gc runs. */
    int threshold() {
        return (int) ((long) e.segments.count() * e.info.current().gcPercent() / 100);
    }

    boolean needed() {
        return e.allocator.usedCount() >= threshold() || e.allocator.hasWaiters();
    }

    /** Reclaims a data segment whose last reference was dropped (called by {@link SegmentTable}). */
    void reclaim(int seg) {
        e.segments.bumpGeneration(seg, 0);
        e.hook.at(StepHook.Point.RECLAIM_AFTER_BUMP);
        e.allocator.free(seg);
        e.stats.segmentsReclaimed.increment();
        staleExtents.reclaimed(seg);
    }

    /** Passes one kset at the key tail; false when the key tail has reached the dirty tail. */
    boolean step() {
        lock.lock();
        try {
            return stepLocked();
        } finally {
            lock.unlock();
        }
    }

    private boolean stepLocked() {
        LogPosition tail = e.info.current().keyTail();
        LogPosition dirty = e.info.current().dirtyTail();
        if (tail.ksetSeq() >= dirty.ksetSeq()) {
            return false;
        }
        LogPosition at = e.reader.resolve(tail);
        if (at == null) {
            return false;
        }
        if (at.segment() != tail.segment()) {
            e.info.setKeyTail(at);
            freeLogSegment(tail.segment());
        }
        LogReader.KsetAt k = e.reader.read(at);
        if (k == null) {
            log.error("gc: no valid kset #{} at {}; the key log is corrupt; gc stops here", at.ksetSeq(), at);
            return false;
        }
        for (int slot = 0; slot < k.slots(); slot++) {
            KeyLiveness.Slot s = e.liveness.judge(k, slot);
            if (s.holdsReference()) {
                KeyRecord key = s.key();
                staleExtents.passed(key.segment(), key.offset(), key.length());
                e.segments.unref(key.segment());
            }
        }
        e.hook.at(StepHook.Point.GC_AFTER_UNREF);
        LogPosition next = k.next();
        LogPosition resolved = e.reader.resolve(next);
        // The dirty tail may still name the end of this segment; free it only once it does not.
        if (resolved != null && resolved.segment() != at.segment() && dirty.segment() != at.segment()) {
            e.info.setKeyTail(resolved);
            freeLogSegment(at.segment());
        } else {
            e.info.setKeyTail(next);
        }
        e.hook.at(StepHook.Point.GC_AFTER_TAIL);
        e.stats.gcKsets.increment();
        return true;
    }

    private void freeLogSegment(int seg) {
        e.segments.bumpGeneration(seg, 0);
        e.allocator.free(seg);
        e.stats.segmentsReclaimed.increment();
    }

    /** One gc pass: steps while gc is needed and possible. Returns true if anything moved. */
    boolean pass() {
        boolean moved = false;
        while (needed() && step()) {
            moved = true;
        }
        if (moved) {
            e.stats.gcPasses.increment();
        }
        return moved;
    }

    /**
     * Empties the cache after a full writeback (detach): passes every kset up to the dirty tail,
     * releases the data heads, and removes every extent from the index.
     */
    void collectAll() {
        lock.lock();
        try {
            while (stepLocked()) {
                // pass everything that is written back
            }
            for (DataHead h : e.heads) {
                h.detach();
            }
            removeAllStale();
            e.stats.gcPasses.increment();
        } finally {
            lock.unlock();
        }
    }

    boolean indexNeedsCleaning() {
        return staleExtents.pending();
    }

    /**
     * Removes the stale extents of reclaimed segments, one key's range per range-lock hold. Never
     * waits for a range lock: a writer may hold one while it waits for space that only gc can
     * free, so a busy range is left for a later pass.
     */
    void cleanIndex() {
        long[] busy = new long[0];
        int nBusy = 0;
        for (long[] ranges = staleExtents.poll(); ranges != null; ranges = staleExtents.poll()) {
            for (int i = 0; i < ranges.length; i += 2) {
                if (!removeStale(ranges[i], ranges[i] + ranges[i + 1])) {
                    if (nBusy + 2 > busy.length) {
                        busy = java.util.Arrays.copyOf(busy, Math.max(16, busy.length * 2));
                    }
                    busy[nBusy++] = ranges[i];
                    busy[nBusy++] = ranges[i + 1];
                }
            }
        }
        if (nBusy > 0) {
            staleExtents.retry(java.util.Arrays.copyOf(busy, nBusy));
        }
    }

    /** False when a range lock was busy (the range is then only partly cleaned; cleaning is idempotent). */
    private boolean removeStale(long from, long to) {
        while (from < to) {
            long end = Math.min(to, from + RangeIndex.roomInRange(from));
            ExtentMap map = e.index.rangeIfPresent(RangeIndex.rangeOf(from));
            if (map != null) {
                if (!map.lock().tryLock()) {
                    return false;
                }
                try {
                    List<Extent> doomed = new ArrayList<>(2);
                    map.forEachOverlapping(from, end, x -> {
                        if (stale(x)) {
                            doomed.add(x);
                        }
                    });
                    doomed.forEach(map::removeExact);
                } finally {
                    map.lock().unlock();
                }
            }
            from = end;
        }
        return true;
    }

    /** Removes every stale extent from the whole index (detach: everything is written back). */
    private void removeAllStale() {
        staleExtents.clear();
        for (int r = 0; r < e.index.rangeCount(); r++) {
            ExtentMap map = e.index.rangeIfPresent(r);
            if (map != null) {
                map.lock().lock();
                try {
                    map.removeIf(this::stale, Integer.MAX_VALUE);
                } finally {
                    map.lock().unlock();
                }
            }
        }
    }

    private boolean stale(Extent x) {
        return x.kind() == Extent.Kind.DATA && x.generation() != e.segments.generation(x.segment());
    }
}
