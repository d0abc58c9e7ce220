package io.pmcache.cache;

import io.pmcache.format.SegmentInfo;
import io.pmcache.media.Medium;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * In-memory mirror of the segment table plus per-segment reference counts.
 *
 * <p>Invariants: a segment's on-media generation and next link change only through this class,
 * which writes the slot not holding the newest copy and persists it before returning. The
 * reference count of a data segment is the number of live log keys (between the key tail and the
 * key head) that point into it with its current generation, plus one per in-flight allocation
 * and one for the data head that is filling it; at zero the segment may be reclaimed.
 */
final class SegmentTable {
    private final Medium medium;
    private final long cacheId;
    private final int count;
    private final long segmentSize;
    private final long areaOffset;
    private final AtomicLongArray generation;
    private final long[] infoSeq;
    private final int[] next;
    private final AtomicIntegerArray refs;
    private java.util.function.IntConsumer onUnreferenced = seg -> { };

    SegmentTable(Medium medium, long cacheId, int count, long segmentSize, long areaOffset) {
        this.medium = medium;
        this.cacheId = cacheId;
        this.count = count;
        this.segmentSize = segmentSize;
        this.areaOffset = areaOffset;
        this.generation = new AtomicLongArray(count);
        this.infoSeq = new long[count];
        this.next = new int[count];
        this.refs = new AtomicIntegerArray(count);
    }

    /** Called (once) in the thread that drops a segment's last reference. */
    void onUnreferenced(java.util.function.IntConsumer listener) {
        this.onUnreferenced = listener;
    }

    int count() {
        return count;
    }

    long segmentSize() {
        return segmentSize;
    }

    /** Medium offset of byte {@code off} of segment {@code seg}. */
    long address(int seg, long off) {
        return areaOffset + seg * segmentSize + off;
    }

    long generation(int seg) {
        return generation.get(seg);
    }

    int next(int seg) {
        synchronized (this) {
            return next[seg];
        }
    }

    /** Loads one segment's state as read from the medium (open). */
    void load(int seg, SegmentInfo info) {
        generation.set(seg, info.generation());
        infoSeq[seg] = info.sequence();
        next[seg] = info.next();
    }

    /**
     * Sets a segment's generation and link in memory only, as if a write had succeeded: for the
     * read-only checker, to see the log as an open would after restoring a damaged slot.
     */
    synchronized void adoptInMemory(int seg, long gen, int nextSeg) {
        generation.set(seg, gen);
        next[seg] = nextSeg;
        infoSeq[seg]++;
    }

    /** Writes the initial state of every segment (format). */
    void formatAll() {
        for (int s = 0; s < count; s++) {
            new SegmentInfo(0, 0, SegmentInfo.NO_NEXT).encode(medium.segment(), s, 0, cacheId);
            medium.segment().asSlice(io.pmcache.format.Layout.segmentInfoSlot(s, 1), SegmentInfo.SLOT_SIZE)
                    .fill((byte) 0);
        }
    }

    /** Sets and persists the key-log link {@code seg -> nextSeg} (or {@link SegmentInfo#NO_NEXT}). */
    synchronized void setNext(int seg, int nextSeg) {
        next[seg] = nextSeg;
        write(seg);
    }

    /** Bumps and persists the generation: every key pointing into {@code seg} becomes stale. */
    synchronized void bumpGeneration(int seg, long atLeast) {
        generation.set(seg, Math.max(generation.get(seg) + 1, atLeast));
        write(seg);
    }

    private void write(int seg) {
        long seq = ++infoSeq[seg];
        int slot = SegmentInfo.slotFor(seq);
        new SegmentInfo(seq, generation.get(seg), next[seg]).encode(medium.segment(), seg, slot, cacheId);
        medium.persist(io.pmcache.format.Layout.segmentInfoSlot(seg, slot), SegmentInfo.SLOT_SIZE);
    }

    void ref(int seg) {
        refs.incrementAndGet(seg);
    }

    void ref(int seg, int n) {
        refs.addAndGet(seg, n);
    }

    /** Drops one reference; the last one hands the segment to the unreferenced listener. */
    void unref(int seg) {
        int r = refs.decrementAndGet(seg);
        if (r < 0) {
            throw new IllegalStateException("segment " + seg + " reference count went negative");
        }
        if (r == 0) {
            onUnreferenced.accept(seg);
        }
    }

    int refs(int seg) {
        return refs.get(seg);
    }
}
