package io.pmcache.index;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The six overlap cases of inserting a new extent N over an existing extent K. */
class ExtentMapTest {
    private final ExtentMap map = new ExtentMap();
    private final List<Extent> displaced = new ArrayList<>();

    /** K = [100, 200) in segment 1 at offset 1000. */
    private void putK() {
        map.insert(Extent.data(100, 100, 1, 1000, 0, true), null);
    }

    private void insertN(long start, int length) {
        map.insert(Extent.data(start, length, 2, 5000, 0, true), displaced::add);
    }

    @Test
    void newKeyBeforeLeavesOldUntouched() {
        putK();
        insertN(0, 100);
        assertThat(map.snapshot()).containsExactly(
                Extent.data(0, 100, 2, 5000, 0, true), Extent.data(100, 100, 1, 1000, 0, true));
        assertThat(displaced).isEmpty();
    }

    @Test
    void newKeyAfterLeavesOldUntouched() {
        putK();
        insertN(200, 50);
        assertThat(map.snapshot()).containsExactly(
                Extent.data(100, 100, 1, 1000, 0, true), Extent.data(200, 50, 2, 5000, 0, true));
        assertThat(displaced).isEmpty();
    }

    @Test
    void newKeyOverlappingTheHeadOfOldCutsOldFront() {
        putK();
        insertN(50, 100); // [50,150) covers K's head [100,150)
        assertThat(map.snapshot()).containsExactly(
                Extent.data(50, 100, 2, 5000, 0, true), Extent.data(150, 50, 1, 1050, 0, true));
        assertThat(displaced).containsExactly(Extent.data(100, 50, 1, 1000, 0, true));
    }

    @Test
    void newKeyOverlappingTheTailOfOldCutsOldBack() {
        putK();
        insertN(150, 100); // [150,250) covers K's tail [150,200)
        assertThat(map.snapshot()).containsExactly(
                Extent.data(100, 50, 1, 1000, 0, true), Extent.data(150, 100, 2, 5000, 0, true));
        assertThat(displaced).containsExactly(Extent.data(150, 50, 1, 1050, 0, true));
    }

    @Test
    void newKeyContainingOldDeletesOld() {
        putK();
        insertN(90, 120);
        assertThat(map.snapshot()).containsExactly(Extent.data(90, 120, 2, 5000, 0, true));
        assertThat(displaced).containsExactly(Extent.data(100, 100, 1, 1000, 0, true));
    }

    @Test
    void newKeyContainedInOldSplitsOld() {
        putK();
        insertN(120, 30);
        assertThat(map.snapshot()).containsExactly(
                Extent.data(100, 20, 1, 1000, 0, true),
                Extent.data(120, 30, 2, 5000, 0, true),
                Extent.data(150, 50, 1, 1050, 0, true));
        assertThat(displaced).containsExactly(Extent.data(120, 30, 1, 1020, 0, true));
    }

    @Test
    void exactOverwriteReplaces() {
        putK();
        insertN(100, 100);
        assertThat(map.snapshot()).containsExactly(Extent.data(100, 100, 2, 5000, 0, true));
    }

    @Test
    void newKeySpanningSeveralOldKeysTrimsBothEndsAndDeletesTheMiddle() {
        map.insert(Extent.data(0, 100, 1, 0, 0, true), null);
        map.insert(Extent.data(100, 100, 1, 100, 0, true), null);
        map.insert(Extent.data(200, 100, 1, 200, 0, true), null);
        insertN(50, 200);
        assertThat(map.snapshot()).containsExactly(
                Extent.data(0, 50, 1, 0, 0, true),
                Extent.data(50, 200, 2, 5000, 0, true),
                Extent.data(250, 50, 1, 250, 0, true));
    }

    @Test
    void placeholderPiecesKeepTheirFillIdWhenSplit() {
        map.insert(Extent.placeholder(0, 300, 9), null);
        insertN(100, 50);
        assertThat(map.snapshot()).extracting(Extent::fillId).containsExactly(9L, 0L, 9L);
        assertThat(map.snapshot().get(2)).isEqualTo(Extent.placeholder(150, 150, 9));
    }

    /**
     * Random inserts against a per-byte model: after each insert every byte maps to the newest
     * extent covering it (at the right offset), the map is non-overlapping, and the displaced
     * parts are exactly the bytes that were covered before.
     */
    @Test
    void randomInsertsMatchAByteModel() {
        var random = new java.util.SplittableRandom(42);
        int size = 512;
        long[] owner = new long[size];       // segmentOffset - start of the writing extent; MIN_VALUE = none
        int[] id = new int[size];
        java.util.Arrays.fill(owner, Long.MIN_VALUE);
        for (int round = 0; round < 5_000; round++) {
            int start = random.nextInt(size);
            int len = 1 + random.nextInt(Math.min(64, size - start));
            if (random.nextInt(4) == 0) {    // often exactly over an existing extent
                var all = map.snapshot();
                if (!all.isEmpty()) {
                    Extent x = all.get(random.nextInt(all.size()));
                    start = (int) x.start();
                    len = x.length();
                }
            }
            int covered = 0;
            for (int b = start; b < start + len; b++) {
                covered += owner[b] != Long.MIN_VALUE ? 1 : 0;
            }
            displaced.clear();
            map.insert(Extent.data(start, len, round, round * 1000, 0, true), displaced::add);
            assertThat(displaced.stream().mapToInt(Extent::length).sum()).isEqualTo(covered);
            for (int b = start; b < start + len; b++) {
                owner[b] = round * 1000L - start;
                id[b] = round;
            }
            long end = -1;
            int mapped = 0;
            for (Extent x : map.snapshot()) {
                if (x.start() < end) {
                    throw new AssertionError("overlap at round " + round + ": " + map.snapshot());
                }
                end = x.end();
                mapped += x.length();
                for (long b = x.start(); b < x.end(); b++) {
                    if (x.segment() != id[(int) b] || x.segmentOffset() - x.start() != owner[(int) b]) {
                        throw new AssertionError("byte " + b + " wrong at round " + round + ": " + x);
                    }
                }
            }
            int owned = 0;
            for (long o : owner) {
                owned += o != Long.MIN_VALUE ? 1 : 0;
            }
            assertThat(mapped).isEqualTo(owned);
        }
    }
}
