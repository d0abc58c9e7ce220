package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.media.Medium;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** PersistBatch persists exactly the runs of the obvious sort-by-start-and-merge algorithm. */
@ExtendWith(RandomSeed.class)
class PersistBatchTest {

    /** Records persist calls as {start, length}. */
    private static final class Recorder implements Medium {
        final List<long[]> calls = new ArrayList<>();

        @Override
        public MemorySegment segment() {
            throw new UnsupportedOperationException();
        }

        @Override
        public long size() {
            return Long.MAX_VALUE;
        }

        @Override
        public void persist(long offset, long length) {
            calls.add(new long[] {offset, length});
        }

        @Override
        public String describe() {
            return "recorder";
        }

        @Override
        public void close() {
        }
    }

    /** The reference: sort by start, extend the run while the next start is within GAP of its end. */
    private static List<long[]> expected(List<long[]> ranges) {
        List<long[]> sorted = new ArrayList<>(ranges);
        sorted.sort(Comparator.comparingLong(r -> r[0]));
        List<long[]> runs = new ArrayList<>();
        long start = sorted.get(0)[0];
        long end = sorted.get(0)[0] + sorted.get(0)[1];
        for (long[] r : sorted.subList(1, sorted.size())) {
            if (r[0] <= end + PersistBatch.GAP) {
                end = Math.max(end, r[0] + r[1]);
            } else {
                runs.add(new long[] {start, end - start});
                start = r[0];
                end = r[0] + r[1];
            }
        }
        runs.add(new long[] {start, end - start});
        return runs;
    }

    @Test
    void runsEqualTheSortAndMergeReference(Seed seed) {
        SplittableRandom r = seed.random();
        PersistBatch batch = new PersistBatch();
        Recorder medium = new Recorder();
        for (int round = 0; round < 2_000; round++) {
            int n = 1 + r.nextInt(round % 10 == 0 ? 500 : 20);
            // spans small and large against GAP, so runs merge, nest, touch and stay apart
            long span = 1L << (12 + r.nextInt(16));
            List<long[]> ranges = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                long start = r.nextLong(span * n);
                long length = r.nextInt(4) == 0 ? r.nextLong(1, span * 4) : r.nextLong(1, 8192);
                ranges.add(new long[] {start, length});
                batch.add(start, length);
            }
            batch.add(12345, 0); // empty ranges are ignored
            medium.calls.clear();
            batch.persist(medium);
            assertThat(medium.calls).as("round %d: %d ranges", round, n)
                    .containsExactlyElementsOf(expected(ranges));
        }
    }

    @Test
    void anEmptyBatchPersistsNothingAndABatchIsEmptyAfterPersisting() {
        PersistBatch batch = new PersistBatch();
        Recorder medium = new Recorder();
        batch.persist(medium);
        assertThat(medium.calls).isEmpty();
        batch.add(4096, 4096);
        batch.persist(medium);
        batch.persist(medium);
        assertThat(medium.calls).containsExactly(new long[] {4096, 4096});
    }
}
