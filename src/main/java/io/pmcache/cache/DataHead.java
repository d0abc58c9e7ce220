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
     * Up to {@code want} bytes (fewer at a segment's end). Blocks while the cache is full when
     * {@code wait}; otherwise returns null when no segment is free.
     */
    Allocation allocate(int want, boolean wait) {
        lock.lock();
        try {
            if (segment < 0 || offset == segments.segmentSize()) {
                int fresh = wait ? allocator.allocateData() : allocator.tryAllocateData();
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
