package io.pmcache.cache;

import io.pmcache.format.KeyRecord;
import io.pmcache.index.Extent;
import io.pmcache.index.RangeIndex;
import java.util.ArrayList;
import java.util.List;

/**
 * Which parts of a dirty key the index still shows as the key's own; a newer key overwrote the
 * rest. The index holds the newest write of every byte (an insert wins over what it overlaps), so
 * an extent over a key's bytes that is not the key's own came later:
 * <ul>
 *   <li>a DATA extent naming other medium bytes (segment, offset or generation) than the key's
 *       data at that offset → overwritten;</li>
 *   <li>a ZERO extent over a DATA key → overwritten; over a ZERO key → own (it may be the key's);</li>
 *   <li>no extent, or a read-fill placeholder (something dropped the key's extent, e.g. a direct
 *       write) → own: only an extent of a newer key proves an overwrite.</li>
 * </ul>
 * A key is appended to the log before its extent enters the index (under the range's lock), so
 * every newer key seen here is in the mapped medium: it survives a process crash. Writeback seals
 * the open ksets before it relies on them, so that they survive a power cut too.
 */
final class OwnParts {
    private OwnParts() {
    }

    /** The key's own slices, in offset order: the whole key when nothing overwrote it, none when all was. */
    static List<Extent> of(RangeIndex index, KeyRecord key) {
        Extent whole = key.zero() ? Extent.zero(key.offset(), key.length(), true)
                : Extent.data(key.offset(), key.length(), key.segment(), key.segmentOffset(), key.generation(), true);
        List<Extent> own = new ArrayList<>(1);
        long pos = key.offset(); // start of the part not yet judged
        long end = key.offset() + key.length();
        long ownFrom = pos;     // start of the own run being gathered
        while (pos < end) {
            long to = Math.min(end, pos + RangeIndex.roomInRange(pos));
            List<Extent> there = index.extentsWithinIfFree(pos, to);
            if (there == null) {
                return List.of(whole); // busy: never wait for a writer (it may wait for writeback)
            }
            for (Extent x : there) {
                if (overwrites(x, key)) {
                    if (x.start() > ownFrom) {
                        own.add(whole.slice(ownFrom, x.start()));
                    }
                    ownFrom = x.end();
                }
            }
            pos = to;
        }
        if (ownFrom < end) {
            own.add(ownFrom == key.offset() ? whole : whole.slice(ownFrom, end));
        }
        return own;
    }

    /** True when {@code x} (an index extent over some of the key's bytes) is a newer key's. */
    private static boolean overwrites(Extent x, KeyRecord key) {
        return switch (x.kind()) {
            case PLACEHOLDER -> false;
            case ZERO -> !key.zero();
            case DATA -> key.zero() || x.segment() != key.segment() || x.generation() != key.generation()
                    || x.segmentOffset() - (x.start() - key.offset()) != key.segmentOffset();
        };
    }
}
