package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.format.Layout;
import io.pmcache.index.Extent;
import io.pmcache.index.ExtentMap;
import io.pmcache.index.RangeIndex;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * {@link ReplayBatch} builds exactly the index that applying each change in log order builds (the
 * replay before batching, written out here as the oracle): random logs over three ranges of
 * inserts of data and zero extents, clean and dirty, that overlap, repeat exactly, run ascending,
 * and cross batch boundaries, mixed with the punches replay makes for dropped keys (clean
 * extents only, or every extent; some from tombstones that cross a range end), at every batch
 * capacity from 1 to 64 (fixed, or doubling from batch to batch up to 16 times the first) and the
 * default, with and without the background thread. Seeded
 * randomized tests: a failure names the seed and the case (repeat with {@code -Dpmcache.seed=}).
 */
@ExtendWith(RandomSeed.class)
class ReplayBatchTest {
    private static final long RANGE = Layout.RANGE_SIZE;
    private static final int SECTOR = 512;
    private static final int SECTORS_PER_RANGE = (int) (RANGE / SECTOR);

    /** kind: 0 data, 1 zero, 2 forget clean extents, 3 forget every extent. */
    record Change(int kind, int range, int sector, int sectors, boolean dirty, int segment, int generation) {
        long start() {
            return range * RANGE + (long) sector * SECTOR;
        }

        int length() {
            int len = sectors * SECTOR;
            return kind < 2 ? (int) Math.min(len, RANGE - (long) sector * SECTOR) : len; // a key never crosses
        }
    }

    @Test
    void batchedIsTheLogOrderIndex(Seed seed) {
        SplittableRandom r = seed.random();
        for (int i = 0; i < 400; i++) {
            List<Change> log = log(r);
            int capacity = switch (r.nextInt(8)) {          // the ends of 1..64 often, the rest evenly
                case 0 -> 1;
                case 1 -> 64;
                default -> 1 + r.nextInt(64);
            };
            int maxCapacity = r.nextBoolean() ? capacity : capacity << r.nextInt(5);   // batches doubling
            assertSame(log, capacity, maxCapacity, r.nextBoolean(), seed, i);
        }
    }

    @Test
    void largestBatchIsASixteenthOfTheHeapWithinBounds() {
        long gib = 1L << 30;
        assertThat(ReplayBatch.maxCapacityForHeap(256L << 20)).isEqualTo(ReplayBatch.DEFAULT_CAPACITY);
        assertThat(ReplayBatch.maxCapacityForHeap(gib)).isEqualTo(ReplayBatch.DEFAULT_CAPACITY);   // 699,050 fit
        assertThat(ReplayBatch.maxCapacityForHeap(4 * gib)).isEqualTo(1 << 21);                     // 192 MiB
        assertThat(ReplayBatch.maxCapacityForHeap(6 * gib)).isEqualTo(1 << 22);
        assertThat(ReplayBatch.maxCapacityForHeap(Long.MAX_VALUE)).isEqualTo(1 << 22);
    }

    @Test
    void batchedAtTheDefaultCapacityIsTheLogOrderIndex(Seed seed) {
        SplittableRandom r = seed.random();
        for (int i = 0; i < 100; i++) {
            assertSame(log(r), ReplayBatch.DEFAULT_CAPACITY, ReplayBatch.DEFAULT_CAPACITY, r.nextBoolean(), seed, i);
        }
    }

    /**
     * A random log: two times in three random changes, else ascending 4 KiB writes (as a
     * sequential writer leaves them: the sorted fast path) followed by random changes.
     */
    static List<Change> log(SplittableRandom r) {
        if (r.nextInt(3) < 2) {
            return randomChanges(r);
        }
        int n = 1 + r.nextInt(200);
        int range = r.nextInt(3);
        List<Change> l = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            l.add(new Change(0, range, i * 8, 8, i % 3 != 0, i % 10, 1));
        }
        l.addAll(randomChanges(r));
        return l;
    }

    /** Up to 300 changes (empty and tiny logs included); mostly data, then zero, then punches. */
    private static List<Change> randomChanges(SplittableRandom r) {
        int size = r.nextInt(8) == 0 ? r.nextInt(4) : r.nextInt(301);
        List<Change> l = new ArrayList<>(size);
        for (int i = 0; i < size; i++) {
            int w = r.nextInt(20);                          // weights 14 : 3 : 2 : 1
            int kind = w < 14 ? 0 : w < 17 ? 1 : w < 19 ? 2 : 3;
            int range = r.nextInt(3);
            int sector = r.nextBoolean() ? r.nextInt(201)  // mostly low sectors (overlaps), some at the end
                    : SECTORS_PER_RANGE - 40 + r.nextInt(40);
            int sectors = r.nextBoolean() ? 8 : 1 + r.nextInt(64);
            l.add(new Change(kind, range, sector, sectors, r.nextBoolean(), r.nextInt(10), r.nextInt(4)));
        }
        return l;
    }

    private static void assertSame(List<Change> log, int capacity, int maxCapacity, boolean background, Seed seed,
                                   int i) {
        String context = String.format("%s case %d (capacity %d up to %d, background %s, %d changes)", seed, i,
                capacity, maxCapacity, background, log.size());
        long device = 3 * RANGE;
        RangeIndex oracle = new RangeIndex(device);
        RangeIndex batched = new RangeIndex(device);
        try {
            try (ReplayBatch batch = new ReplayBatch(batched, capacity, maxCapacity, background)) {
                apply(log, oracle, batch);
            }
        } catch (RuntimeException e) {
            throw new AssertionError(context + ": " + e, e);
        }
        compare(oracle, batched, context);
    }

    private static void apply(List<Change> log, RangeIndex oracle, ReplayBatch batch) {
        for (Change c : log) {
            ExtentMap map = oracle.rangeFor(c.start());
            switch (c.kind()) {
                case 0 -> {
                    map.insertData(c.start(), c.length(), c.segment(), c.sector() * SECTOR, c.generation(), c.dirty());
                    batch.data(c.start(), c.length(), c.segment(), c.sector() * SECTOR, c.generation(), c.dirty());
                }
                case 1 -> {
                    map.insertZero(c.start(), c.length(), c.dirty());
                    batch.zero(c.start(), c.length(), c.dirty());
                }
                default -> {
                    forgetAsReplayDid(map, c.start(), c.start() + c.length(), c.kind() == 3);
                    batch.forget(c.start(), c.length(), c.kind() == 3);
                }
            }
        }
        batch.flush();
    }

    private static void compare(RangeIndex oracle, RangeIndex batched, String context) {
        for (int r = 0; r < oracle.rangeCount(); r++) {
            ExtentMap want = oracle.rangeIfPresent(r);
            ExtentMap got = batched.rangeIfPresent(r);
            assertThat(got == null).as("%s: range %d present", context, r).isEqualTo(want == null);
            if (want != null) {
                assertThat(got.snapshot()).as("%s: range %d", context, r).isEqualTo(want.snapshot());
            }
        }
    }

    /** Replay's punch for a dropped key before batching (Replay.forgetDropped), verbatim. */
    private static void forgetAsReplayDid(ExtentMap map, long offset, long end, boolean writtenBack) {
        List<Extent> doomed = new ArrayList<>();
        map.forEachOverlapping(offset, end, x -> {
            if (writtenBack || !x.dirty()) {
                doomed.add(x);
            }
        });
        for (Extent x : doomed) {
            long from = Math.max(x.start(), offset);
            long to = Math.min(x.end(), end);
            Extent hole = Extent.placeholder(from, (int) (to - from), 0);
            map.insert(hole, null);
            map.removeExact(hole);
        }
    }
}
