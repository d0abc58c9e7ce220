package io.pmcache.cache;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.format.CacheInfo;
import io.pmcache.format.MediaCorruptException;
import io.pmcache.format.SegmentInfo;
import io.pmcache.format.Superblock;
import io.pmcache.index.ExtentMap;
import io.pmcache.index.RangeIndex;
import io.pmcache.media.PowerCutMedium;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.SplittableRandom;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/**
 * Replay with its index changes batched ({@link ReplayBatch}) ends exactly where replay applying
 * each change in log order ends (batch capacity 1), on random damaged key logs: overlapping writes,
 * write-zeroes and trims over three 4 MiB ranges, some written back (clean keys), a clean stop, a
 * process crash or a power cut (unsealed ksets, keys cut short), then bit flips in random key slots
 * and data blocks, sometimes opened once in between (so that earlier damage is tombstoned and the
 * new damage comes on top). Compared: every range's extents, every segment's references and
 * generation, the counters, the result (head, tails, log segments) and the medium's bytes after
 * replay (its repairs). jqwik prints the seed of a failing image.
 */
class ReplayEquivalenceTest {
    private static final long MIB = 1L << 20;
    private static final long DEVICE = 12 * MIB;
    private static final int SECTOR = 512;

    @Property(tries = 40)
    void batchedReplayIsSequentialReplay(@ForAll long seed, @ForAll @IntRange(min = 0, max = 6) int flips)
            throws IOException {
        SplittableRandom r = new SplittableRandom(seed);
        PowerCutMedium image = damagedImage(r, flips);
        Replayed sequential = replay(image.copy(), 1, false);
        net.jqwik.api.statistics.Statistics.label("damage reported").collect(
                sequential.counters.get(1) + sequential.counters.get(2) + sequential.counters.get(3) > 0);
        net.jqwik.api.statistics.Statistics.label("keys replayed").collect(
                sequential.counters.get(5) == 0 ? "0" : sequential.counters.get(5) < 50 ? "1-49" : "50+");
        int[] capacities = {ReplayBatch.DEFAULT_CAPACITY, 2, 1 + r.nextInt(40), 1 + r.nextInt(40)};
        for (int i = 0; i < capacities.length; i++) {
            int capacity = capacities[i];
            Replayed batched = replay(image.copy(), capacity, i != 2);   // with and without the background thread
            assertThat(batched.extents).as("index, capacity %d", capacity).isEqualTo(sequential.extents);
            assertThat(batched.segments).as("refs and generations, capacity %d", capacity)
                    .isEqualTo(sequential.segments);
            assertThat(batched.counters).as("counters, capacity %d", capacity).isEqualTo(sequential.counters);
            assertThat(batched.result).as("result, capacity %d", capacity).isEqualTo(sequential.result);
            assertThat(batched.medium).as("medium after replay, capacity %d", capacity)
                    .isEqualTo(sequential.medium);
        }
    }

    /** What a replay left: comparable with equals. */
    record Replayed(List<String> extents, List<String> segments, List<Long> counters, Replay.Result result,
                    String medium) {
    }

    private static PowerCutMedium damagedImage(SplittableRandom r, int flips) throws IOException {
        try (Rig rig = Rig.format(24, new MemoryBackingDevice(DEVICE, 7), r.nextBoolean())) {
            Cache c = rig.open(new CacheOptions(1 + r.nextInt(3), 90, false, false));
            int ops = 40 + r.nextInt(160);
            for (int i = 0; i < ops; i++) {
                long off = (long) r.nextInt((int) (DEVICE / SECTOR - 64)) * SECTOR;
                if (r.nextInt(3) == 0) {                    // hot spots: many overlaps
                    off = (long) r.nextInt(3) * 4 * MIB + (long) r.nextInt(64) * SECTOR;
                }
                int len = (1 + r.nextInt(r.nextBoolean() ? 8 : 64)) * SECTOR;
                switch (r.nextInt(10)) {
                    case 0 -> c.writeZeroes(off, len, r.nextBoolean());
                    case 1 -> c.trim(off, len);
                    case 2 -> c.flush();
                    default -> c.write(off, MemorySegment.ofArray(bytes(r, len)), r.nextInt(8) == 0);
                }
                if (r.nextInt(60) == 0) {
                    c.flushAll(left -> { });                 // written back: the keys so far are clean
                }
            }
            PowerCutMedium image;
            switch (r.nextInt(3)) {
                case 0 -> {
                    rig.closeCache();
                    image = rig.medium.copy();
                }
                case 1 -> image = rig.medium.crash();
                default -> image = rig.medium.cut(r.nextLong());
            }
            rig.closeCache();                               // changes the rig's medium, not the image
            damage(image, r, flips);
            if (flips > 0 && r.nextBoolean()) {             // an open tombstones that damage; more comes on top
                try (Cache again = Cache.open(image, rig.backing, new CacheOptions(1, 90, false, false))) {
                    again.flush();
                } catch (IOException refused) {
                    // a damaged image may be refused: replay it as it is
                }
                damage(image, r, 1 + r.nextInt(3));
            }
            return image;
        }
    }

    private static byte[] bytes(SplittableRandom r, int len) {
        byte[] b = new byte[len];
        r.nextBytes(b);
        return b;
    }

    /** Flips one bit in each of {@code flips} random key slots or data blocks of the log. */
    private static void damage(PowerCutMedium image, SplittableRandom r, int flips) throws IOException {
        List<MediaMap.Key> keys;
        MediaMap map;
        try {
            map = new MediaMap(image);
            keys = map.keys();
        } catch (RuntimeException | MediaCorruptException e) {
            return;                                         // damaged beyond mapping already
        }
        if (keys.isEmpty()) {
            return;
        }
        MemorySegment m = image.segment();
        for (int i = 0; i < flips; i++) {
            MediaMap.Key k = keys.get(r.nextInt(keys.size()));
            long at;
            if (r.nextBoolean() || k.key().zero()) {
                at = k.address() + r.nextInt(64);
            } else {
                at = map.address(k.key().segment(), k.key().segmentOffset()) + r.nextInt(k.key().length());
            }
            m.set(JAVA_BYTE, at, (byte) (m.get(JAVA_BYTE, at) ^ (1 << r.nextInt(8))));
        }
    }

    /** Replays {@code medium} as {@link Cache#open} does, with the given batch capacity. */
    private static Replayed replay(PowerCutMedium medium, int capacity, boolean background) throws IOException {
        try (medium) {
            Superblock sb = Cache.superblock(medium);
            int count = sb.segmentCount();
            CacheInfo info = CacheInfo.read(medium.segment(), sb.cacheId(), sb, medium.describe());
            CacheStats stats = new CacheStats();
            SegmentTable segments = new SegmentTable(medium, sb.cacheId(), count, sb.segmentSize(),
                    sb.segmentAreaOffset());
            BitSet unknown = new BitSet(count);
            BitSet oneSlotDamaged = new BitSet(count);
            for (int s = 0; s < count; s++) {
                SegmentInfo si = SegmentInfo.read(medium.segment(), s, sb.cacheId(), count);
                if (si == null) {
                    unknown.set(s);
                    si = new SegmentInfo(0, 0, SegmentInfo.NO_NEXT);
                } else if (SegmentInfo.slotDamaged(medium.segment(), s, 0, sb.cacheId(), count)
                        || SegmentInfo.slotDamaged(medium.segment(), s, 1, sb.cacheId(), count)) {
                    oneSlotDamaged.set(s);
                }
                segments.load(s, si);
            }
            RangeIndex index = new RangeIndex(DEVICE);
            LogReader reader = new LogReader(medium, segments, sb.cacheId(), DEVICE);
            Replay.Result result = new Replay(medium, segments, reader, index, stats, sb.cacheId(), sb.dataCrc(),
                    unknown, oneSlotDamaged, capacity, background).run(info);
            List<String> extents = new ArrayList<>();
            for (int i = 0; i < index.rangeCount(); i++) {
                ExtentMap map = index.rangeIfPresent(i);
                extents.add(map == null ? "absent" : map.snapshot().toString());
            }
            List<String> segs = new ArrayList<>();
            for (int s = 0; s < count; s++) {
                segs.add(s + ": refs " + segments.refs(s) + ", generation " + segments.generation(s) + ", next "
                        + segments.next(s));
            }
            List<Long> counters = List.of(stats.dirtyBytes.get(), stats.ksetsDamaged.sum(),
                    stats.corruptKeysSkipped.sum(), stats.dataCrcErrors.sum(), stats.replayKsets, stats.replayKeys);
            byte[] bytes = medium.segment().toArray(JAVA_BYTE);
            return new Replayed(extents, segs, counters, result,
                    java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(bytes)));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }
}
