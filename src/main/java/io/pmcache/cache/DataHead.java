package io.pmcache.cache;

import java.util.concurrent.locks.ReentrantLock;

/**
 * An append point for data: fills its current segment front to back, then takes a new one.
 * {@code parallel} heads let concurrent writers allocate without contending.
 *
 * <p>Every allocation starts at a multiple of {@link #SECTOR} in its segment (one of odd length
 * leaves the rest of its last sector unused), so a segment with room has at least a sector of it:
 * a write cut at a segment's end can always end its piece on a sector of the device
 * ({@link WritePath}).
 *
 * <p>Invariant: while a head has a current segment it holds one reference on it.
 */
final class DataHead {
    /** The sector: allocations start at multiples of it; a write's pieces end on sectors of the device. */
    static final int SECTOR = 512;

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
     * Up to {@code want} bytes (fewer at a segment's end) for a write; waits while the cache is
     * full, without holding the head's lock: fills and other writers of this head are never held
     * up behind a wait for space (a fill finds the head without room and is skipped).
     *
     * <p>Returns the place packed in a long, no object per write: {@link #segmentOf},
     * {@link #offsetOf}; the length is {@code min(want, segment size - offset)} and the generation
     * the segment's current one (it cannot change while the allocation's reference is held). The
     * caller drops that reference ({@link SegmentTable#unref}) as for an {@link Allocation}.
     */
    long allocate(int want) {
        lock.lock();
        try {
            if (hasRoom()) {
                return carvePlace(want);
            }
        } finally {
            lock.unlock();
        }
        int fresh = allocator.allocateData(); // may wait; no lock held
        lock.lock();
        try {
            if (hasRoom()) {
                allocator.free(fresh); // another writer of this head installed one meanwhile
            } else {
                install(fresh);
            }
            return carvePlace(want);
        } finally {
            lock.unlock();
        }
    }

    /**
     * As {@link #allocate}, but never waits: {@code -1} when the head's segment is full and a new
     * one would have to be waited for (the allocator then signals pressure, as for a waiting writer).
     */
    long tryAllocate(int want) {
        lock.lock();
        try {
            if (!hasRoom()) {
                int fresh = allocator.tryAllocateData(Integer.MAX_VALUE);
                if (fresh < 0) {
                    return -1;
                }
                install(fresh);
            }
            return carvePlace(want);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Up to {@code want} bytes for a read fill: from the current segment, or from a new one only
     * while fewer than {@code usedBelow} segments are used (and one is free beyond the reserve);
     * null otherwise. Never waits for space.
     */
    Allocation allocateForFill(int want, int usedBelow) {
        lock.lock();
        try {
            if (!hasRoom()) {
                int fresh = allocator.tryAllocateData(Math.max(0, usedBelow));
                if (fresh < 0) {
                    return null;
                }
                install(fresh);
            }
            return carve(want);
        } finally {
            lock.unlock();
        }
    }

    private boolean hasRoom() {
        return segment >= 0 && offset < segments.segmentSize();
    }

    /** Makes {@code fresh} (just allocated) the current segment. Caller holds the lock. */
    private void install(int fresh) {
        release();
        segments.ref(fresh);
        segment = fresh;
        offset = 0;
    }

    /** Caller holds the lock and the head has room. The allocation holds a reference. */
    private Allocation carve(int want) {
        int at = offset;
        int n = lengthFor(want);
        carvePlace(want);
        return new Allocation(segment, at, n, segments.generation(segment));
    }

    /** As {@link #carve}, the place packed as {@link #allocate} returns it (its length: {@link #lengthFor}). */
    private long carvePlace(int want) {
        int n = lengthFor(want);
        long place = (long) segment << 32 | offset;
        segments.ref(segment);
        offset += (n + SECTOR - 1) / SECTOR * SECTOR; // the next allocation starts on a sector
        return place;
    }

    /** The length an allocation of {@code want} bytes gets: what fits before the segment's end. */
    private int lengthFor(int want) {
        return (int) Math.min(want, segments.segmentSize() - offset);
    }

    static int segmentOf(long place) {
        return (int) (place >>> 32);
    }

    static int offsetOf(long place) {
        return (int) place;
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
