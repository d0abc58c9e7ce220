package io.pmcache.cache;

import io.pmcache.device.BlockStatus;
import io.pmcache.index.Extent;
import io.pmcache.index.RangeIndex;
import java.io.IOException;
import java.util.List;

/**
 * Block status (allocation) of a range of the cache: what the index knows, and for the rest what
 * the backing device says.
 *
 * <p>Per 4 MiB range, a snapshot of its extents (under the range's lock), then in order:
 * <ul>
 *   <li>ZERO extent (a trim or write-zeroes, dirty or written back): HOLE. It reads as zeros and
 *       takes no cache space; writeback zeroes the backing device there (a file gets a hole
 *       punched).</li>
 *   <li>DATA extent: DATA, also when gc reclaimed its segment since (its bytes are then on the
 *       backing device; DATA is always a correct answer).</li>
 *   <li>Gap, or placeholder (a read miss in flight, which no write has overtaken): the backing
 *       device holds the newest bytes there, so its answer. Consecutive such bytes, across ranges,
 *       are asked for in one call.</li>
 * </ul>
 * So cached data hides a hole in the backing device, and a zero extent hides data the backing
 * device still holds: ZERO or HOLE is only reported for bytes that read as zeros. Each range is
 * seen as of its snapshot; a write racing with the query may or may not be seen, as with a read.
 *
 * <p>Bounded work: at most {@code maxExtents} extents, and the walk stops at a range boundary
 * once {@link #MAX_VISITED} index extents were seen; the answer then covers a prefix (the caller
 * asks again for the rest).
 */
final class BlockStatusQuery {
    static final int MAX_VISITED = 1 << 16;
    private final Engine e;

    BlockStatusQuery(Engine e) {
        this.e = e;
    }

    List<BlockStatus> query(long offset, long length, int maxExtents) throws IOException {
        BlockStatus.Builder out = new BlockStatus.Builder(offset, length, maxExtents);
        long end = offset + length;
        long backingFrom = -1; // start of bytes the backing device must answer for, not yet asked
        long pos = offset;
        int visited = 0;
        while (pos < end && visited < MAX_VISITED) {
            long stop = Math.min(end, pos + RangeIndex.roomInRange(pos));
            long cursor = pos;
            for (Extent x : e.index.extentsWithin(pos, stop)) {
                visited++;
                if (x.kind() == Extent.Kind.PLACEHOLDER) {
                    continue; // like a gap: the backing device's bytes
                }
                if (x.start() > cursor && backingFrom < 0) {
                    backingFrom = cursor;
                }
                if (backingFrom >= 0) {
                    if (!fromBacking(out, backingFrom, x.start(), maxExtents)) {
                        return out.build();
                    }
                    backingFrom = -1;
                }
                out.add(x.length(), x.kind() == Extent.Kind.ZERO ? BlockStatus.Kind.HOLE : BlockStatus.Kind.DATA);
                if (out.full()) {
                    return out.build();
                }
                cursor = x.end();
            }
            if (cursor < stop && backingFrom < 0) {
                backingFrom = cursor;
            }
            pos = stop;
        }
        if (backingFrom >= 0) {
            fromBacking(out, backingFrom, pos, maxExtents);
        }
        return out.build();
    }

    /** Adds the backing device's status of {@code [from, to)}; false when the answer cannot go on past it. */
    private boolean fromBacking(BlockStatus.Builder out, long from, long to, int maxExtents) throws IOException {
        for (BlockStatus s : e.backing.blockStatus(from, to - from, maxExtents)) {
            if (out.full() || s.offset() != out.cursor() || s.offset() >= to) {
                break;
            }
            out.add(Math.min(s.length(), to - s.offset()), s.kind());
        }
        return out.cursor() == to && !out.full();
    }
}
