package io.pmcache.cache;

import java.util.ArrayDeque;
import java.util.Arrays;

/**
 * Where the index may hold extents of reclaimed segments, so that cleaning visits only those
 * places instead of scanning the whole index.
 *
 * <p>Invariant: every index extent pointing into data segment {@code s} lies inside the range of
 * a live key that references {@code s}; a segment is reclaimed only after gc passed all those
 * keys, and gc records each key's range here as it passes it. So when {@code s} is reclaimed, the
 * ranges recorded for it cover every extent that just became stale.
 */
final class StaleExtents {
    /** Per segment: packed (offset, length) pairs of keys gc passed since its last reclaim. */
    private final long[][] ranges;
    private final int[] used;
    /** Reclaimed segments' ranges, waiting to be cleaned: {segment, offset, length, ...}. */
    private final ArrayDeque<long[]> work = new ArrayDeque<>();

    StaleExtents(int segments) {
        ranges = new long[segments][];
        used = new int[segments];
    }

    /** gc passed a key of {@code length} bytes at {@code offset} whose data lies in {@code seg}. */
    synchronized void passed(int seg, long offset, long length) {
        long[] r = ranges[seg];
        if (r == null) {
            r = ranges[seg] = new long[16];
        } else if (used[seg] + 2 > r.length) {
            r = ranges[seg] = Arrays.copyOf(r, r.length * 2);
        }
        r[used[seg]++] = offset;
        r[used[seg]++] = length;
    }

    /** {@code seg} was reclaimed: the extents in its recorded ranges are stale now. */
    synchronized void reclaimed(int seg) {
        if (used[seg] > 0) {
            work.add(Arrays.copyOf(ranges[seg], used[seg]));
        }
        used[seg] = 0;
        if (ranges[seg] != null && ranges[seg].length > 1024) {
            ranges[seg] = null; // let an unusually busy segment's list shrink back
        }
    }

    synchronized boolean pending() {
        return !work.isEmpty();
    }

    /** The packed ranges of one reclaimed segment, or null when nothing waits. */
    synchronized long[] poll() {
        return work.poll();
    }

    /** Ranges that could not be cleaned now (their range lock was busy), for a later pass. */
    synchronized void retry(long[] packed) {
        work.add(packed);
    }

    /** Forgets everything (the whole index is being emptied). */
    synchronized void clear() {
        work.clear();
        Arrays.fill(used, 0);
    }
}
