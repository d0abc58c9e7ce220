package io.pmcache.cache;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import io.pmcache.format.CacheInfo;
import io.pmcache.format.Crc;
import io.pmcache.format.KeyRecord;
import io.pmcache.format.Kset;
import io.pmcache.format.Layout;
import io.pmcache.format.LogPosition;
import io.pmcache.format.SegmentInfo;
import io.pmcache.format.Superblock;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The damage {@link CorruptMediaCampaignTest} does to a cache image: for each {@link Region}, bit
 * flips, zeroed spans and forged records whose CRCs are valid (re-encoded through the format
 * classes; a forged key in a sealed kset gets its seal re-computed, a forged cache or segment info
 * is written as the next copy into the other slot, as a real update would be). Each
 * {@link Mutation} says what it did, which sectors' loss it explains, and whether a loss must be
 * reported or is undetectable by design.
 */
final class MediaMutations {
    private static final int SECTOR = DiskModel.SECTOR;

    private MediaMutations() {
    }

    /** Which record a round damages. */
    enum Region { SUPERBLOCK, CACHE_INFO, SEGMENT_INFO, KSET_HEADER, SEAL, KEY, DATA }

    /**
     * One damage done to the image.
     *
     * @param what       the record, the place and the change, for the failure message
     * @param radius     sectors whose loss the damage explains; null: any (superblock, cache info, log segment info)
     * @param mustReport a loss must be reported (false: undetectable by design)
     * @param dataOnly   the damage shows only through data CRCs: reported means {@code --verify-data} finds it
     */
    record Mutation(String what, BitSet radius, boolean mustReport, boolean dataOnly) {
        boolean everything() {
            return radius == null;
        }

        boolean explains(int sector) {
            return radius == null || radius.get(sector);
        }
    }

    private static BitSet sectorsOf(List<MediaMap.Key> keys) {
        BitSet b = new BitSet();
        for (MediaMap.Key k : keys) {
            b.set((int) (k.key().offset() / SECTOR), (int) ((k.key().end() + SECTOR - 1) / SECTOR));
        }
        return b;
    }

    private static void flip(MemorySegment m, long at, int bit) {
        m.set(JAVA_BYTE, at, (byte) (m.get(JAVA_BYTE, at) ^ (1 << bit)));
    }

    /** Damages one record of {@code region} in {@code m}, a copy of the image {@code map} describes. */
    static Mutation mutate(Region region, MemorySegment m, MediaMap map, SplittableRandom r) {
        return switch (region) {
            case SUPERBLOCK -> superblock(m, map, r);
            case CACHE_INFO -> cacheInfo(m, map, r);
            case SEGMENT_INFO -> segmentInfo(m, map, r);
            case KSET_HEADER -> ksetHeader(m, map, pick(map.ksets, r), r);
            case SEAL -> {
                List<MediaMap.Kset> sealed = map.ksets.stream().filter(MediaMap.Kset::sealed).toList();
                yield sealed.isEmpty() ? ksetHeader(m, map, pick(map.ksets, r), r) : seal(m, map, pick(sealed, r), r);
            }
            case KEY -> key(m, map, r);
            case DATA -> data(m, map, r);
        };
    }

    private static <T> T pick(List<T> list, SplittableRandom r) {
        return list.get(r.nextInt(list.size()));
    }

    private static Mutation superblock(MemorySegment m, MediaMap map, SplittableRandom r) {
        Superblock s = map.sb;
        switch (r.nextInt(3)) {
            case 0 -> {
                int at = r.nextInt(Superblock.SIZE);
                int bit = r.nextInt(8);
                flip(m, at, bit);
                return new Mutation("superblock: bit " + bit + " of byte " + at + " flipped", null, true, false);
            }
            case 1 -> {
                int at = r.nextInt(Superblock.SIZE);
                int len = 1 + r.nextInt(Superblock.SIZE - at);
                m.asSlice(at, len).fill((byte) 0);
                return new Mutation("superblock: bytes [" + at + ", +" + len + ") zeroed", null, true, false);
            }
            default -> {
                String field;
                Superblock f;
                switch (r.nextInt(9)) {
                    case 0 -> {
                        int n = s.segmentCount() + (r.nextBoolean() ? 1 : -1);
                        field = "segment count " + s.segmentCount() + " -> " + n;
                        f = new Superblock(s.version(), s.flags(), s.segmentSize(), n, s.segmentAreaOffset(),
                                s.backingSize(), s.backingFingerprint(), s.cacheId(), s.createdMillis(), s.mediumSize());
                    }
                    case 1 -> {
                        field = "segment size " + s.segmentSize() + " -> " + s.segmentSize() * 2;
                        f = new Superblock(s.version(), s.flags(), s.segmentSize() * 2, s.segmentCount(),
                                s.segmentAreaOffset(), s.backingSize(), s.backingFingerprint(), s.cacheId(),
                                s.createdMillis(), s.mediumSize());
                    }
                    case 2 -> {
                        field = "segment area offset +4096";
                        f = new Superblock(s.version(), s.flags(), s.segmentSize(), s.segmentCount(),
                                s.segmentAreaOffset() + Layout.PAGE, s.backingSize(), s.backingFingerprint(),
                                s.cacheId(), s.createdMillis(), s.mediumSize());
                    }
                    case 3 -> {
                        field = "backing size +512";
                        f = new Superblock(s.version(), s.flags(), s.segmentSize(), s.segmentCount(),
                                s.segmentAreaOffset(), s.backingSize() + SECTOR, s.backingFingerprint(), s.cacheId(),
                                s.createdMillis(), s.mediumSize());
                    }
                    case 4 -> {
                        field = "backing fingerprint ^1";
                        f = new Superblock(s.version(), s.flags(), s.segmentSize(), s.segmentCount(),
                                s.segmentAreaOffset(), s.backingSize(), s.backingFingerprint() ^ 1, s.cacheId(),
                                s.createdMillis(), s.mediumSize());
                    }
                    case 5 -> {
                        long id = s.cacheId() ^ (1L << r.nextInt(64));
                        field = "cache id -> " + Long.toHexString(id);
                        f = new Superblock(s.version(), s.flags(), s.segmentSize(), s.segmentCount(),
                                s.segmentAreaOffset(), s.backingSize(), s.backingFingerprint(), id, s.createdMillis(),
                                s.mediumSize());
                    }
                    case 6 -> {
                        field = "data-CRC flag toggled";
                        f = new Superblock(s.version(), s.flags() ^ Superblock.FLAG_DATA_CRC, s.segmentSize(),
                                s.segmentCount(), s.segmentAreaOffset(), s.backingSize(), s.backingFingerprint(),
                                s.cacheId(), s.createdMillis(), s.mediumSize());
                    }
                    case 7 -> {
                        field = "medium size -4096";
                        f = new Superblock(s.version(), s.flags(), s.segmentSize(), s.segmentCount(),
                                s.segmentAreaOffset(), s.backingSize(), s.backingFingerprint(), s.cacheId(),
                                s.createdMillis(), s.mediumSize() - Layout.PAGE);
                    }
                    default -> {
                        field = "format version " + s.version() + " -> " + (s.version() + 1);
                        f = new Superblock(s.version() + 1, s.flags(), s.segmentSize(), s.segmentCount(),
                                s.segmentAreaOffset(), s.backingSize(), s.backingFingerprint(), s.cacheId(),
                                s.createdMillis(), s.mediumSize());
                    }
                }
                f.encode(m);
                return new Mutation("superblock forged with a valid CRC: " + field, null, true, false);
            }
        }
    }

    /** Writes {@code next} as the next copy of the cache info (sequence + 1, into the other slot), as an update would. */
    private static String forgeCacheInfo(MemorySegment m, MediaMap map, LogPosition key, LogPosition dirty, int gc) {
        CacheInfo cur = map.info;
        CacheInfo next = new CacheInfo(cur.sequence() + 1, key, dirty, gc);
        long slot = CacheInfo.slotFor(next.sequence());
        next.encode(m, slot, map.cacheId);
        return "cache info forged with a valid CRC as copy " + next.sequence() + " (slot at " + slot + "): ";
    }

    private static Mutation cacheInfo(MemorySegment m, MediaMap map, SplittableRandom r) {
        int segments = map.sb.segmentCount();
        CacheInfo cur = map.info;
        long newest = map.infoSlot;
        long older = newest == Layout.CACHE_INFO_SLOT0 ? Layout.CACHE_INFO_SLOT1 : Layout.CACHE_INFO_SLOT0;
        LogPosition kt = cur.keyTail();
        LogPosition dt = cur.dirtyTail();
        int gcp = cur.gcPercent();
        switch (r.nextInt(6)) {
            case 0, 1 -> {
                long slot = r.nextBoolean() ? newest : older;
                int at = r.nextInt(CacheInfo.SIZE);
                int bit = r.nextInt(8);
                flip(m, slot + at, bit);
                return new Mutation("cache info " + (slot == newest ? "newest" : "older") + " slot (at " + slot
                        + "): bit " + bit + " of byte " + at + " flipped", null, true, false);
            }
            case 2 -> {
                m.asSlice(newest, CacheInfo.SIZE).fill((byte) 0);
                return new Mutation("cache info newest slot (at " + newest + ") zeroed", null, true, false);
            }
            case 3 -> {
                m.asSlice(Layout.CACHE_INFO_SLOT0, CacheInfo.SIZE).fill((byte) 0);
                m.asSlice(Layout.CACHE_INFO_SLOT1, CacheInfo.SIZE).fill((byte) 0);
                return new Mutation("cache info: both slots zeroed", null, true, false);
            }
            default -> {
                List<MediaMap.Kset> ks = map.ksets;
                int dirtyIndex = 0;
                while (dirtyIndex < ks.size() && ks.get(dirtyIndex).seq() < dt.ksetSeq()) {
                    dirtyIndex++;
                }
                switch (r.nextInt(10)) {
                    case 0 -> {
                        LogPosition k = new LogPosition(kt.segment(), kt.offset(), kt.ksetSeq() + 1);
                        return forgedInfo(forgeCacheInfo(m, map, k, dt.ksetSeq() >= k.ksetSeq() ? dt : k, gcp)
                                + "key tail sequence " + kt.ksetSeq() + " -> " + k.ksetSeq());
                    }
                    case 1 -> {
                        LogPosition k = new LogPosition(kt.segment(), kt.offset(), Math.max(1, kt.ksetSeq() - 1));
                        return forgedInfo(forgeCacheInfo(m, map, k, dt, gcp) + "key tail sequence " + kt.ksetSeq()
                                + " -> " + k.ksetSeq());
                    }
                    case 2 -> {
                        LogPosition d = new LogPosition(dt.segment(), dt.offset(), dt.ksetSeq() + 1);
                        return forgedInfo(forgeCacheInfo(m, map, kt, d, gcp) + "dirty tail sequence " + dt.ksetSeq()
                                + " -> " + d.ksetSeq());
                    }
                    case 3 -> {
                        LogPosition d = new LogPosition(dt.segment(), dt.offset(), Math.max(kt.ksetSeq(), dt.ksetSeq() - 1));
                        return forgedInfo(forgeCacheInfo(m, map, kt, d, gcp) + "dirty tail sequence " + dt.ksetSeq()
                                + " -> " + d.ksetSeq());
                    }
                    case 4 -> {
                        int off = dt.offset() + KeyRecord.SIZE * (1 + r.nextInt(4));
                        LogPosition d = new LogPosition(dt.segment(), off, dt.ksetSeq());
                        return forgedInfo(forgeCacheInfo(m, map, kt, d, gcp) + "dirty tail offset " + dt.offset()
                                + " -> " + off);
                    }
                    case 5 -> {
                        int seg = (dt.segment() + 1 + r.nextInt(segments - 1)) % segments;
                        LogPosition d = new LogPosition(seg, dt.offset(), dt.ksetSeq());
                        LogPosition k = kt.segment() == dt.segment() && kt.offset() == dt.offset() ? d : kt;
                        return forgedInfo(forgeCacheInfo(m, map, k, d, gcp) + "dirty tail segment " + dt.segment()
                                + " -> " + seg);
                    }
                    case 6 -> {
                        if (dirtyIndex + 1 < ks.size()) {
                            // A later kset boundary: as if writeback had got that far. Nothing in the
                            // image can tell (the backing disk is not read): undetectable by design.
                            int to = dirtyIndex + 1 + r.nextInt(ks.size() - dirtyIndex - 1);
                            LogPosition d = ks.get(to).at().at();
                            List<MediaMap.Key> skipped = new ArrayList<>();
                            ks.subList(dirtyIndex, to).forEach(k -> skipped.addAll(k.keys()));
                            String what = forgeCacheInfo(m, map, kt, d, gcp) + "dirty tail moved forward from "
                                    + dt + " to the later kset boundary " + d + " (undetectable by design)";
                            return new Mutation(what, sectorsOf(skipped), false, false);
                        }
                        return forgedInfo(forgeCacheInfo(m, map, kt, dt, (gcp + 1) % 91) + "gc_percent " + gcp
                                + " -> " + (gcp + 1) % 91);
                    }
                    case 7 -> {
                        int keyIndex = 0;
                        while (keyIndex < ks.size() && ks.get(keyIndex).seq() < kt.ksetSeq()) {
                            keyIndex++;
                        }
                        if (dirtyIndex > keyIndex) {
                            int to = keyIndex + r.nextInt(dirtyIndex - keyIndex);
                            LogPosition d = ks.get(to).at().at();
                            return forgedInfo(forgeCacheInfo(m, map, kt, d, gcp) + "dirty tail moved back from " + dt
                                    + " to the earlier kset boundary " + d);
                        }
                        LogPosition k = new LogPosition(kt.segment(), kt.offset() + Kset.MIN_BYTES, kt.ksetSeq());
                        return forgedInfo(forgeCacheInfo(m, map, k, dt, gcp) + "key tail offset " + kt.offset()
                                + " -> " + k.offset());
                    }
                    case 8 -> {
                        int keyIndex = 0;
                        while (keyIndex < ks.size() && ks.get(keyIndex).seq() < kt.ksetSeq()) {
                            keyIndex++;
                        }
                        if (dirtyIndex > keyIndex) {
                            int to = keyIndex + 1 + r.nextInt(dirtyIndex - keyIndex);
                            LogPosition k = to < ks.size() ? ks.get(to).at().at() : dt;
                            return forgedInfo(forgeCacheInfo(m, map, k, dt, gcp) + "key tail moved forward from "
                                    + kt + " to the kset boundary " + k + " (written back already)");
                        }
                        int seg = (kt.segment() + 1 + r.nextInt(segments - 1)) % segments;
                        LogPosition k = new LogPosition(seg, kt.offset(), kt.ksetSeq());
                        return forgedInfo(forgeCacheInfo(m, map, k, dt, gcp) + "key tail segment " + kt.segment()
                                + " -> " + seg);
                    }
                    default -> {
                        // The older copy, made the newest: the state one update ago, as a lost write would leave it.
                        CacheInfo old = CacheInfo.decodeSlot(m, older, map.cacheId, map.sb);
                        if (old == null) {
                            return forgedInfo(forgeCacheInfo(m, map, kt, dt, (gcp + 7) % 91) + "gc_percent " + gcp
                                    + " -> " + (gcp + 7) % 91);
                        }
                        return forgedInfo(forgeCacheInfo(m, map, old.keyTail(), old.dirtyTail(), old.gcPercent())
                                + "the older copy's tails (" + old.keyTail() + ", " + old.dirtyTail()
                                + ") made the newest");
                    }
                }
            }
        }
    }

    private static Mutation forgedInfo(String what) {
        return new Mutation(what, null, true, false);
    }

    private static Mutation segmentInfo(MemorySegment m, MediaMap map, SplittableRandom r) {
        int segments = map.sb.segmentCount();
        int seg;
        List<Integer> log = map.logSegments.stream().boxed().toList();
        List<Integer> data = map.keys().stream().filter(k -> !k.key().zero() && k.current(map))
                .map(k -> k.key().segment()).distinct().toList();
        switch (r.nextInt(3)) {
            case 0 -> seg = pick(log, r);
            case 1 -> seg = data.isEmpty() ? r.nextInt(segments) : pick(data, r);
            default -> seg = r.nextInt(segments);
        }
        BitSet radius;
        String kind;
        if (map.logSegments.get(seg)) {
            radius = null; // the log's chain runs through it
            kind = "log segment " + seg;
        } else {
            int s = seg;
            radius = sectorsOf(map.keys().stream().filter(k -> !k.key().zero() && k.key().segment() == s).toList());
            kind = (data.contains(seg) ? "data segment " : "segment ") + seg;
        }
        int newest = map.newestInfoSlot[seg];
        SegmentInfo cur = map.infos.get(seg);
        String what;
        switch (r.nextInt(5)) {
            case 0 -> {
                int slot = r.nextBoolean() ? newest : 1 - newest;
                int at = r.nextInt(SegmentInfo.SLOT_SIZE);
                int bit = r.nextInt(8);
                flip(m, Layout.segmentInfoSlot(seg, slot) + at, bit);
                what = (slot == newest ? "newest" : "older") + " info slot: bit " + bit + " of byte " + at + " flipped";
            }
            case 1 -> {
                m.asSlice(Layout.segmentInfoSlot(seg, newest), SegmentInfo.SLOT_SIZE).fill((byte) 0);
                what = "newest info slot zeroed";
            }
            case 2 -> {
                m.asSlice(Layout.segmentInfoSlot(seg, 0), 2L * SegmentInfo.SLOT_SIZE).fill((byte) 0);
                what = "both info slots zeroed";
            }
            default -> {
                long gen = cur.generation();
                int next = cur.next();
                String change;
                switch (r.nextInt(6)) {
                    case 0 -> {
                        gen = cur.generation() + 1;
                        change = "generation " + cur.generation() + " -> " + gen;
                    }
                    case 1 -> {
                        gen = cur.generation() + 1000;
                        change = "generation " + cur.generation() + " -> " + gen;
                    }
                    case 2 -> {
                        gen = Math.max(0, cur.generation() - 1);
                        change = "generation " + cur.generation() + " -> " + gen;
                    }
                    case 3 -> {
                        next = (seg + 1 + r.nextInt(segments - 1)) % segments;
                        change = "next " + cur.next() + " -> " + next;
                    }
                    case 4 -> {
                        next = SegmentInfo.NO_NEXT;
                        change = "next " + cur.next() + " -> none";
                    }
                    default -> {
                        SegmentInfo old = SegmentInfo.decodeSlot(m, seg, 1 - newest, map.cacheId, segments);
                        if (old != null) {
                            gen = old.generation();
                            next = old.next();
                        }
                        change = "the older copy (generation " + gen + ", next " + next + ") made the newest";
                    }
                }
                SegmentInfo forged = new SegmentInfo(cur.sequence() + 1, gen, next);
                forged.encode(m, seg, SegmentInfo.slotFor(forged.sequence()), map.cacheId);
                what = "info forged with a valid CRC as copy " + forged.sequence() + ": " + change;
            }
        }
        return new Mutation(kind + " (generation " + cur.generation() + ", next " + cur.next() + "): " + what, radius,
                true, false);
    }

    private static final int OFF_SEQ = 8;
    private static final int OFF_CAP = 16;
    private static final int OFF_STREAM = 20;

    private static Mutation ksetHeader(MemorySegment m, MediaMap map, MediaMap.Kset k, SplittableRandom r) {
        long at = k.address();
        String what;
        switch (r.nextInt(4)) {
            case 0 -> {
                int b = r.nextInt(32);
                int bit = r.nextInt(8);
                flip(m, at + b, bit);
                what = "header bit " + bit + " of byte " + b + " flipped";
            }
            case 1 -> {
                m.asSlice(at, 32).fill((byte) 0);
                what = "header zeroed";
            }
            case 2 -> {
                m.asSlice(at, Kset.HEADER_SIZE).fill((byte) 0);
                what = "header and seal zeroed";
            }
            default -> {
                long seq = k.seq();
                int cap = k.at().capacity();
                int stream = m.get(JAVA_INT_UNALIGNED, at + OFF_STREAM);
                String change;
                switch (r.nextInt(6)) {
                    case 0 -> {
                        seq = k.seq() + 1;
                        change = "sequence " + k.seq() + " -> " + seq;
                    }
                    case 1 -> {
                        seq = k.seq() - 1;
                        change = "sequence " + k.seq() + " -> " + seq;
                    }
                    case 2 -> {
                        cap = Math.min(Kset.MAX_KEYS, cap + 1 + r.nextInt(4));
                        change = "capacity " + k.at().capacity() + " -> " + cap;
                    }
                    case 3 -> {
                        cap = Math.max(1, cap - 1 - r.nextInt(4));
                        change = "capacity " + k.at().capacity() + " -> " + cap;
                    }
                    case 4 -> {
                        cap = 1;
                        change = "capacity " + k.at().capacity() + " -> 1";
                    }
                    default -> {
                        stream ^= 1;
                        change = "stream -> " + stream;
                    }
                }
                m.set(JAVA_LONG_UNALIGNED, at + OFF_SEQ, seq);
                m.set(JAVA_INT_UNALIGNED, at + OFF_CAP, cap);
                m.set(JAVA_INT_UNALIGNED, at + OFF_STREAM, stream);
                m.set(JAVA_INT_UNALIGNED, at + 4, Crc.of(map.cacheId, m, at + 8, 24));
                what = "header forged with a valid CRC: " + change;
            }
        }
        return new Mutation(k + ", " + k.keys().size() + " keys: " + what, sectorsOf(k.keys()), true, false);
    }

    private static Mutation seal(MemorySegment m, MediaMap map, MediaMap.Kset k, SplittableRandom r) {
        long at = k.address();
        int count = k.at().sealedCount();
        String what;
        switch (r.nextInt(3)) {
            case 0 -> {
                int b = Kset.SEAL_OFFSET + r.nextInt(16);
                int bit = r.nextInt(8);
                flip(m, at + b, bit);
                what = "seal bit " + bit + " of byte " + b + " flipped";
            }
            case 1 -> {
                m.asSlice(at + Kset.SEAL_OFFSET, Kset.SEAL_SIZE).fill((byte) 0);
                what = "seal zeroed";
            }
            default -> {
                int n = switch (r.nextInt(3)) {
                    case 0 -> Math.max(0, count - 1 - r.nextInt(Math.max(1, count)));
                    case 1 -> Math.min(k.at().capacity(), count + 1);
                    default -> 0;
                };
                Kset.writeSeal(m, at, k.seq(), n, map.cacheId);
                what = "seal forged with a valid CRC: count " + count + " -> " + n;
            }
        }
        return new Mutation(k + ": " + what, sectorsOf(k.keys()), true, false);
    }

    private static Mutation key(MemorySegment m, MediaMap map, SplittableRandom r) {
        int segments = map.sb.segmentCount();
        List<MediaMap.Key> all = map.keys();
        List<MediaMap.Key> dirty = all.stream().filter(k -> k.kset().dirty() && k.key().dirty()).toList();
        MediaMap.Key k = dirty.isEmpty() || r.nextInt(3) == 0 ? pick(all, r) : pick(dirty, r);
        KeyRecord key = k.key();
        boolean sealed = k.kset().sealed();
        List<MediaMap.Key> touched = new ArrayList<>(List.of(k));
        String what;
        boolean mustReport = sealed;
        boolean dataOnly = false;
        switch (r.nextInt(4)) {
            case 0 -> {
                int b = r.nextInt(KeyRecord.SIZE);
                int bit = r.nextInt(8);
                flip(m, k.address() + b, bit);
                what = "bit " + bit + " of byte " + b + " flipped";
            }
            case 1 -> {
                m.asSlice(k.address(), KeyRecord.SIZE).fill((byte) 0);
                what = "slot zeroed";
            }
            default -> {
                KeyRecord f;
                String change;
                switch (r.nextInt(key.zero() ? 4 : 8)) {
                    case 0 -> {
                        f = new KeyRecord(key.offset(), key.length(), key.flags() ^ 4, key.segment(),
                                key.segmentOffset(), key.generation(), key.dataCrc());
                        change = "unknown flag bit 2 set";
                    }
                    case 1 -> {
                        long off = Math.clamp(key.offset() + SECTOR * (r.nextBoolean() ? 1L : -1L) * (1 + r.nextInt(8)),
                                0, map.sb.backingSize() - key.length());
                        f = new KeyRecord(off, key.length(), key.flags(), key.segment(), key.segmentOffset(),
                                key.generation(), key.dataCrc());
                        change = "logical offset " + key.offset() + " -> " + off + " (undetectable by design)";
                        mustReport = false;
                        touched.add(new MediaMap.Key(k.kset(), k.slot(), k.address(), f));
                    }
                    case 2 -> {
                        f = new KeyRecord(key.offset(), key.length(), key.flags() & ~KeyRecord.FLAG_DIRTY, key.segment(),
                                key.segmentOffset(), key.generation(), key.dataCrc());
                        change = "DIRTY flag cleared (undetectable by design)";
                        mustReport = false;
                    }
                    case 3 -> {
                        int len = key.length() > SECTOR && r.nextBoolean() ? key.length() - SECTOR : key.length() + SECTOR;
                        f = new KeyRecord(key.offset(), len, key.flags(), key.segment(), key.segmentOffset(),
                                key.generation(), key.dataCrc());
                        change = "length " + key.length() + " -> " + len;
                        if (key.zero()) {
                            change += " (a zero key: no data CRC covers it; undetectable by design)";
                            mustReport = false;
                        } else {
                            dataOnly = true;
                        }
                        touched.add(new MediaMap.Key(k.kset(), k.slot(), k.address(), f));
                    }
                    case 4 -> {
                        int seg = (key.segment() + 1 + r.nextInt(segments - 1)) % segments;
                        f = new KeyRecord(key.offset(), key.length(), key.flags(), seg, key.segmentOffset(),
                                map.infos.get(seg).generation(), key.dataCrc());
                        change = "segment " + key.segment() + " -> " + seg + " (with its generation)";
                        dataOnly = true;
                    }
                    case 5 -> {
                        int so = key.segmentOffset() + SECTOR * (r.nextBoolean() || key.segmentOffset() < SECTOR ? 1 : -1);
                        f = new KeyRecord(key.offset(), key.length(), key.flags(), key.segment(), so, key.generation(),
                                key.dataCrc());
                        change = "segment offset " + key.segmentOffset() + " -> " + so;
                        dataOnly = true;
                    }
                    case 6 -> {
                        f = new KeyRecord(key.offset(), key.length(), key.flags(), key.segment(), key.segmentOffset(),
                                key.generation() + 1, key.dataCrc());
                        change = "generation " + key.generation() + " -> " + (key.generation() + 1);
                    }
                    default -> {
                        long g = Math.max(0, key.generation() - 1);
                        f = new KeyRecord(key.offset(), key.length(), key.flags(), key.segment(), key.segmentOffset(), g,
                                key.dataCrc());
                        change = "generation " + key.generation() + " -> " + g
                                + (key.generation() == 0 ? " (unchanged: already 0)" : "");
                    }
                }
                f.encode(m, k.address(), map.cacheId, k.kset().seq(), k.slot());
                if (sealed) {
                    Kset.writeSeal(m, k.kset().address(), k.kset().seq(), k.kset().at().sealedCount(), map.cacheId);
                }
                what = "forged with a valid key CRC" + (sealed ? " and seal" : "") + ": " + change;
            }
        }
        if (!sealed) {
            what += " (an unsealed kset: looks like a write cut short by the power)";
        }
        return new Mutation(k + ": " + what, sectorsOf(touched), mustReport, dataOnly);
    }

    private static Mutation data(MemorySegment m, MediaMap map, SplittableRandom r) {
        List<MediaMap.Key> live = map.keys().stream().filter(k -> !k.key().zero() && k.current(map)).toList();
        if (live.isEmpty()) {
            return superblock(m, map, r);
        }
        List<MediaMap.Key> dirty = live.stream().filter(k -> k.kset().dirty() && k.key().dirty()).toList();
        List<MediaMap.Key> clean = live.stream().filter(k -> !k.kset().dirty() || !k.key().dirty()).toList();
        int kind = r.nextInt(3);
        MediaMap.Key k = kind == 0 && !dirty.isEmpty() ? pick(dirty, r) : kind == 1 && !clean.isEmpty()
                ? pick(clean, r) : pick(live, r);
        KeyRecord key = k.key();
        long from;
        int len;
        String what;
        if (r.nextBoolean()) {
            from = key.segmentOffset() + r.nextInt(key.length());
            len = 1;
            int bit = r.nextInt(8);
            flip(m, map.address(key.segment(), from), bit);
            what = "bit " + bit + " flipped at segment " + key.segment() + " +" + from;
        } else {
            from = key.segmentOffset() + (long) r.nextInt(key.length() / SECTOR) * SECTOR;
            len = SECTOR;
            m.asSlice(map.address(key.segment(), from), len).fill((byte) 0);
            what = "512 bytes zeroed at segment " + key.segment() + " +" + from;
        }
        long f = from;
        List<MediaMap.Key> holders = map.keys().stream().filter(x -> !x.key().zero()
                && x.key().segment() == key.segment() && x.key().segmentOffset() < f + len
                && x.key().segmentOffset() + x.key().length() > f).toList();
        boolean sealed = k.kset().sealed();
        if (!sealed) {
            what += " (an unsealed kset: looks like a write cut short by the power)";
        }
        return new Mutation("data of " + k + ": " + what, sectorsOf(holders), sealed, true);
    }
}
