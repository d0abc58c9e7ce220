package io.pmcache.cache;

import io.pmcache.media.Medium;
import java.util.Arrays;

/**
 * Collects medium ranges to persist and persists them with as few calls as possible: sorted, and
 * merged when less than {@link #GAP} apart. Persisting bytes in a gap is harmless (it only makes
 * more durable), and one msync or cache-line sweep over a span is far cheaper than many.
 */
final class PersistBatch {
    static final long GAP = 256 << 10;
    private long[] starts = new long[64];
    private long[] ends = new long[64];
    private int n;

    void add(long address, long length) {
        if (length <= 0) {
            return;
        }
        if (n == starts.length) {
            starts = Arrays.copyOf(starts, n * 2);
            ends = Arrays.copyOf(ends, n * 2);
        }
        starts[n] = address;
        ends[n] = address + length;
        n++;
    }

    /** Persists everything added, then empties the batch. */
    void persist(Medium medium) {
        if (n == 0) {
            return;
        }
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Long.compare(starts[a], starts[b]));
        long runStart = starts[order[0]];
        long runEnd = ends[order[0]];
        for (int k = 1; k < n; k++) {
            int i = order[k];
            if (starts[i] <= runEnd + GAP) {
                runEnd = Math.max(runEnd, ends[i]);
            } else {
                medium.persist(runStart, runEnd - runStart);
                runStart = starts[i];
                runEnd = ends[i];
            }
        }
        medium.persist(runStart, runEnd - runStart);
        n = 0;
    }
}
