package io.pmcache.cache;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.format.MediaCorruptException;
import io.pmcache.index.ExtentMap;
import io.pmcache.index.RangeIndex;
import io.pmcache.media.PowerCutMedium;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Replay with its index changes batched ({@link ReplayBatch}) ends exactly where replay applying
 * each change in log order ends (batch capacity 1), on random damaged key logs: overlapping writes,
 * write-zeroes and trims over three 4 MiB ranges, some written back (clean keys), a clean stop, a
 * process crash or a power cut (unsealed ksets, keys cut short), then bit flips in random key slots
 * and data blocks, sometimes opened once in between (so that earlier damage is tombstoned and the
 * new damage comes on top). Compared: every range's extents, every segment's references and
 * generation, the counters, the result (head, tails, log segments) and the medium's bytes after
 * replay (its repairs). Seeded randomized test: a failure names the seed and the case (repeat with
 * {@code -Dpmcache.seed=}).
 */
@ExtendWith(RandomSeed.class)
class ReplayEquivalenceTest {
    private static final long MIB = 1L << 20;
    private static final long DEVICE = 12 * MIB;
    private static final int SECTOR = 512;

    @Test
    void batchedReplayIsSequentialReplay(Seed seed) throws IOException {
        SplittableRandom cases = seed.random();
        int damageReported = 0;
        int[] keysReplayed = new int[3];                    // 0, 1-49, 50+
        for (int i = 0; i < 40; i++) {
            long imageSeed = cases.nextLong();
            int flips = cases.nextInt(7);                   // 0 to 6 bit flips
            String context = String.format("%s case %d (image seed %d, %d flips)", seed, i, imageSeed, flips);
            SplittableRandom r = new SplittableRandom(imageSeed);
            try (PowerCutMedium image = damagedImage(r, flips)) { // closed: 50 MB of native memory each
                Replayed sequential = replay(image.copy(), 1, 1, false);
                if (sequential.counters.get(1) + sequential.counters.get(2) + sequential.counters.get(3) > 0) {
                    damageReported++;
                }
                long keys = sequential.counters.get(5);
                keysReplayed[keys == 0 ? 0 : keys < 50 ? 1 : 2]++;
                int[] capacities = {ReplayBatch.DEFAULT_CAPACITY, 2, 1 + r.nextInt(40), 1 + r.nextInt(40)};
                for (int c = 0; c < capacities.length; c++) {
                    int capacity = capacities[c];
                    // with and without the background thread
                    // the last one with batches doubling up to 8 times its first
                    Replayed batched = replay(image.copy(), capacity, c == 3 ? 8 * capacity : capacity, c != 2);
                    assertThat(batched.extents).as("%s: index, capacity %d", context, capacity)
                            .isEqualTo(sequential.extents);
                    assertThat(batched.segments).as("%s: refs and generations, capacity %d", context, capacity)
                            .isEqualTo(sequential.segments);
                    assertThat(batched.counters).as("%s: counters, capacity %d", context, capacity)
                            .isEqualTo(sequential.counters);
                    assertThat(batched.result).as("%s: result, capacity %d", context, capacity)
                            .isEqualTo(sequential.result);
                    assertThat(batched.medium).as("%s: medium after replay, capacity %d", context, capacity)
                            .isEqualTo(sequential.medium);
                }
            } catch (IOException | RuntimeException e) {
                throw new AssertionError(context + ": " + e, e);
            }
        }
        System.out.printf("ReplayEquivalenceTest %s: damage reported in %d of 40 images; keys replayed 0: %d,"
                + " 1-49: %d, 50+: %d%n", seed, damageReported, keysReplayed[0], keysReplayed[1], keysReplayed[2]);
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
            if (r.nextBoolean() || k.key().zero() || k.key().length() == 0) {   // a lost tombstone has no data
                at = k.address() + r.nextInt(64);
            } else {
                at = map.address(k.key().segment(), k.key().segmentOffset()) + r.nextInt(k.key().length());
            }
            m.set(JAVA_BYTE, at, (byte) (m.get(JAVA_BYTE, at) ^ (1 << r.nextInt(8))));
        }
    }

    /** Replays {@code medium} as {@link Cache#open} does, with the given batch capacities. */
    private static Replayed replay(PowerCutMedium medium, int capacity, int maxCapacity, boolean background)
            throws IOException {
        try (medium) {
            CacheStats stats = new CacheStats();
            Replay.Prepared prepared = Replay.prepare(medium, Cache.superblock(medium), DEVICE, stats, capacity,
                    maxCapacity, background);
            Replay.Result result = prepared.run();
            RangeIndex index = prepared.index();
            SegmentTable segments = prepared.segments();
            List<String> extents = new ArrayList<>();
            for (int i = 0; i < index.rangeCount(); i++) {
                ExtentMap map = index.rangeIfPresent(i);
                extents.add(map == null ? "absent" : map.snapshot() + ", dirty kset bound " + map.dirtyKsetBound());
            }
            List<String> segs = new ArrayList<>();
            for (int s = 0; s < segments.count(); s++) {
                segs.add(s + ": refs " + segments.refs(s) + ", generation " + segments.generation(s) + ", next "
                        + segments.next(s));
            }
            List<Long> counters = List.of(stats.dirtyBytes.sum(), stats.ksetsDamaged.sum(),
                    stats.corruptKeysSkipped.sum(), stats.dataCrcErrors.sum(), stats.replayKsets, stats.replayKeys);
            byte[] bytes = medium.segment().toArray(JAVA_BYTE);
            return new Replayed(extents, segs, counters, result,
                    java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(bytes)));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }
}
