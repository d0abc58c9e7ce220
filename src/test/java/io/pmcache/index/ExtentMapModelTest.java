package io.pmcache.index;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The packed {@link ExtentMap} against {@link TreeExtentMap} (the TreeMap implementation it
 * replaced) as the model: random inserts of every kind, exact removes and replaces and removeIf,
 * over address spaces that make leaves split, grow, shrink and merge; after every operation both
 * give the same snapshot, the same displaced parts and the same answers, and the packed map's
 * invariants hold. Extents whose fields do not fit the packed words (huge generations, offsets
 * past 1 GiB, odd ZERO fields) take the overflow path. The seed is in every failure message.
 */
class ExtentMapModelTest {

    @ParameterizedTest
    @ValueSource(longs = {1, 2, 3, 4, 5, 6, 7, 8})
    void packedMapBehavesLikeTheTreeMap(long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        // Small spaces with short extents (many overlaps) and larger ones (many leaves).
        int space = switch ((int) (seed % 4)) {
            case 0 -> 300;
            case 1 -> 4_000;
            case 2 -> 40_000;
            default -> 1 << 22;
        };
        int maxLen = (int) Math.max(1, Math.min(space, seed % 2 == 0 ? 16 : 300));
        ExtentMap map = new ExtentMap();
        TreeExtentMap model = new TreeExtentMap();
        long fillIds = 0;
        for (int op = 0; op < 10_000; op++) {
            String what = "seed " + seed + ", op " + op;
            int choice = random.nextInt(100);
            if (choice < 70) {
                long start = random.nextInt(space);
                int len = 1 + random.nextInt((int) Math.min(maxLen, space - start));
                if (random.nextInt(8) == 0) {           // ascending runs: leaves fill from one end
                    start = Math.min(space - 1, op % space);
                    len = 1;
                }
                Extent x = switch (random.nextInt(12)) {
                    case 0 -> Extent.zero(start, len, random.nextBoolean());
                    case 1 -> Extent.placeholder(start, len, ++fillIds);
                    case 2 -> odd(random, start, len);
                    default -> Extent.data(start, len, random.nextInt(1 << 20), random.nextInt(1 << 20),
                            random.nextInt(5), random.nextBoolean());
                };
                List<Extent> got = new ArrayList<>();
                List<Extent> want = new ArrayList<>();
                if (x.kind() == Extent.Kind.DATA && random.nextBoolean()) {   // the object-free entry points
                    map.insertData(x.start(), x.length(), x.segment(), x.segmentOffset(), x.generation(), x.dirty());
                    model.insert(x, null);
                } else if (x.kind() == Extent.Kind.ZERO && x.segment() == -1 && random.nextBoolean()) {
                    map.insertZero(x.start(), x.length(), x.dirty());
                    model.insert(x, null);
                } else {
                    map.insert(x, got::add);
                    model.insert(x, want::add);
                }
                assertThat(got).as(what + ": displaced by " + x).isEqualTo(want);
            } else if (choice < 80) {
                List<Extent> all = model.snapshot();
                Extent x = all.isEmpty() ? Extent.zero(0, 1, false) : all.get(random.nextInt(all.size()));
                if (random.nextBoolean()) {
                    x = x.withDirty(!x.dirty());                // usually not present: must not remove
                }
                assertThat(map.removeExact(x)).as(what + ": removeExact " + x).isEqualTo(model.removeExact(x));
            } else if (choice < 88) {
                List<Extent> all = model.snapshot();
                if (!all.isEmpty()) {
                    Extent old = all.get(random.nextInt(all.size()));
                    Extent repl = random.nextInt(4) == 0 ? odd(random, old.start(), old.length())
                            : Extent.data(old.start(), old.length(), 7, 8, 9, false);
                    assertThat(map.replaceExact(old, repl)).as(what).isEqualTo(model.replaceExact(old, repl));
                }
            } else if (choice < 90) {
                int mod = 2 + random.nextInt(5);
                int max = random.nextInt(3) == 0 ? 3 : Integer.MAX_VALUE;
                assertThat(map.removeIf(x -> x.start() % mod == 0, max)).as(what)
                        .isEqualTo(model.removeIf(x -> x.start() % mod == 0, max));
            } else {
                long from = random.nextInt(space);
                long to = from + 1 + random.nextInt(maxLen);
                Extent whole = model.covering(from, to);
                assertThat(map.covering(from, to)).as(what + ": covering").isEqualTo(whole);
                boolean found = map.findCovering(from, to);
                assertThat(found).as(what + ": findCovering").isEqualTo(whole != null
                        && whole.kind() != Extent.Kind.PLACEHOLDER);
                if (found) {
                    assertThat(map.foundKind()).as(what).isEqualTo(whole.kind());
                    if (whole.kind() == Extent.Kind.DATA) {
                        assertThat(map.foundSegment()).as(what).isEqualTo(whole.segment());
                        assertThat(map.foundAddress()).as(what).isEqualTo(whole.segmentOffset() + from - whole.start());
                        assertThat(map.foundGeneration()).as(what).isEqualTo(whole.generation());
                    }
                }
                List<Extent> got = new ArrayList<>();
                List<Extent> want = new ArrayList<>();
                map.forEachOverlapping(from, to, got::add);
                model.forEachOverlapping(from, to, want::add);
                assertThat(got).as(what + ": overlapping").isEqualTo(want);
            }
            try {
                if (map.size() < 1_000 || op % 50 == 0) {
                    map.checkInvariants();
                }
            } catch (IllegalStateException ex) {
                throw new AssertionError(what + ": " + ex.getMessage(), ex);
            }
            assertThat(map.size()).as(what).isEqualTo(model.size());
            if (op % 97 == 0 || map.size() < 50) {
                assertThat(map.snapshot()).as(what).isEqualTo(model.snapshot());
            }
        }
        assertThat(map.snapshot()).isEqualTo(model.snapshot());
    }

    /** An extent whose fields do not fit the packed words: it must come back exactly. */
    private static Extent odd(SplittableRandom random, long start, int len) {
        return switch (random.nextInt(4)) {
            case 0 -> Extent.data(start, len, 3, 100, (1L << 40) + random.nextInt(3), true);
            case 1 -> Extent.data(start, len, 3, (1 << 30) + 5, 1, false);
            case 2 -> new Extent(start, len, Extent.Kind.ZERO, 4, 5, 6, true, 0);
            default -> Extent.data(start, len, -2, 0, 0, false);
        };
    }
}
