package io.pmcache.cache;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.format.CacheInfo;
import io.pmcache.format.Crc;
import io.pmcache.format.KeyRecord;
import io.pmcache.format.Kset;
import io.pmcache.format.Layout;
import io.pmcache.format.LogPosition;
import io.pmcache.format.SegmentInfo;
import io.pmcache.format.Superblock;
import io.pmcache.media.PowerCutMedium;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * A corrupt-media campaign: many seeded rounds, each of which damages one record of a cache image
 * that holds known flushed writes, then requires that the damage is survived and that no flushed
 * write is lost or changed without a word.
 *
 * <h2>Algorithm</h2>
 * <ol>
 *   <li><b>Bases</b> ({@link Variant}), built once, deterministically ({@link SteppedCache}, fixed
 *       cache id): a cache of 16 × 1 MiB segments in front of an 8 MiB disk, with a known
 *       workload of writes (one sector to 1.5 MiB), FUA writes, write-zeroes, trims and flushes,
 *       then: a clean stop; a process crash that leaves unsealed ksets (the last writes not
 *       flushed, some FUA); ~40,000 keys with writeback and gc (both tails moved, the log left
 *       its first segment, log and data segments reclaimed and reused), the last ~14,000 written
 *       back but not gc'd (the live log crosses a segment link), then dirty writes and a clean
 *       stop; thousands of one-sector writes and zeroes, the first half written back (clean and
 *       dirty keys share a data segment); a few writes, each followed by thousands of zeroes and
 *       trims (consecutive keys of a data segment lie writeback batches apart). Each
 *       with and without the data-CRC option. A {@link MediaMap} says where every record is and
 *       which writes each key carries; a {@link DiskModel} what every sector must read.</li>
 *   <li><b>Round</b>: a copy of a base, one {@link Mutation} aimed at one record of the round's
 *       {@link Region}: bit flips, zeroed spans, and forged records whose CRCs are valid
 *       (re-encoded through the format classes, the seal re-computed over a forged key, a forged
 *       cache or segment info written as the next copy, as a real update would be): wrong
 *       sequence, capacity, count, offset, length, segment, generation, link, tail.</li>
 *   <li><b>Checks</b>, in order, each bounded in time (a hang fails the round): {@link Checker#check}
 *       of the damaged image, plain and with data verification ({@code pmcache check} and
 *       {@code pmcache check --verify-data}); {@link Cache#open}; read the whole device; run gc
 *       (it passes what was written back before the stop), then writeback to the end, gc passing
 *       every kset as soon as it is written back (the order in which a too-early reclaim loses
 *       data); {@code flushAll}; read the whole device
 *       again; write, flush and read back new data; close.</li>
 *   <li><b>Verdict</b>. A sector is <em>lost</em> when its newest write was flushed (or FUA) and
 *       it reads something else, or when it reads a value no rule allows (neither its flushed
 *       value nor a later unflushed write). Each mutation has a <em>blast radius</em>: the
 *       sectors of the keys the damaged record carries (a kset: its keys; a key: its range; a
 *       data block: the keys whose data it holds; a segment info: the keys in that segment, or
 *       everything when the segment holds the log; superblock and cache info: everything). The
 *       round fails on
 *       <ul>
 *         <li>an exception other than an {@link IOException} from check, open, read, writeback,
 *             gc, drain or close ({@code ESCAPED}); no end within the bound ({@code HANG});</li>
 *         <li>a lost sector while the check is clean ({@code SILENT}) — the damage must be
 *             reported, {@code pmcache check} must exit 3; a mutation whose damage shows only
 *             through data CRCs counts as reported when {@code --verify-data} finds it;</li>
 *         <li>a lost sector outside the blast radius ({@code COLLATERAL}), reported or not: what
 *             the damage did not touch must be recovered;</li>
 *         <li>while the check is clean: an open refused ({@code REFUSED-BUT-CLEAN}); writeback
 *             that cannot get past the damage ({@code STUCK}); a drain that leaves the backing
 *             disk different from what reads return (the next reads after gc would change;
 *             {@code DRAIN}); and in any case new writes that do not read back ({@code BROKEN}).</li>
 *       </ul>
 *       Some forgeries are undetectable by design — a consistent image could say the same: a
 *       key with another logical offset or without its DIRTY flag, a zero key of another length
 *       (no CRC covers the intent), a dirty tail moved to a later kset boundary; damage to a key
 *       or the data of an unsealed kset looks exactly like a write cut short by the power. For
 *       those only the radius, the exceptions and the bound apply ({@link Mutation#mustReport}
 *       false); they are counted apart.</li>
 * </ol>
 * Every failure names the round, its seed, the base, the mutation (record, place, old and new
 * values) and the first lost sector (which write it held, which kset and slot carried it, what it
 * reads instead). The test of a region fails at its end with all of them; a summary per region
 * goes to stderr. CI runs {@code -Dpmcache.campaign.rounds} (default {@value #CI_ROUNDS}) rounds per
 * region; {@code -Dpmcache.campaign.round=N -Dpmcache.seed=S} repeats one round.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 6, unit = TimeUnit.HOURS) // each round has its own bound, which names the round
class CorruptMediaCampaignTest {
    private static final long MIB = 1L << 20;
    private static final int SECTOR = DiskModel.SECTOR;
    private static final int SEGMENTS = 16;
    private static final int DEVICE = (int) (8 * MIB);
    private static final int SECTORS = DEVICE / SECTOR;
    private static final long FINGERPRINT = 7;
    static final int CI_ROUNDS = 30;
    private static final long ROUND_SECONDS = 120;

    @Test
    void superblock(Seed seed) throws Exception {
        campaign(seed, Region.SUPERBLOCK);
    }

    @Test
    void cacheInfo(Seed seed) throws Exception {
        campaign(seed, Region.CACHE_INFO);
    }

    @Test
    void segmentInfos(Seed seed) throws Exception {
        campaign(seed, Region.SEGMENT_INFO);
    }

    @Test
    void ksetHeaders(Seed seed) throws Exception {
        campaign(seed, Region.KSET_HEADER);
    }

    @Test
    void seals(Seed seed) throws Exception {
        campaign(seed, Region.SEAL);
    }

    @Test
    void keys(Seed seed) throws Exception {
        campaign(seed, Region.KEY);
    }

    @Test
    void dataBlocks(Seed seed) throws Exception {
        campaign(seed, Region.DATA);
    }

    // ------------------------------------------------------------------ bases

    /** How the base image was left. */
    enum Variant {
        /** Writes and flushes, clean stop: tails at the start, every kset sealed. */
        CLEAN,
        /** Writes and flushes, more writes (some FUA) not flushed, process crash: unsealed ksets. */
        UNSEALED,
        /** Both tails moved, the log left segment 0; a live log across a segment link, mostly written back; clean stop. */
        TAILS,
        /** Thousands of one-sector writes and zeroes, the first half written back: many ksets and keys per segment. */
        MANY_KEYS,
        /**
         * Writes, written back; then a few writes, each followed by thousands of one-sector zeroes
         * and trims: consecutive keys of one data segment lie batches apart in the log.
         */
        SPARSE
    }

    /** A base image: the medium, the backing disk, what every sector must read, and the map. */
    record Base(Variant variant, boolean dataCrc, byte[] image, byte[] disk, DiskModel model, MediaMap map) {
        String name() {
            return variant + (dataCrc ? " with data CRC" : "");
        }
    }

    private static final Map<String, Base> BASES = new ConcurrentHashMap<>();

    private static Base base(Variant v, boolean dataCrc) {
        return BASES.computeIfAbsent(v + "/" + dataCrc, k -> {
            try {
                return build(v, dataCrc);
            } catch (IOException ex) {
                throw new java.io.UncheckedIOException(ex);
            }
        });
    }

    private static Base build(Variant v, boolean dataCrc) throws IOException {
        long t0 = System.nanoTime();
        try {
            return buildBase(v, dataCrc);
        } finally {
            System.err.printf("corrupt-media campaign: base %s%s built in %d ms%n", v, dataCrc ? " with data CRC" : "",
                    (System.nanoTime() - t0) / 1_000_000);
        }
    }

    private static Base buildBase(Variant v, boolean dataCrc) throws IOException {
        SplittableRandom r = new SplittableRandom(1000 + v.ordinal() * 2L + (dataCrc ? 1 : 0));
        MemoryBackingDevice disk = new MemoryBackingDevice(DEVICE, FINGERPRINT);
        DiskModel model = new DiskModel(DEVICE);
        try (PowerCutMedium medium = PowerCutMedium.of(DeterministicFormat.image(SEGMENTS, disk, dataCrc))) {
            SteppedCache c = SteppedCache.open(medium, disk);
            String where = "building " + v;
            switch (v) {
                case CLEAN -> mixed(c, model, r, 110, 256 * 1024, false, where);
                case UNSEALED -> {
                    mixed(c, model, r, 90, 256 * 1024, false, where);
                    c.cache.flush();
                    model.flush();
                    for (int i = 0; i < 25; i++) {
                        dataOp(c, model, r, 128 * 1024, r.nextInt(3) == 0, where);
                    }
                }
                case TAILS -> {
                    // ~25,000 keys: the log leaves segment 0, gc frees log segments, data churns.
                    for (int i = 0; i < 25_000; i++) {
                        if (c.freeSegments() < 7) {
                            c.cache.flush();
                            model.flush();
                            c.writebackSteps(-1, where);
                            c.gcSteps(-1, where);
                        }
                        if (i % 60 == 0) {
                            dataOp(c, model, r, (int) (1.5 * MIB), r.nextInt(8) == 0, where);
                        } else {
                            tinyOp(c, model, r);
                        }
                        if (i % 100 == 99) {
                            c.cache.flush();
                            model.flush();
                        }
                        if (i % 1000 == 500) {
                            c.writebackSteps(1 + r.nextInt(3), where);
                            c.gcSteps(r.nextInt(40), where);
                        }
                    }
                    c.cache.flush();
                    model.flush();
                    c.writebackSteps(-1, where);
                    c.gcSteps(-1, where);
                    for (int i = 0; i < 14_000; i++) { // ~1 MiB of ksets: the live log crosses a segment link
                        tinyOp(c, model, r);
                        if (i % 100 == 99) {
                            c.cache.flush();
                            model.flush();
                        }
                    }
                    c.writebackSteps(-1, where); // everything written back, not gc'd
                    // Then dirty keys, many in the data segment the clean keys before them fill.
                    mixed(c, model, r, 40, 64 * 1024, false, where);
                    c.cache.flush();
                    model.flush();
                    mixed(c, model, r, 20, 64 * 1024, false, where);
                }
                case MANY_KEYS -> {
                    for (int i = 0; i < 3000; i++) {
                        if (i == 1500) { // the first half written back, not gc'd: clean and dirty keys share a segment
                            c.writebackSteps(-1, where);
                        }
                        tinyOp(c, model, r);
                        if (i % 200 == 199) {
                            c.cache.flush();
                            model.flush();
                        }
                    }
                }
                case SPARSE -> {
                    mixed(c, model, r, 60, 64 * 1024, false, where);
                    c.cache.flush();
                    model.flush();
                    c.writebackSteps(-1, where);
                    for (int w = 0; w < 3; w++) {
                        dataOp(c, model, r, 16 * 1024, false, where);
                        for (int i = 0; i < 2500; i++) {
                            long off = (long) r.nextInt(DEVICE / SECTOR) * SECTOR;
                            if (r.nextBoolean()) {
                                c.cache.writeZeroes(off, SECTOR, false);
                            } else {
                                c.cache.trim(off, SECTOR);
                            }
                            model.write(off, SECTOR, true, false);
                            if (i % 500 == 499) {
                                c.cache.flush();
                                model.flush();
                            }
                        }
                    }
                }
            }
            PowerCutMedium image;
            if (v == Variant.UNSEALED) {
                c.crash();
                image = medium.crash(); // kill -9: the mapped pages survive as they are
            } else {
                c.close();
                model.flush(); // a clean close seals (and persists) every kset
                image = medium.copy();
            }
            try (image) {
                MediaMap map = new MediaMap(image);
                if (v == Variant.UNSEALED && map.ksets.stream().allMatch(MediaMap.Kset::sealed)) {
                    throw new IllegalStateException("the UNSEALED base has no unsealed kset");
                }
                return new Base(v, dataCrc, image.segment().toArray(JAVA_BYTE), disk.toByteArray(), model, map);
            }
        }
    }

    /** {@code n} operations: writes (some FUA), zeroes, trims, flushes, and with {@code wbgc} writeback and gc steps. */
    private static void mixed(SteppedCache c, DiskModel model, SplittableRandom r, int n, int maxLen, boolean wbgc,
                              String where) throws IOException {
        for (int i = 0; i < n; i++) {
            double p = r.nextDouble();
            if (p < 0.15) {
                c.cache.flush();
                model.flush();
            } else if (wbgc && p < 0.22) {
                c.writebackSteps(1 + r.nextInt(3), where);
            } else if (wbgc && p < 0.27) {
                c.gcSteps(1 + r.nextInt(4), where);
            } else {
                if (c.freeSegments() < 7) {
                    if (!wbgc) {
                        return; // the base is full enough
                    }
                    c.cache.flush();
                    model.flush();
                    c.writebackSteps(-1, where);
                    c.gcSteps(-1, where);
                }
                dataOp(c, model, r, maxLen, r.nextInt(8) == 0, where);
            }
        }
    }

    private static void dataOp(SteppedCache c, DiskModel model, SplittableRandom r, int maxLen, boolean fua,
                               String where) throws IOException {
        int len = SECTOR * (r.nextInt(3) == 0 ? 1 + r.nextInt(8) : 1 + r.nextInt(maxLen / SECTOR));
        long off = r.nextInt(3) == 0 ? 4 * MIB - len / 2 - SECTOR * r.nextInt(64) : r.nextLong(DEVICE - len + 1);
        off = Math.clamp(off - off % SECTOR, 0, DEVICE - len);
        double p = r.nextDouble();
        if (p < 0.85) {
            write(c, model, off, len, fua);
        } else if (p < 0.93) {
            c.cache.writeZeroes(off, len, fua);
            model.write(off, len, true, fua);
        } else {
            c.cache.trim(off, len);
            model.write(off, len, true, false);
        }
    }

    /** One sector written (now and then FUA) or zeroed, in the first 2 MiB. */
    private static void tinyOp(SteppedCache c, DiskModel model, SplittableRandom r) throws IOException {
        long off = (long) r.nextInt(4096) * SECTOR;
        if (r.nextBoolean()) {
            write(c, model, off, SECTOR, r.nextInt(50) == 0);
        } else {
            c.cache.writeZeroes(off, SECTOR, false);
            model.write(off, SECTOR, true, false);
        }
    }

    private static void write(SteppedCache c, DiskModel model, long off, int len, boolean fua) throws IOException {
        c.cache.write(off, MemorySegment.ofArray(model.write(off, len, false, fua)), fua);
    }

    // ------------------------------------------------------------------ mutations

    /** Which record a round damages. */
    enum Region { SUPERBLOCK, CACHE_INFO, SEGMENT_INFO, KSET_HEADER, SEAL, KEY, DATA }

    /**
     * One damage done to the image.
     *
     * @param what       the record, the place and the change, for the failure message
     * @param radius     sectors whose loss the damage explains (all set: anything)
     * @param mustReport a loss must be reported (false: undetectable by design)
     * @param dataOnly   the damage shows only through data CRCs: reported means {@code --verify-data} finds it
     */
    record Mutation(String what, BitSet radius, boolean mustReport, boolean dataOnly) {
        boolean everything() {
            return radius.cardinality() == SECTORS;
        }
    }

    private static BitSet everything() {
        BitSet all = new BitSet(SECTORS);
        all.set(0, SECTORS);
        return all;
    }

    private static BitSet sectorsOf(List<MediaMap.Key> keys) {
        BitSet b = new BitSet(SECTORS);
        for (MediaMap.Key k : keys) {
            b.set((int) (k.key().offset() / SECTOR), (int) ((k.key().end() + SECTOR - 1) / SECTOR));
        }
        return b;
    }

    private static void flip(MemorySegment m, long at, int bit) {
        m.set(JAVA_BYTE, at, (byte) (m.get(JAVA_BYTE, at) ^ (1 << bit)));
    }

    /** Damages one record of {@code region} in {@code m} (a copy of the base's image). */
    private static Mutation mutate(Region region, MemorySegment m, Base base, SplittableRandom r) {
        MediaMap map = base.map();
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
                return new Mutation("superblock: bit " + bit + " of byte " + at + " flipped", everything(), true, false);
            }
            case 1 -> {
                int at = r.nextInt(Superblock.SIZE);
                int len = 1 + r.nextInt(Superblock.SIZE - at);
                m.asSlice(at, len).fill((byte) 0);
                return new Mutation("superblock: bytes [" + at + ", +" + len + ") zeroed", everything(), true, false);
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
                return new Mutation("superblock forged with a valid CRC: " + field, everything(), true, false);
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
                        + "): bit " + bit + " of byte " + at + " flipped", everything(), true, false);
            }
            case 2 -> {
                m.asSlice(newest, CacheInfo.SIZE).fill((byte) 0);
                return new Mutation("cache info newest slot (at " + newest + ") zeroed", everything(), true, false);
            }
            case 3 -> {
                m.asSlice(Layout.CACHE_INFO_SLOT0, CacheInfo.SIZE).fill((byte) 0);
                m.asSlice(Layout.CACHE_INFO_SLOT1, CacheInfo.SIZE).fill((byte) 0);
                return new Mutation("cache info: both slots zeroed", everything(), true, false);
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
                        int seg = (dt.segment() + 1 + r.nextInt(SEGMENTS - 1)) % SEGMENTS;
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
                        int seg = (kt.segment() + 1 + r.nextInt(SEGMENTS - 1)) % SEGMENTS;
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
        return new Mutation(what, everything(), true, false);
    }

    private static Mutation segmentInfo(MemorySegment m, MediaMap map, SplittableRandom r) {
        int seg;
        List<Integer> log = map.logSegments.stream().boxed().toList();
        List<Integer> data = map.keys().stream().filter(k -> !k.key().zero() && k.current(map))
                .map(k -> k.key().segment()).distinct().toList();
        switch (r.nextInt(3)) {
            case 0 -> seg = pick(log, r);
            case 1 -> seg = data.isEmpty() ? r.nextInt(SEGMENTS) : pick(data, r);
            default -> seg = r.nextInt(SEGMENTS);
        }
        BitSet radius;
        String kind;
        if (map.logSegments.get(seg)) {
            radius = everything(); // the log's chain runs through it
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
                        next = (seg + 1 + r.nextInt(SEGMENTS - 1)) % SEGMENTS;
                        change = "next " + cur.next() + " -> " + next;
                    }
                    case 4 -> {
                        next = SegmentInfo.NO_NEXT;
                        change = "next " + cur.next() + " -> none";
                    }
                    default -> {
                        SegmentInfo old = SegmentInfo.decodeSlot(m, seg, 1 - newest, map.cacheId, SEGMENTS);
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
                                0, DEVICE - key.length());
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
                        int seg = (key.segment() + 1 + r.nextInt(SEGMENTS - 1)) % SEGMENTS;
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

    // ------------------------------------------------------------------ the campaign

    private static final Variant[] VARIANTS = Variant.values();

    /** What a round found; {@code failure} is null when it passed. */
    private record Outcome(String failure, String category, boolean refused, boolean reported, boolean lost,
                           boolean undetectableLoss) {
    }

    private void campaign(Seed seed, Region region) throws Exception {
        long t0 = System.nanoTime();
        int rounds = Integer.getInteger("pmcache.campaign.rounds", CI_ROUNDS);
        Integer only = Integer.getInteger("pmcache.campaign.round");
        SplittableRandom master = seed.random();
        List<String> failures = new ArrayList<>();
        Map<String, Integer> tally = new java.util.TreeMap<>();
        int hangs = 0;
        ExecutorService runner = newRunner();
        try {
            for (int round = 0; round < rounds && hangs < 3; round++) {
                long roundSeed = master.nextLong();
                if (only != null && only != round) {
                    continue;
                }
                SplittableRandom r = new SplittableRandom(roundSeed);
                Base base = base(VARIANTS[r.nextInt(VARIANTS.length)], r.nextBoolean());
                String where = region + " round " + round + " (" + seed + ", round seed " + roundSeed + ", base "
                        + base.name() + ")";
                Future<Outcome> f = runner.submit(() -> round(region, base, r, where));
                Outcome o;
                try {
                    o = f.get(ROUND_SECONDS, TimeUnit.SECONDS);
                } catch (TimeoutException ex) {
                    hangs++;
                    failures.add("HANG " + where + ": no end within " + ROUND_SECONDS + " s");
                    tally.merge("HANG", 1, Integer::sum);
                    runner.shutdownNow();
                    runner = newRunner(); // the stuck thread is a daemon and is left behind
                    continue;
                } catch (ExecutionException ex) {
                    throw new AssertionError(where + ": the round itself failed", ex.getCause());
                }
                tally.merge(o.refused() ? "refused at open" : "opened", 1, Integer::sum);
                if (o.reported()) {
                    tally.merge("reported by check", 1, Integer::sum);
                }
                if (o.lost()) {
                    tally.merge("lost flushed data", 1, Integer::sum);
                }
                if (o.undetectableLoss()) {
                    tally.merge("lost data, undetectable by design", 1, Integer::sum);
                }
                if (o.failure() != null) {
                    tally.merge("FAILED " + o.category(), 1, Integer::sum);
                    failures.add(o.failure());
                    System.err.println("corrupt-media campaign: " + o.failure());
                }
            }
        } finally {
            runner.shutdownNow();
        }
        System.err.println("corrupt-media campaign, " + region + " (" + seed + "), " + rounds + " rounds in "
                + (System.nanoTime() - t0) / 1_000_000 + " ms: " + tally);
        if (!failures.isEmpty()) {
            StringBuilder sb = new StringBuilder(region + ": " + failures.size() + " of " + rounds
                    + " rounds failed " + tally + "; repeat one with -Dpmcache.seed=" + seed.value()
                    + " -Dpmcache.campaign.round=<round>:");
            failures.stream().limit(20).forEach(f -> sb.append("\n  ").append(f));
            if (failures.size() > 20) {
                sb.append("\n  ... ").append(failures.size() - 20).append(" more");
            }
            throw new AssertionError(sb.toString());
        }
    }

    private static ExecutorService newRunner() {
        return Executors.newSingleThreadExecutor(Thread.ofPlatform().daemon().name("campaign-round").factory());
    }

    /** One round: damage a copy of {@code base}, then check, open, read, write back, gc, drain, read, write. */
    private static Outcome round(Region region, Base base, SplittableRandom r, String where) throws IOException {
        try (PowerCutMedium medium = PowerCutMedium.of(base.image());
             MemoryBackingDevice disk = new MemoryBackingDevice(DEVICE, FINGERPRINT)) {
            disk.write(0, MemorySegment.ofArray(base.disk()), false);
            Mutation mu = mutate(region, medium.segment(), base, r);
            String head = where + ": " + mu.what();

            Checker.Report plain;
            Checker.Report verify;
            try {
                plain = Checker.check(medium, disk, false, null);
                verify = Checker.check(medium, disk, true, null);
            } catch (RuntimeException ex) {
                return escaped(head, "Checker.check", ex);
            }
            boolean reported = mu.dataOnly() && !base.dataCrc() ? !verify.clean() : !plain.clean();
            String checkSays = reported ? "check reports " + firstError(mu.dataOnly() && !base.dataCrc() ? verify : plain)
                    : "check says clean" + (mu.dataOnly() && !base.dataCrc() ? " (also with --verify-data)" : "");

            SteppedCache c;
            try {
                c = SteppedCache.open(medium, disk);
            } catch (IOException ex) {
                if (!reported) {
                    return fail("REFUSED-BUT-CLEAN", head + ": open refuses (" + ex.getMessage()
                            + ") but " + checkSays, true, false, false, false);
                }
                return new Outcome(null, null, true, true, false, false);
            } catch (RuntimeException ex) {
                return escaped(head, "Cache.open", ex);
            }
            Loss first;
            Loss second;
            byte[] after;
            String stage = "read after open";
            try {
                byte[] seen = readAll(c.cache);
                first = loss(base, mu, seen);
                stage = "writeback and gc";
                // gc first (as the gc worker does at once when space is short): it passes what was
                // written back before the stop; then it passes each kset as soon as it is written back.
                c.gcSteps(-1, where);
                c.cache.flush(); // seals the ksets of the reads' fills: writeback passes only sealed ones
                for (int i = 0; i < 100_000; i++) {
                    Writeback.Step s = c.writeback.step();
                    c.gcSteps(-1, where);
                    if (s != Writeback.Step.PROGRESS) {
                        break;
                    }
                }
                boolean stuck = !c.writeback.caughtUp();
                if (stuck && !reported && mu.mustReport()) {
                    c.crash();
                    return fail("STUCK", head + ": writeback cannot get past the damage (dirty tail "
                            + c.engine().info.current().dirtyTail() + ", key head " + c.engine().keyLog.head()
                            + ") and " + checkSays, false, false, false, false);
                }
                if (!stuck) { // a drain of a stuck log retries for half a minute, then fails: a report
                    stage = "flushAll";
                    c.cache.flushAll(left -> { });
                }
                stage = "read after writeback, gc and flushAll";
                after = readAll(c.cache);
                second = loss(base, mu, after);
                if (!stuck && !reported && mu.mustReport() && !Arrays.equals(after, disk.toByteArray())) {
                    int at = Arrays.mismatch(after, disk.toByteArray());
                    c.crash();
                    return fail("DRAIN", head + ": after flushAll the backing disk differs from what reads return, "
                            + "first at byte " + at + "; " + checkSays, false, false, true, false);
                }
                stage = "new writes";
                String broken = newWritesReadBack(c.cache, r);
                if (broken != null) {
                    c.crash();
                    return fail("BROKEN", head + ": " + broken + "; " + checkSays, false, reported, true, false);
                }
                stage = "close";
                c.close();
            } catch (IOException ex) {
                // An I/O error is a report to the client, not silence: the round ends here.
                c.crash();
                return new Outcome(null, null, false, true, false, false);
            } catch (RuntimeException | AssertionError ex) {
                c.crash();
                return escaped(head + " (" + checkSays + ")", stage, ex);
            }
            Loss worst = second.total() > first.total() ? second : first;
            String phase = worst == second && second.total() > first.total()
                    ? "after writeback, gc and flushAll (" + first.total() + " right after the open)" : "right after the open";
            boolean lost = worst.total() > 0;
            if (lost && !mu.everything() && worst.outside() > 0) {
                return fail("COLLATERAL", head + ": " + worst.outside() + " sectors OUTSIDE the damaged record's keys lost "
                        + phase + " (" + worst.inside() + " inside); first: " + worst.firstOutside() + "; "
                        + checkSays, false, reported, true, false);
            }
            if (lost && mu.mustReport() && !reported) {
                return fail("SILENT", head + ": " + worst.total() + " sectors lost " + phase + " and " + checkSays
                        + "; first: " + (worst.firstInside() != null ? worst.firstInside() : worst.firstOutside()),
                        false, false, true, false);
            }
            return new Outcome(null, null, false, reported, lost && mu.mustReport(), lost && !mu.mustReport());
        }
    }

    private static Outcome fail(String category, String message, boolean refused, boolean reported, boolean lost,
                                boolean undetectable) {
        return new Outcome(category + " " + message, category, refused, reported, lost, undetectable);
    }

    private static Outcome escaped(String head, String where, Throwable ex) {
        StringBuilder sb = new StringBuilder(head + ": " + where + " threw " + ex);
        for (StackTraceElement e : ex.getStackTrace()) {
            if (e.getClassName().startsWith("io.pmcache")) {
                sb.append(" at ").append(e);
                break;
            }
        }
        return fail("ESCAPED", sb.toString(), false, false, false, false);
    }

    private static String firstError(Checker.Report r) {
        return r.findings().stream().filter(f -> f.severity() == Checker.Severity.ERROR).findFirst()
                .map(Checker.Finding::message).orElse("?");
    }

    private static byte[] readAll(Cache c) throws IOException {
        byte[] b = new byte[DEVICE];
        for (int off = 0; off < DEVICE; off += (int) MIB) {
            c.read(off, MemorySegment.ofArray(b).asSlice(off, MIB));
        }
        return b;
    }

    /** Lost sectors, inside and outside the mutation's radius, with the first of each described. */
    private record Loss(int inside, int outside, String firstInside, String firstOutside) {
        int total() {
            return inside + outside;
        }
    }

    /**
     * A sector is lost when its newest write was flushed (or FUA) and it reads something else, or
     * when it reads what no power cut could leave (neither its flushed value nor a later unflushed write).
     */
    private static Loss loss(Base base, Mutation mu, byte[] got) {
        DiskModel model = base.model();
        int inside = 0;
        int outside = 0;
        String firstIn = null;
        String firstOut = null;
        for (int s = 0; s < SECTORS; s++) {
            int at = s * SECTOR;
            if (Arrays.equals(got, at, at + SECTOR, model.current, at, at + SECTOR)) {
                continue;
            }
            boolean flushedNewest = Arrays.equals(model.stable, at, at + SECTOR, model.current, at, at + SECTOR);
            if (!flushedNewest && model.checkAfterCut(s, got, at) == null) {
                continue; // an unflushed write may be lost, the sector holds an allowed older value
            }
            if (mu.radius().get(s)) {
                if (inside++ == 0) {
                    firstIn = describe(base, s, got, flushedNewest);
                }
            } else if (outside++ == 0) {
                firstOut = describe(base, s, got, flushedNewest);
            }
        }
        return new Loss(inside, outside, firstIn, firstOut);
    }

    private static String describe(Base base, int s, byte[] got, boolean flushed) {
        MediaMap.Key k = base.map().newestKeyFor(s);
        DiskModel model = base.model();
        long at = (long) s * SECTOR;
        int expected = 0;
        for (DiskModel.Write w : model.history) {
            if (w.offset() <= at && w.end() >= at + SECTOR) {
                expected = w.id();
            }
        }
        String reads = model.describe(s, got, s * SECTOR);
        return "sector " + s + " (byte " + at + ") should hold write #" + expected + (flushed ? " (flushed)" : "")
                + " from " + (k != null ? k : "the backing disk (no key in the log)") + " but "
                + reads.substring(0, reads.indexOf(';')).replace("matches", "reads");
    }

    /** After the damage the cache must still work: new writes read back. Null, or what is wrong. */
    private static String newWritesReadBack(Cache c, SplittableRandom r) throws IOException {
        for (int i = 0; i < 4; i++) {
            int len = SECTOR * (1 + r.nextInt(256));
            long off = r.nextLong((DEVICE - len) / SECTOR + 1) * SECTOR;
            byte[] data = new byte[len];
            r.nextBytes(data);
            c.write(off, MemorySegment.ofArray(data), r.nextBoolean());
            c.flush();
            byte[] got = new byte[len];
            c.read(off, MemorySegment.ofArray(got));
            int bad = Arrays.mismatch(got, data);
            if (bad >= 0) {
                return "a new write [" + off + ", +" + len + ") reads back wrong at byte " + (off + bad);
            }
        }
        return null;
    }
}
