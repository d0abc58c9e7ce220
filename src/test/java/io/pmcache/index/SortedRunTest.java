package io.pmcache.index;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * {@link ExtentMap#insertSorted} (replay's bulk merge) gives the same map as inserting the run's
 * extents one by one, in a shuffled order, on top of any map: data, zero and placeholder extents
 * already there (some that do not pack), a run of any size beside the map (so that both the merge
 * and the one-by-one path run), and extents of the run that do not pack. Seeded randomized tests:
 * a failure names the seed and the case (repeat with {@code -Dpmcache.seed=}).
 */
@ExtendWith(RandomSeed.class)
class SortedRunTest {
    /** One extent to put in the map or the run. kind: 0 data, 1 zero, 2 placeholder, 3 data that does not pack. */
    record Ext(int start, int length, int kind, int segment, int offset, int generation, boolean dirty) {
        Extent extent(long fillId) {
            return switch (kind) {
                case 1 -> Extent.zero(start, length, dirty);
                case 2 -> Extent.placeholder(start, length, fillId);
                case 3 -> Extent.data(start, length, segment, offset, (1L << 40) + generation, dirty);
                default -> Extent.data(start, length, segment, offset, generation, dirty);
            };
        }
    }

    /** Up to 400 extents (empty and tiny lists included) over [0, 3400), short and long, mostly data. */
    static List<Ext> extents(SplittableRandom r) {
        int size = r.nextInt(8) == 0 ? r.nextInt(4) : r.nextInt(401);
        List<Ext> l = new ArrayList<>(size);
        for (int i = 0; i < size; i++) {
            int start = r.nextInt(3_001);
            int length = r.nextBoolean() ? 1 + r.nextInt(8) : 1 + r.nextInt(400);
            int w = r.nextInt(18);                          // weights 12 : 3 : 2 : 1
            int kind = w < 12 ? 0 : w < 15 ? 1 : w < 17 ? 2 : 3;
            l.add(new Ext(start, length, kind, r.nextInt(51), r.nextInt((1 << 20) + 1), r.nextInt(5), r.nextBoolean()));
        }
        return l;
    }

    @Test
    void mergingARunIsInsertingItsExtentsOneByOne(Seed seed) {
        SplittableRandom r = seed.random();
        for (int i = 0; i < 300; i++) {
            List<Ext> before = extents(r);
            List<Ext> candidates = extents(r);
            long shuffle = r.nextLong();
            String context = String.format("%s case %d (%d extents before, %d candidates)", seed, i, before.size(),
                    candidates.size());
            try {
                mergeOneCase(before, candidates, shuffle, context);
            } catch (RuntimeException e) {
                throw new AssertionError(context + ": " + e, e);
            }
        }
    }

    /**
     * Replay's usual shape: batch after batch of extents that fall between those already there
     * (the merge in place: leaves with room, leaves that grow, leaves that split), now and then
     * one that overlaps (the merge by pieces), each batch's run against one insert at a time.
     */
    @Test
    void batchesBetweenExistingExtentsAreInsertingThemOneByOne(Seed seed) {
        SplittableRandom r = seed.random();
        for (int i = 0; i < 60; i++) {
            int slots = 20 + r.nextInt(3_000);
            int batches = 1 + r.nextInt(12);
            boolean unpacked = r.nextInt(5) == 0;           // sometimes extents that do not pack (one insert each)
            int[] batchOf = new int[slots];
            for (int k = 0; k < slots; k++) {
                batchOf[k] = r.nextInt(4) == 0 ? -1 : r.nextInt(batches);
            }
            ExtentMap merged = new ExtentMap();
            ExtentMap oneByOne = new ExtentMap();
            for (int b = 0; b < batches; b++) {
                String context = String.format("%s case %d (%d slots) batch %d of %d", seed, i, slots, b, batches);
                List<Extent> run = new ArrayList<>();
                for (int k = 0; k < slots; k++) {
                    if (batchOf[k] != b) {
                        continue;
                    }
                    int start = 8 * k + r.nextInt(2);
                    int length = 1 + r.nextInt(r.nextInt(50) == 0 ? 14 : 6);   // now and then over the next slot
                    if (!run.isEmpty() && run.getLast().end() > start) {
                        continue;
                    }
                    int w = r.nextInt(40);
                    run.add(w < 30 ? Extent.data(start, length, r.nextInt(51), r.nextInt(1 << 20), r.nextInt(5),
                            r.nextBoolean()) : w < 39 || !unpacked ? Extent.zero(start, length, r.nextBoolean())
                            : Extent.data(start, length, 1, 0, (1L << 40) + r.nextInt(5), true));
                }
                ExtentMap.SortedRun sr = new ExtentMap.SortedRun();
                for (Extent x : run) {
                    if (x.kind() == Extent.Kind.ZERO) {
                        sr.addZero(x.start(), x.length(), x.dirty());
                    } else {
                        sr.addData(x.start(), x.length(), x.segment(), x.segmentOffset(), x.generation(), x.dirty());
                    }
                }
                merged.insertSorted(sr);
                List<Extent> shuffled = new ArrayList<>(run);
                Collections.shuffle(shuffled, new Random(r.nextLong()));
                for (Extent x : shuffled) {
                    oneByOne.insert(x, null);
                }
                try {
                    merged.checkInvariants();
                } catch (IllegalStateException e) {
                    throw new AssertionError(context + ": " + e, e);
                }
                assertThat(merged.snapshot()).as("%s: merged", context).isEqualTo(oneByOne.snapshot());
                assertThat(merged.size()).as("%s: size", context).isEqualTo(oneByOne.size());
            }
        }
    }

    private static void mergeOneCase(List<Ext> before, List<Ext> candidates, long shuffle, String context) {
        ExtentMap merged = new ExtentMap();
        ExtentMap oneByOne = new ExtentMap();
        long fillId = 0;
        for (Ext e : before) {
            Extent x = e.extent(++fillId);
            merged.insert(x, null);
            oneByOne.insert(x, null);
        }
        // The run: the candidates in start order, each kept only when it starts at or after the
        // end of the last one kept (data and zero only: replay never inserts placeholders).
        List<Extent> run = new ArrayList<>();
        List<Ext> sorted = new ArrayList<>(candidates);
        sorted.sort((a, b) -> Integer.compare(a.start(), b.start()));
        long end = Long.MIN_VALUE;
        for (Ext e : sorted) {
            if (e.start() >= end && e.kind() != 2) {
                run.add(e.extent(0));
                end = e.start() + e.length();
            }
        }
        ExtentMap.SortedRun r = new ExtentMap.SortedRun();
        r.addZero(0, 1, false);                             // the run is reusable: cleared before use
        r.clear();
        for (Extent x : run) {
            if (x.kind() == Extent.Kind.ZERO) {
                r.addZero(x.start(), x.length(), x.dirty());
            } else {
                r.addData(x.start(), x.length(), x.segment(), x.segmentOffset(), x.generation(), x.dirty());
            }
        }
        merged.insertSorted(r);
        List<Extent> shuffled = new ArrayList<>(run);
        Collections.shuffle(shuffled, new Random(shuffle));
        for (Extent x : shuffled) {
            oneByOne.insert(x, null);
        }
        merged.checkInvariants();
        assertThat(merged.snapshot()).as("%s: merged", context).isEqualTo(oneByOne.snapshot());
        assertThat(merged.size()).as("%s: size", context).isEqualTo(oneByOne.size());
        // and the merged map keeps working as a map
        Extent probe = Extent.data(1_500, 700, 1, 0, 1, true);
        merged.insert(probe, null);
        oneByOne.insert(probe, null);
        merged.checkInvariants();
        assertThat(merged.snapshot()).as("%s: after an insert on top", context).isEqualTo(oneByOne.snapshot());
    }

    @Test
    void aRunOutOfOrderOrOverlappingIsRefused(Seed seed) {
        SplittableRandom rnd = seed.random();
        for (int i = 0; i < 50; i++) {
            List<Ext> candidates = extents(rnd);
            ExtentMap.SortedRun r = new ExtentMap.SortedRun();
            long end = Long.MIN_VALUE;
            for (Ext e : candidates) {
                if (e.start() < end) {
                    int s = e.start();
                    assertThatThrownBy(() -> r.addData(s, 1, 0, 0, 0, false)).as("%s case %d", seed, i)
                            .isInstanceOf(IllegalArgumentException.class);
                    break;
                }
                try {
                    r.addData(e.start(), e.length(), 0, 0, 0, false);
                } catch (RuntimeException x) {
                    throw new AssertionError(seed + " case " + i + ": an extent in order refused: " + x, x);
                }
                end = e.start() + e.length();
            }
        }
    }
}
