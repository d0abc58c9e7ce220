package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.media.PowerCutMedium;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The offline checker on images a crash or a power cut leaves: warnings at most, never errors. */
class CheckerTest {
    private static final long MIB = 1L << 20;

    private static CacheHarness busyCache(long seed) throws Exception {
        CacheHarness h = CacheHarness.create(16, 64 * MIB,
                CacheOptions.defaults().withParallel(2).withWriteback(false), false);
        Random rnd = new Random(seed);
        try (Arena a = Arena.ofConfined()) {
            for (int i = 0; i < 200; i++) {
                int len = (1 + rnd.nextInt(16)) * 4096;
                MemorySegment buf = a.allocate(len);
                buf.fill((byte) i);
                h.write(rnd.nextLong(64 * MIB - len) & ~4095L, buf, false);
                if (i % 50 == 49) {
                    h.flush();
                }
            }
        }
        return h;
    }

    @Test
    void aCrashLeavesUnsealedKsetsThatAreWarningsNotCorruption() throws Exception {
        try (CacheHarness h = busyCache(1)) {
            try (Arena a = Arena.ofConfined()) {
                h.write(0, a.allocate(4096), false); // opens a kset the sealer will not close for a second
            }
            h.cache().abandonForTests(); // a consistent image: nothing stores into the medium while it is copied
            try (PowerCutMedium image = h.medium().crash()) {
                Checker.Report r = Checker.check(image, h.backing(), true, null);
                assertThat(r.clean()).as("%s", r.findings()).isTrue();
                assertThat(r.ksetsUnsealed()).isPositive();
                assertThat(r.dirtyBytes()).isPositive();
                assertThat(r.findings()).anyMatch(f -> f.message().contains("not sealed"));
            }
        }
    }

    @Test
    void powerCutsNeverLookLikeCorruption() throws Exception {
        for (long seed = 0; seed < 10; seed++) {
            try (CacheHarness h = busyCache(seed)) {
                h.cache().abandonForTests();
                try (PowerCutMedium image = h.medium().cut(seed)) {
                    Checker.Report r = Checker.check(image, h.backing(), false, null);
                    assertThat(r.clean()).as("seed %d: %s", seed, r.findings()).isTrue();
                }
            }
        }
    }

    @Test
    void aCleanCloseIsClean() throws Exception {
        try (CacheHarness h = busyCache(7)) {
            h.cache().close();
            Checker.Report r = Checker.check(h.medium(), h.backing(), true, null);
            assertThat(r.clean()).as("%s", r.findings()).isTrue();
            assertThat(r.ksetsUnsealed()).isZero();
            assertThat(r.warnings()).isZero();
            assertThat(r.dataChecked()).isEqualTo(r.liveKeys());
        }
    }
}
