package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.index.Extent;
import io.pmcache.index.ExtentMap;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * gc cleans the index by visiting only the ranges of keys that referenced a reclaimed segment:
 * after the log wrapped many times under unaligned, overlapping writes (which split extents), no
 * extent of a reclaimed segment is left in the index, and every byte still reads back.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class GcIndexCleaningTest {
    private static final long MIB = Rig.MIB;
    private static final int DEVICE = (int) (64 * MIB);

    @Test
    void noStaleExtentSurvivesCleaning(Seed seed) throws Exception {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory(DEVICE);
        try (Rig rig = Rig.format(16, DEVICE, false)) {
            rig.open(new CacheOptions(2, 50, true, true));
            long written = 0;
            while (written < 160 * MIB) { // ten times the cache
                int len = 512 * (1 + r.nextInt(r.nextInt(8) == 0 ? 256 : 16));
                long off = r.nextLong((DEVICE - len) / 512 + 1) * 512;
                rig.write(model, off, len);
                written += len;
            }
            rig.cache.flushAll(left -> { });
            Engine e = rig.cache.engine();
            assertThat(rig.cache.status().segmentsReclaimed()).as("%s the log wrapped", seed).isGreaterThan(32);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            int[] counts;
            do {
                Thread.sleep(50);
                counts = count(e);
            } while (counts[0] > 0 && System.nanoTime() < deadline);
            assertThat(counts[0]).as("%s stale extents left in the index (of %d)", seed, counts[1]).isZero();
            assertThat(counts[1]).as("%s the index still caches data", seed).isPositive();
            CorruptMediaTest.verifyCurrent(rig, model, seed.toString());
        }
    }

    /** {stale data extents, live data extents}. */
    private static int[] count(Engine e) {
        int[] n = new int[2];
        for (int i = 0; i < e.index.rangeCount(); i++) {
            ExtentMap map = e.index.rangeIfPresent(i);
            if (map == null) {
                continue;
            }
            map.lock().lock();
            try {
                for (Extent x : map.snapshot()) {
                    if (x.kind() == Extent.Kind.DATA) {
                        n[x.generation() != e.segments.generation(x.segment()) ? 0 : 1]++;
                    }
                }
            } finally {
                map.lock().unlock();
            }
        }
        return n;
    }
}
