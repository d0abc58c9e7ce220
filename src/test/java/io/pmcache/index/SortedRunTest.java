package io.pmcache.index;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * {@link ExtentMap#insertSorted} (replay's bulk merge) gives the same map as inserting the run's
 * extents one by one, in a shuffled order, on top of any map: data, zero and placeholder extents
 * already there (some that do not pack), a run of any size beside the map (so that both the merge
 * and the one-by-one path run), and extents of the run that do not pack. jqwik shrinks a failure
 * to a small map and run and prints its seed.
 */
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

    @Provide
    Arbitrary<List<Ext>> extents() {
        Arbitrary<Integer> start = Arbitraries.integers().between(0, 3_000);
        Arbitrary<Integer> length = Arbitraries.oneOf(Arbitraries.integers().between(1, 8),
                Arbitraries.integers().between(1, 400));
        Arbitrary<Integer> kind = Arbitraries.frequencyOf(
                net.jqwik.api.Tuple.of(12, Arbitraries.just(0)), net.jqwik.api.Tuple.of(3, Arbitraries.just(1)),
                net.jqwik.api.Tuple.of(2, Arbitraries.just(2)), net.jqwik.api.Tuple.of(1, Arbitraries.just(3)));
        return Combinators.combine(start, length, kind, Arbitraries.integers().between(0, 50),
                        Arbitraries.integers().between(0, 1 << 20), Arbitraries.integers().between(0, 4),
                        Arbitraries.of(true, false))
                .as(Ext::new).list().ofMaxSize(400);
    }

    @Property(tries = 300)
    void mergingARunIsInsertingItsExtentsOneByOne(@ForAll("extents") List<Ext> before,
                                                  @ForAll("extents") List<Ext> candidates, @ForAll long shuffle) {
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
        assertThat(merged.snapshot()).isEqualTo(oneByOne.snapshot());
        assertThat(merged.size()).isEqualTo(oneByOne.size());
        // and the merged map keeps working as a map
        Extent probe = Extent.data(1_500, 700, 1, 0, 1, true);
        merged.insert(probe, null);
        oneByOne.insert(probe, null);
        merged.checkInvariants();
        assertThat(merged.snapshot()).isEqualTo(oneByOne.snapshot());
    }

    @Property(tries = 50)
    void aRunOutOfOrderOrOverlappingIsRefused(@ForAll("extents") List<Ext> candidates) {
        ExtentMap.SortedRun r = new ExtentMap.SortedRun();
        long end = Long.MIN_VALUE;
        for (Ext e : candidates) {
            if (e.start() < end) {
                int s = e.start();
                assertThatThrownBy(() -> r.addData(s, 1, 0, 0, 0, false)).isInstanceOf(IllegalArgumentException.class);
                return;
            }
            r.addData(e.start(), e.length(), 0, 0, 0, false);
            end = e.start() + e.length();
        }
    }
}
