package io.pmcache.cache;

import io.pmcache.format.CacheInfo;
import io.pmcache.format.KeyRecord;
import io.pmcache.format.Layout;
import io.pmcache.format.LogPosition;
import io.pmcache.format.MediaCorruptException;
import io.pmcache.format.SegmentInfo;
import io.pmcache.format.Superblock;
import io.pmcache.media.Medium;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * Where every record of an undamaged, closed (or crashed) cache image is, read-only, as an open
 * would see it: the superblock, the newest cache info and its slot, each segment's newest info and
 * its slot, and the key log from the key tail — each kset's place, capacity, seal and keys.
 * Tests use it to aim damage at one record and to know which writes that record carries.
 */
final class MediaMap {
    /** A valid key in the log. */
    record Key(Kset kset, int slot, long address, KeyRecord key) {
        /** The key's data still lives in its segment (its generation is the segment's). */
        boolean current(MediaMap map) {
            return key.zero() || key.generation() == map.infos.get(key.segment()).generation();
        }

        @Override
        public String toString() {
            return "kset #" + kset.seq() + " slot " + slot + " [" + key.offset() + ", +" + key.length() + ")"
                    + (key.zero() ? " zero" : " in segment " + key.segment() + " +" + key.segmentOffset()
                    + " generation " + key.generation())
                    + (key.dirty() && kset.dirty() ? " dirty" : key.dirty() ? " written back" : " clean");
        }
    }

    /** A kset of the log; {@code address} is its medium offset. */
    record Kset(LogReader.KsetAt at, long address, List<Key> keys, boolean dirty) {
        long seq() {
            return at.at().ksetSeq();
        }

        boolean sealed() {
            return at.sealed();
        }

        @Override
        public String toString() {
            return "kset #" + seq() + " at " + at.at() + " (capacity " + at.capacity() + ", "
                    + (sealed() ? "sealed with " + at.sealedCount() + " keys" : "unsealed") + (dirty ? ", dirty" : "")
                    + ")";
        }
    }

    final Superblock sb;
    final long cacheId;
    final CacheInfo info;
    /** Medium offset of the slot holding {@link #info}. */
    final long infoSlot;
    /** Per segment, the newest valid info. */
    final List<SegmentInfo> infos = new ArrayList<>();
    /** Per segment, the slot (0 or 1) holding the newest info. */
    final int[] newestInfoSlot;
    final List<Kset> ksets = new ArrayList<>();
    final BitSet logSegments;
    /** Where the next kset would go (the key head). */
    final LogPosition end;

    MediaMap(Medium medium) throws MediaCorruptException {
        MemorySegment m = medium.segment();
        sb = Cache.superblock(medium);
        cacheId = sb.cacheId();
        int count = sb.segmentCount();
        info = CacheInfo.read(m, cacheId, sb, medium.describe());
        CacheInfo slot0 = CacheInfo.decodeSlot(m, Layout.CACHE_INFO_SLOT0, cacheId, sb);
        infoSlot = slot0 != null && slot0.sequence() == info.sequence() ? Layout.CACHE_INFO_SLOT0
                : Layout.CACHE_INFO_SLOT1;
        SegmentTable table = new SegmentTable(medium, cacheId, count, sb.segmentSize(), sb.segmentAreaOffset());
        newestInfoSlot = new int[count];
        for (int s = 0; s < count; s++) {
            SegmentInfo si = SegmentInfo.read(m, s, cacheId, count);
            if (si == null) {
                throw new IllegalStateException("segment " + s + " has no valid info: the image is damaged already");
            }
            SegmentInfo a = SegmentInfo.decodeSlot(m, s, 0, cacheId, count);
            newestInfoSlot[s] = a != null && a.sequence() == si.sequence() ? 0 : 1;
            infos.add(si);
            table.load(s, si);
        }
        LogReader reader = new LogReader(medium, table, cacheId, sb.backingSize());
        logSegments = new BitSet(count);
        long dirtySeq = info.dirtyTail().ksetSeq();
        LogWalker.Result r = LogWalker.walk(reader, info.keyTail(), logSegments, k -> {
            List<Key> keys = new ArrayList<>();
            Kset kset = new Kset(k, table.address(k.at().segment(), k.at().offset()), keys,
                    k.at().ksetSeq() >= dirtySeq);
            for (int slot = 0; slot < k.slots(); slot++) {
                KeyRecord key = reader.slotEmpty(k, slot) ? null : reader.key(k, slot);
                if (key != null) {
                    keys.add(new Key(kset, slot, reader.slotAddress(k, slot), key));
                }
            }
            ksets.add(kset);
        });
        end = r.end();
    }

    /** Every valid key of the log, in log order. */
    List<Key> keys() {
        List<Key> all = new ArrayList<>();
        ksets.forEach(k -> all.addAll(k.keys()));
        return all;
    }

    /** Medium offset of byte {@code off} of segment {@code seg}. */
    long address(int seg, long off) {
        return sb.segmentAreaOffset() + seg * sb.segmentSize() + off;
    }

    /**
     * The key that gave sector {@code sector} its newest value in the log (null when no key of
     * the log covers it).
     */
    Key newestKeyFor(long sector) {
        long at = sector * DiskModel.SECTOR;
        Key newest = null;
        for (Kset k : ksets) {
            for (Key key : k.keys()) {
                if (key.key().offset() <= at && key.key().end() >= at + DiskModel.SECTOR) {
                    newest = key;
                }
            }
        }
        return newest;
    }
}
