package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.index.Extent;
import io.pmcache.media.PowerCutMedium;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Power cuts at a chosen {@link StepHook.Point}, in scenarios the test thread drives step by step
 * (the background writeback and gc workers are off), for bugs the randomized
 * {@link CacheModelTest} found there.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class MidStepCutTest {
    private static final long MIB = 1L << 20;

    /**
     * gc passes a kset, drops its keys' references and reclaims a segment whose last reference
     * went; a writer reuses that segment at once; the power fails before gc persists the key tail.
     * The kset is replayed again, and one of its keys names the reused segment with the old
     * generation. With the data-CRC option that key's data no longer matches: it must still be
     * treated as stale (written back; the backing disk holds its range at least as new), not
     * skipped as corrupt, or an older key of the same kset for the same range (here a
     * write-zeroes) is what reads return.
     */
    @Test
    void aReplayedKeyWhoseSegmentWasReclaimedAndReusedIsStaleNotCorrupt() throws IOException {
        CacheOptions options = new CacheOptions(1, 0, false, false);
        try (CacheHarness h = CacheHarness.create(16, 64 * MIB, options, true)) {
            Cache cache = h.cache();
            Engine e = cache.engine();
            byte[] data = new byte[4096];
            Arrays.fill(data, (byte) 0xd7);
            // One kset: zeroes at 0, then data at 0 (in segment s), then a filler that fills s and
            // moves the data head on, so that gc passing this kset drops s's last reference.
            cache.writeZeroes(0, 4096, false);
            cache.write(0, MemorySegment.ofArray(data), false);
            int s = e.index.rangeFor(0).snapshot().stream().filter(x -> x.kind() == Extent.Kind.DATA)
                    .mapToInt(Extent::segment).findFirst().orElseThrow();
            cache.write(8 * MIB, MemorySegment.ofArray(new byte[(int) MIB]), false);
            cache.flush();
            cache.flushAll(left -> { }); // written back: the backing disk holds the data at 0
            long generation = e.segments.generation(s);

            PowerCutMedium[] image = new PowerCutMedium[1];
            cache.stepHookForTests(p -> {
                if (p == StepHook.Point.GC_AFTER_UNREF && image[0] == null && e.segments.generation(s) != generation) {
                    // s is free: a writer took it and stored other data there. Then the power fails.
                    long at = e.address(s, 0);
                    h.medium().segment().asSlice(at, MIB).fill((byte) 0x3c);
                    h.medium().persist(at, MIB);
                    image[0] = h.medium().cut(42);
                }
            });
            cache.detach(left -> { }); // gc passes everything
            assertThat(image[0]).as("gc reclaimed segment %d", s).isNotNull();

            try (PowerCutMedium medium = image[0]; Cache after = Cache.open(medium, h.backing(), options)) {
                byte[] got = new byte[4096];
                after.read(0, MemorySegment.ofArray(got));
                assertThat(Arrays.mismatch(got, data)).as("first wrong byte of the newest write at 0 after the power cut")
                        .isEqualTo(-1);
            }
        }
    }
}
