package io.pmcache.cache;

import io.pmcache.format.Crc;
import io.pmcache.format.KeyRecord;
import io.pmcache.index.Extent;
import io.pmcache.index.ExtentMap;
import io.pmcache.index.RangeIndex;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Reads.
 *
 * <p>Per 4 MiB range: under the range lock, take a snapshot of the extents covering the request
 * and put a placeholder (tagged with a fresh fill id) into every gap. Then, without the lock:
 * <ul>
 *   <li>data extent: copy from the medium, then re-check the segment generation (after an acquire
 *       fence); if gc reclaimed the segment meanwhile, its data was written back, so read those
 *       bytes from the backing device instead;</li>
 *   <li>zero extent: zeros;</li>
 *   <li>someone else's placeholder: read the backing device (their fill is in flight);</li>
 *   <li>own placeholder (a miss): read the backing device, then fill: copy what was read into a
 *       new allocation and, under the lock, turn each piece of the placeholder that survived
 *       (writes that raced with us trimmed the rest) into a clean extent with a key in the log.
 *       A fill takes a new segment only below the gc threshold (see {@link #fillLimit()});
 *       otherwise it is skipped (counted in {@code fillsSkipped}), never waited for.</li>
 * </ul>
 */
final class ReadPath {
    private static final AtomicLong FILL_IDS = new AtomicLong();
    private final Engine e;

    ReadPath(Engine e) {
        this.e = e;
    }

    /** A fresh placeholder id (read fills and direct writes draw from one sequence: ids never collide). */
    static long newFillId() {
        return FILL_IDS.incrementAndGet();
    }

    void read(long offset, MemorySegment dst) throws IOException {
        long len = dst.byteSize();
        boolean fill = e.policy.fillRead(offset, len);
        long done = 0;
        int hit = 0;
        int miss = 0;
        while (done < len) {
            long pos = offset + done;
            int n = (int) Math.min(len - done, RangeIndex.roomInRange(pos));
            int r = readRange(pos, n == len ? dst : dst.asSlice(done, n), fill); // within one range: no slice
            hit |= r & 1;
            miss |= r & 2;
            done += n;
        }
        e.stats.reads.increment();
        e.stats.readBytes.add(len);
        if (miss == 0) {
            e.stats.readHits.increment();
        } else if (hit != 0) {
            e.stats.readPartialHits.increment();
        } else {
            e.stats.readMisses.increment();
        }
    }

    /**
     * Returns bit 0 when some byte came from the cache, bit 1 when some came from the backing device.
     *
     * <p>A read from the backing device is kept only if what it was based on (a gap, a placeholder,
     * a data extent whose segment gc reclaimed) is still in the index once it is done. Otherwise a
     * write to those sectors was acknowledged meanwhile and may have been written back during the
     * copy, which can then mix the two versions inside a sector (a file read racing a pwrite tears
     * at any byte): the read starts again, and finds the write in the index.
     */
    private int readRange(long pos, MemorySegment dst, boolean fill) throws IOException {
        ExtentMap map = e.index.rangeFor(pos);
        while (true) {
            int r = readRangeOnce(map, pos, dst, fill);
            if (r >= 0) {
                return r;
            }
        }
    }

    /** One attempt of {@link #readRange}; -1 when a backing-device read may be torn (see there). */
    private int readRangeOnce(ExtentMap map, long pos, MemorySegment dst, boolean fillMisses) throws IOException {
        long end = pos + dst.byteSize();
        // Fast path: one extent holds the whole request (a hit or zeros): no snapshot list, no object.
        boolean whole;
        Extent.Kind kind = null;
        int seg = 0;
        long segOff = 0;
        long generation = 0;
        map.lock().lock();
        try {
            whole = map.findCovering(pos, end);
            if (whole) {
                kind = map.foundKind();
                seg = map.foundSegment();
                segOff = map.foundAddress();
                generation = map.foundGeneration();
            }
        } finally {
            map.lock().unlock();
        }
        if (whole) {
            if (kind == Extent.Kind.ZERO) {
                dst.fill((byte) 0);
                return 1;
            }
            if (copyFromMedium(seg, segOff, generation, dst)) {
                return 1;
            }
            // gc reclaimed its segment meanwhile: the path below reads the backing device and
            // checks that what it read for is still in the index
        }
        List<Extent> parts = new ArrayList<>(4);
        long fillId = 0;
        java.util.concurrent.CountDownLatch direct;
        map.lock().lock();
        try {
            map.forEachOverlapping(pos, end, x -> parts.add(x.slice(pos, end)));
            long cursor = pos;
            int gaps = 0;
            for (int i = 0, n = parts.size(); i < n + 1 && cursor < end; i++) {
                long next = i < n ? parts.get(i).start() : end;
                if (next > cursor) {
                    if (fillId == 0) {
                        fillId = FILL_IDS.incrementAndGet();
                    }
                    Extent p = Extent.placeholder(cursor, (int) (next - cursor), fillId);
                    map.insert(p, null);
                    parts.add(p);
                    gaps++;
                }
                if (i < n) {
                    cursor = parts.get(i).end();
                }
            }
            if (gaps > 0) {
                parts.sort((a, b) -> Long.compare(a.start(), b.start()));
            }
            direct = e.direct.overlapping(map, pos, end);
        } finally {
            map.lock().unlock();
        }
        if (direct != null) {
            // A direct write to these bytes is in flight (DirectPath): wait for it, so this read
            // never reads a backing-device sector half written, then start over.
            if (fillId != 0) {
                removePlaceholders(map, pos, end, fillId);
            }
            e.direct.await(direct, e.failure);
            return -1;
        }
        int result = 0;
        try {
            List<Extent> fromBacking = new ArrayList<>(2);
            for (Extent x : parts) {
                MemorySegment out = dst.asSlice(x.start() - pos, x.length());
                switch (x.kind()) {
                    case DATA -> {
                        if (copyFromMedium(x, out)) {
                            result |= 1;
                        } else {
                            e.backing.read(x.start(), out);
                            fromBacking.add(x);
                            result |= 2;
                        }
                    }
                    case ZERO -> {
                        out.fill((byte) 0);
                        result |= 1;
                    }
                    case PLACEHOLDER -> {
                        e.backing.read(x.start(), out);
                        fromBacking.add(x);
                        result |= 2;
                    }
                }
            }
            if (!unchanged(map, fromBacking)) {
                return -1; // before the fill: it would turn our surviving placeholders into data
            }
            if (fillId != 0 && !fillMisses) {
                e.stats.fillsBypassed.increment();
            } else if (fillId != 0 && !e.failure.failed()) {
                try {
                    fill(map, parts, fillId, pos, dst);
                } catch (EngineAbort ex) {
                    // Best effort: the cache is stopping or failed while filling; the read itself succeeded.
                    e.stats.fillsSkipped.increment();
                }
            }
        } finally {
            if (fillId != 0) {
                removePlaceholders(map, pos, end, fillId);
            }
        }
        return result;
    }

    /**
     * True when each of {@code read} (slices of index extents that a backing-device read was based
     * on) is still in the index as it was: no write, zero or trim replaced any of it meanwhile.
     */
    private static boolean unchanged(ExtentMap map, List<Extent> read) {
        if (read.isEmpty()) {
            return true;
        }
        map.lock().lock();
        try {
            for (Extent x : read) {
                Extent now = map.covering(x.start(), x.end());
                if (now == null || !now.slice(x.start(), x.end()).equals(x)) {
                    return false;
                }
            }
            return true;
        } finally {
            map.lock().unlock();
        }
    }

    /** Copies a data extent; false when its segment was reclaimed (then the bytes are on the backing device). */
    private boolean copyFromMedium(Extent x, MemorySegment out) {
        return copyFromMedium(x.segment(), x.segmentOffset(), x.generation(), out);
    }

    /** Copies {@code out.byteSize()} bytes at {@code segOff} of {@code seg}; false when the segment was reclaimed. */
    private boolean copyFromMedium(int seg, long segOff, long generation, MemorySegment out) {
        if (e.segments.generation(seg) != generation) {
            return false;
        }
        MemorySegment.copy(e.medium.segment(), e.address(seg, segOff), out, 0, out.byteSize());
        VarHandle.acquireFence();
        return e.segments.generation(seg) == generation;
    }

    /**
     * Segments a fill may bring into use: fewer than the gc threshold
     * ({@code GarbageCollector.threshold()}, segments × gc_percent / 100).
     *
     * <p>Why not down to the key log's reserve, as before: a fill's segment can only be freed after
     * writeback passed its key and gc passed it in turn. While the backing device fails (or
     * stalls), the dirty tail stands still, so every segment a fill takes stays taken, and fills
     * alone could use up the cache: the next write would then wait until the device healed,
     * although the cache could have held it. Above the gc threshold gc is already reclaiming, so a
     * fill there would only displace data gc is about to free; below it, fills cost writes nothing
     * they would miss. So the space between the threshold and the reserve is kept for writes. A
     * fill may still finish the data head's current segment (already in use). gc_percent 0 thus
     * turns fills off, which loses little: gc would evict them as soon as writeback passed them.
     */
    private int fillLimit() {
        return (int) ((long) e.segments.count() * e.info.current().gcPercent() / 100);
    }

    /** Fills the cache with what was read for our own placeholders (also a writethrough's data). */
    void fill(ExtentMap map, List<Extent> parts, long fillId, long pos, MemorySegment dst) {
        int limit = fillLimit();
        for (Extent gap : parts) {
            if (gap.kind() != Extent.Kind.PLACEHOLDER || gap.fillId() != fillId) {
                continue;
            }
            long done = 0;
            while (done < gap.length()) {
                Allocation a = e.head().allocateForFill((int) (gap.length() - done), limit);
                if (a == null) {
                    e.stats.fillsSkipped.increment();
                    return;
                }
                long from = gap.start() + done;
                long at = e.address(a.segment(), a.offset());
                MemorySegment.copy(dst, from - pos, e.medium.segment(), at, a.length());
                try {
                    fillPieces(map, fillId, from, a);
                } finally {
                    e.segments.unref(a.segment());
                }
                e.stats.fillBytes.add(a.length());
                done += a.length();
            }
        }
    }

    /** Under the lock: each surviving piece of our placeholder in the allocation's span becomes clean data. */
    private void fillPieces(ExtentMap map, long fillId, long from, Allocation a) {
        long to = from + a.length();
        map.lock().lock();
        try {
            List<Extent> mine = new ArrayList<>(2);
            map.forEachOverlapping(from, to, x -> {
                if (x.kind() == Extent.Kind.PLACEHOLDER && x.fillId() == fillId) {
                    mine.add(x.slice(from, to));
                }
            });
            for (Extent p : mine) {
                int segOff = (int) (a.offset() + (p.start() - from));
                int crc = Crc.ofData(e.medium.segment(), e.address(a.segment(), segOff), p.length());
                e.keyLog.append(new KeyRecord(p.start(), p.length(), 0, a.segment(), segOff, a.generation(), crc));
                map.insert(Extent.data(p.start(), p.length(), a.segment(), segOff, a.generation(), false), null);
            }
        } finally {
            map.lock().unlock();
        }
    }

    static void removePlaceholders(ExtentMap map, long from, long to, long fillId) {
        map.lock().lock();
        try {
            List<Extent> mine = new ArrayList<>(2);
            map.forEachOverlapping(from, to, x -> {
                if (x.kind() == Extent.Kind.PLACEHOLDER && x.fillId() == fillId) {
                    mine.add(x);
                }
            });
            for (Extent x : mine) {
                map.removeExact(x);
            }
        } finally {
            map.lock().unlock();
        }
    }
}
