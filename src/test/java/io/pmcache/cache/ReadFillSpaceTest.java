package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.FaultyBackingDevice;
import io.pmcache.backing.FaultyBackingDevice.Op;
import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Read-miss fills take new segments only below the gc threshold: while writeback fails, segments
 * taken by fills cannot be freed, so fills down to the key log's reserve would leave writes
 * waiting for the backing device to heal.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ReadFillSpaceTest {
    private static final long MIB = Rig.MIB;
    private static final int SEGMENTS = 24;
    private static final int DEVICE = (int) (64 * MIB);

    @Test
    void readMissesWhileWritebackFailsLeaveTheSpaceAboveTheGcThresholdToWrites(Seed seed) throws Exception {
        SplittableRandom r = seed.random();
        MemoryBackingDevice disk = new MemoryBackingDevice(DEVICE, 7);
        byte[] pattern = new byte[DEVICE];
        r.nextBytes(pattern);
        disk.write(0, java.lang.foreign.MemorySegment.ofArray(pattern), false);
        disk.flush();
        WriteHistory model = new WriteHistory(DEVICE);
        System.arraycopy(pattern, 0, model.current, 0, DEVICE);
        FaultyBackingDevice faulty = new FaultyBackingDevice(disk);
        try (Rig rig = Rig.format(SEGMENTS, faulty, false)) {
            // Writeback at full speed (as before pacing): the scenario needs it trying, and failing, all along.
            rig.open(new CacheOptions(2, 50, true, true).withPacing(WritebackSettings.DEFAULTS.withFullSpeed(true)));
            Engine e = rig.cache.engine();
            int threshold = SEGMENTS * 50 / 100;
            int reserve = 2; // max(2, segments / 64)

            faulty.failAlways(Op.WRITE);
            for (int i = 0; i < 32; i++) { // 2 MiB dirty, stuck in the cache
                rig.write(model, i * 64 * 1024L, 64 * 1024);
            }
            rig.cache.flush();
            int usedBefore = e.allocator.usedCount();
            assertThat(usedBefore).isLessThan(threshold);

            // Read misses over 60 MiB: more than twice the whole cache.
            for (long off = 4 * MIB; off < DEVICE; off += 256 * 1024) {
                assertThat(rig.read(off, 256 * 1024)).as("%s: miss at %d", seed, off)
                        .isEqualTo(Arrays.copyOfRange(model.current, (int) off, (int) off + 256 * 1024));
            }
            CacheStatus st = rig.cache.status();
            assertThat(st.fillBytes()).as("fills happen below the threshold").isPositive();
            assertThat(st.fillsSkipped()).as("and stop at it").isPositive();
            assertThat(st.backingErrors()).as("writeback was failing all along").isPositive();
            // The key log may take a segment of its own for the fills' keys.
            int used = e.allocator.usedCount();
            assertThat(used).as("%s: segments used after the misses", seed).isLessThanOrEqualTo(threshold + 1);

            // Writes of what the cache can still hold go through at once, without waiting for space.
            int room = SEGMENTS - reserve - used - 2; // one segment per data head may be half used
            CompletableFuture<Void> writes = CompletableFuture.runAsync(() -> {
                try {
                    for (int i = 0; i < room * 16; i++) { // 64 KiB each: room MiB
                        rig.write(model, 32 * MIB + i * 64 * 1024L, 64 * 1024);
                    }
                    rig.cache.flush();
                } catch (java.io.IOException ex) {
                    throw new java.io.UncheckedIOException(ex);
                }
            });
            try {
                writes.get(30, TimeUnit.SECONDS);
            } catch (TimeoutException stuck) {
                throw new AssertionError(seed + ": " + room + " MiB of writes wait for space although the cache "
                        + "had room for them: read fills took it (" + rig.cache.status() + ")");
            }
            assertThat(rig.cache.status().spaceWaits()).as("%s: no write waited for space", seed).isZero();
            CorruptMediaTest.verifyCurrent(rig, model, seed + " while writeback fails");

            faulty.heal();
            rig.cache.flushAll(left -> { });
            assertThat(disk.toByteArray()).as("%s: the backing device after healing", seed).isEqualTo(model.current);
        }
    }
}
