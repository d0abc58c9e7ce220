package io.pmcache.cache;

import java.util.concurrent.locks.ReentrantLock;

/**
 * An append point for data: fills its current segment front to back, then takes a new one.
 * {@code parallel} heads let concurrent writers allocate without contending.
 *
 * <p>Invariant: while a head has a current segment it holds one reference on it.
 */
final class DataHead {
    private final ReentrantLock lock = new ReentrantLock();
    private final SegmentTable segments;
    private final SegmentAllocator allocator;
    private int segment = -1;
    private int offset;

    DataHead(SegmentTable segments, SegmentAllocator allocator) {
        this.segments = segments;
        this.allocator = allocator;
    }

    /**
     * Up to {@code want} bytes (fewer at a segment's end) for a write; blocks while the cache is
     * full.
     */
    Allocation allocate(int want) {
        return allocate(want, -1);
    }

    /**
     * Up to {@code want} bytes for a read fill: from the current segment, or from a new one only
     * while fewer than {@code usedBelow} segments are used (and one is free beyond the reserve);
     * null otherwise. Never waits.
     */
    Allocation allocateForFill(int want, int usedBelow) {
        return allocate(want, Math.max(0, usedBelow));
    }

    /** {@code usedBelow < 0}: wait for a segment (writes); else a fill's limit. */
    private Allocation allocate(int want, int usedBelow) {
        lock.lock();
        try {
            if (segment < 0 || offset == segments.segmentSize()) {
                int fresh = usedBelow < 0 ? allocator.allocateData() : allocator.tryAllocateData(usedBelow);
                if (fresh < 0) {
                    return null;
                }
                release();
                segments.ref(fresh);
                segment = fresh;
                offset = 0;
            }
            int n = (int) Math.min(want, segments.segmentSize() - offset);
            Allocation a = new Allocation(segment, offset, n, segments.generation(segment));
            segments.ref(segment);
            offset += n;
            return a;
        } finally {
            lock.unlock();
        }
    }

    /** Drops the head's reference on its segment, if any. */
    private void release() {
        if (segment >= 0) {
            int s = segment;
            segment = -1;
            segments.unref(s);
        }
    }

    /** Releases the current segment (close). */
    void detach() {
        lock.lock();
        try {
            release();
        } finally {
            lock.unlock();
        }
    }
}
