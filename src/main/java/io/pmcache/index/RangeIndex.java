package io.pmcache.index;

import io.pmcache.format.Layout;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * The index of a whole logical device: one {@link ExtentMap} per 4 MiB range, each under its own
 * lock, created on first use. No extent crosses a range boundary.
 */
public final class RangeIndex {
    private final AtomicReferenceArray<ExtentMap> ranges;

    public RangeIndex(long deviceSize) {
        long n = (deviceSize + Layout.RANGE_SIZE - 1) >>> Layout.RANGE_SHIFT;
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("device of " + deviceSize + " bytes is too large");
        }
        ranges = new AtomicReferenceArray<>((int) Math.max(1, n));
    }

    public int rangeCount() {
        return ranges.length();
    }

    public static int rangeOf(long offset) {
        return (int) (offset >>> Layout.RANGE_SHIFT);
    }

    /** Bytes from {@code offset} to the end of its range. */
    public static long roomInRange(long offset) {
        return Layout.RANGE_SIZE - (offset & (Layout.RANGE_SIZE - 1));
    }

    /** The map of range {@code r}, created on first use. */
    public ExtentMap range(int r) {
        ExtentMap m = ranges.get(r);
        if (m == null) {
            ExtentMap fresh = new ExtentMap();
            m = ranges.compareAndExchange(r, null, fresh);
            if (m == null) {
                m = fresh;
            }
        }
        return m;
    }

    /** The map of range {@code r}, or null when nothing was ever put there. */
    public ExtentMap rangeIfPresent(int r) {
        return ranges.get(r);
    }

    /**
     * A snapshot of the extents of {@code [from, to)} (within one range), clipped to it, in order,
     * taken under the range's lock; empty when nothing was ever put in that range.
     */
    public java.util.List<Extent> extentsWithin(long from, long to) {
        return extentsWithin(from, to, true);
    }

    /**
     * {@link #extentsWithin} without waiting for the range's lock: null when it is busy. For
     * background work that must never wait for a writer, which may hold the lock while it waits
     * for space that only that work makes.
     */
    public java.util.List<Extent> extentsWithinIfFree(long from, long to) {
        return extentsWithin(from, to, false);
    }

    private java.util.List<Extent> extentsWithin(long from, long to, boolean wait) {
        if (to > from && rangeOf(from) != rangeOf(to - 1)) {
            throw new IllegalArgumentException("[" + from + ", " + to + ") crosses a range boundary");
        }
        ExtentMap m = rangeIfPresent(rangeOf(from));
        if (m == null) {
            return java.util.List.of();
        }
        if (wait) {
            m.lock().lock();
        } else if (!m.lock().tryLock()) {
            return null;
        }
        try {
            return m.clippedTo(from, to);
        } finally {
            m.lock().unlock();
        }
    }

    public ExtentMap rangeFor(long offset) {
        return range(rangeOf(offset));
    }
}
