package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** gc_percent: every value 0..90 keeps a 16-segment cache running; others are refused; it persists. */
@ExtendWith(RandomSeed.class)
// A hang guard, not a speed bound: 91 caches each written 36 MiB take 20-70 s on an idle 2-core
// machine and over 120 s on one loaded several times over (CI flaked at 120 s).
@Timeout(value = 600, unit = TimeUnit.SECONDS)
class GcPercentTest {
    private static final long MIB = Rig.MIB;
    private static final int DEVICE = (int) (32 * MIB);

    @Test
    void everyGcPercentFrom0To90Works(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        for (int p = 0; p <= 90; p++) {
            WriteHistory model = new WriteHistory(DEVICE);
            try (Rig rig = Rig.format(16, DEVICE, false)) {
                rig.open(new CacheOptions(2, p, true, true));
                assertThat(rig.cache.gcPercent()).isEqualTo(p);
                long written = 0;
                while (written < 36 * MIB) { // more than twice the cache
                    int len = (int) (128 * 1024 * (1 + r.nextInt(4)));
                    long off = r.nextLong((DEVICE - len) / 4096 + 1) * 4096;
                    rig.write(model, off, len);
                    written += len;
                }
                rig.cache.flushAll(left -> { });
                String where = seed + " gc_percent " + p;
                assertThat(rig.cache.status().dirtyBytes()).as(where).isZero();
                assertThat(rig.cache.status().segmentsReclaimed()).as(where).isPositive();
                CorruptMediaTest.verifyCurrent(rig, model, where);
                assertThat(((MemoryBackingDevice) rig.backing).toByteArray()).as(where).isEqualTo(model.current);
            }
        }
    }

    @Test
    void outOfRangeValuesAreRefusedAndTheValuePersists() throws IOException {
        try (Rig rig = Rig.format(16, DEVICE, false)) {
            Cache c = rig.open(CacheOptions.defaults());
            assertThat(c.gcPercent()).isEqualTo(CacheOptions.GC_PERCENT_DEFAULT);
            for (int bad : new int[] {-1, 91, Integer.MIN_VALUE, 1000}) {
                assertThatThrownBy(() -> c.setGcPercent(bad)).isInstanceOf(IllegalArgumentException.class)
                        .hasMessageContaining("gc_percent must be 0..90").hasMessageContaining(String.valueOf(bad));
            }
            assertThat(c.gcPercent()).isEqualTo(CacheOptions.GC_PERCENT_DEFAULT);
            c.setGcPercent(37);
            rig.closeCache();
            assertThat(rig.open(CacheOptions.defaults()).gcPercent()).as("kept across reopen").isEqualTo(37);
            assertThat(rig.cache.status().gcPercent()).isEqualTo(37);
            rig.closeCache();
            assertThat(rig.open(CacheOptions.defaults().withGcPercent(55)).gcPercent()).isEqualTo(55);
            rig.closeCache();
            assertThat(rig.open(CacheOptions.defaults()).gcPercent()).as("an option given at open persists").isEqualTo(55);
            rig.closeCache();
        }
        assertThatThrownBy(() -> CacheOptions.defaults().withGcPercent(91)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("gc_percent");
        assertThatThrownBy(() -> CacheOptions.defaults().withGcPercent(-2)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void tooManyDataHeadsForTheSegmentsAreRefusedAtOpen() throws IOException {
        try (Rig rig = Rig.format(16, DEVICE, false)) {
            assertThatThrownBy(() -> rig.open(CacheOptions.defaults().withParallel(5)))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("parallel 5").hasMessageContaining("16");
            rig.open(CacheOptions.defaults().withParallel(4)).close(); // 4 * 4 = 16 is allowed
        }
        assertThatThrownBy(() -> CacheOptions.defaults().withParallel(-1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("parallel");
        assertThatThrownBy(() -> CacheOptions.defaults().withParallel(129)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("parallel");
    }

    /** Issue 14: the defaults threw on a 128 MiB cache (7 segments of 16 MiB); they fit any cache now. */
    @Test
    void theDefaultsFitSmallCaches() throws IOException {
        try (Rig rig = Rig.format(7, DEVICE, false)) {
            rig.open(CacheOptions.defaults()).close();
        }
        assertThat(CacheOptions.defaults().parallelFor(4)).isEqualTo(1);
        assertThat(CacheOptions.defaults().parallelFor(7)).isEqualTo(1);
        assertThat(CacheOptions.defaults().parallelFor(12)).isEqualTo(3);
        assertThat(CacheOptions.defaults().parallelFor(1000)).isEqualTo(CacheOptions.PARALLEL_DEFAULT);
        assertThat(CacheOptions.defaults().withParallel(8).parallelFor(7)).as("explicit: not lowered").isEqualTo(8);
    }
}
