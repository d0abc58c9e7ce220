package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.format.Layout;
import io.pmcache.index.Extent;
import io.pmcache.index.ExtentMap;
import io.pmcache.index.RangeIndex;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * {@link ReplayBatch} builds exactly the index that applying each change in log order builds (the
 * replay before batching, written out here as the oracle): random logs over three ranges of
 * inserts of data and zero extents, clean and dirty, that overlap, repeat exactly, run ascending,
 * and cross batch boundaries, mixed with the punches replay makes for dropped keys (clean
 * extents only, or every extent; some from tombstones that cross a range end), at every batch
 * capacity from 1 to 64 and the default. jqwik shrinks a failing log and prints its seed.
 */
class ReplayBatchTest {
    private static final long RANGE = Layout.RANGE_SIZE;
    private static final int SECTOR = 512;

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

    @Provide
    Arbitrary<List<Change>> logs() {
        Arbitrary<Integer> kind = Arbitraries.frequencyOf(net.jqwik.api.Tuple.of(14, Arbitraries.just(0)),
                net.jqwik.api.Tuple.of(3, Arbitraries.just(1)), net.jqwik.api.Tuple.of(2, Arbitraries.just(2)),
                net.jqwik.api.Tuple.of(1, Arbitraries.just(3)));
        // mostly low sectors (overlaps), some at the end of the range
        Arbitrary<Integer> sector = Arbitraries.oneOf(Arbitraries.integers().between(0, 200),
                Arbitraries.integers().between((int) (RANGE / SECTOR) - 40, (int) (RANGE / SECTOR) - 1));
        Arbitrary<Integer> sectors = Arbitraries.oneOf(Arbitraries.just(8), Arbitraries.integers().between(1, 64));
        Arbitrary<List<Change>> random = Combinators.combine(kind, Arbitraries.integers().between(0, 2), sector,
                        sectors, Arbitraries.of(true, false), Arbitraries.integers().between(0, 9),
                        Arbitraries.integers().between(0, 3))
                .as(Change::new).list().ofMaxSize(300);
        // ascending 4 KiB writes, as a sequential writer leaves them (the sorted fast path)
        Arbitrary<List<Change>> ascending = Arbitraries.integers().between(1, 200).flatMap(n ->
                Arbitraries.integers().between(0, 2).map(r -> {
                    List<Change> l = new ArrayList<>();
                    for (int i = 0; i < n; i++) {
                        l.add(new Change(0, r, i * 8, 8, i % 3 != 0, i % 10, 1));
                    }
                    return l;
                }));
        return Arbitraries.oneOf(random, random, ascending.flatMap(a -> random.map(b -> {
            List<Change> l = new ArrayList<>(a);
            l.addAll(b);
            return l;
        })));
    }

    @Property(tries = 400)
    void batchedIsTheLogOrderIndex(@ForAll("logs") List<Change> log, @ForAll @IntRange(min = 1, max = 64) int capacity,
                                   @ForAll boolean background) {
        assertSame(log, capacity, background);
    }

    @Property(tries = 100)
    void batchedAtTheDefaultCapacityIsTheLogOrderIndex(@ForAll("logs") List<Change> log, @ForAll boolean background) {
        assertSame(log, ReplayBatch.DEFAULT_CAPACITY, background);
    }

    private static void assertSame(List<Change> log, int capacity, boolean background) {
        long device = 3 * RANGE;
        RangeIndex oracle = new RangeIndex(device);
        RangeIndex batched = new RangeIndex(device);
        try (ReplayBatch batch = new ReplayBatch(batched, capacity, background)) {
            apply(log, oracle, batch);
        }
        compare(oracle, batched, capacity);
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

    private static void compare(RangeIndex oracle, RangeIndex batched, int capacity) {
        for (int r = 0; r < oracle.rangeCount(); r++) {
            ExtentMap want = oracle.rangeIfPresent(r);
            ExtentMap got = batched.rangeIfPresent(r);
            assertThat(got == null).as("range %d present", r).isEqualTo(want == null);
            if (want != null) {
                assertThat(got.snapshot()).as("range %d, capacity %d", r, capacity).isEqualTo(want.snapshot());
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
