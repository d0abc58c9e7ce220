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

    /**
     * Persists everything added, then empties the batch.
     *
     * <p>Runs are found from the starts and the ends sorted separately (primitive sorts, no
     * index boxing): with both sorted, the first {@code k} intervals by start have all ended
     * before the {@code k}-th start exactly when {@code ends[k-1] < starts[k]} (ends never
     * precede their starts), so a run closes there, at {@code ends[k-1]}, the largest end so far.
     * Merging across gaps up to {@link #GAP} is the same test with every end moved up by GAP.
     */
    void persist(Medium medium) {
        if (n == 0) {
            return;
        }
        Arrays.sort(starts, 0, n);
        Arrays.sort(ends, 0, n);
        long runStart = starts[0];
        for (int k = 1; k < n; k++) {
            if (starts[k] > ends[k - 1] + GAP) {
                medium.persist(runStart, ends[k - 1] - runStart);
                runStart = starts[k];
            }
        }
        medium.persist(runStart, ends[n - 1] - runStart);
        n = 0;
    }
}
