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
}
