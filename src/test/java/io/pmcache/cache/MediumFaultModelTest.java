package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import io.pmcache.device.DeviceFailedException;
import io.pmcache.format.Layout;
import io.pmcache.media.FaultyMedium;
import io.pmcache.media.PowerCutMedium;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The cache against the disk model while persists of the medium fail (a {@link FaultyMedium}):
 * random writes, FUA writes, flushes, trims, write-zeroes and reads with writeback and gc in the
 * background; at a random operation a persist a few persists ahead is made to fail (one, or all
 * from then on), whichever thread reaches it (a writer's FUA, a flush, the sealer, writeback, gc).
 *
 * <p>Checked: once the cache reports the failure, no write, trim, zero or flush succeeds; reads
 * still do. Then the power is cut (medium and backing disk) and the cache reopened without
 * faults: every write made durable by a flush or FUA that <em>succeeded</em> reads back, no
 * sector holds what was never written there, and the reopened cache reports no damage. Many
 * rounds, each reopening what the last one left.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class MediumFaultModelTest {
    private static final int SECTOR = DiskModel.SECTOR;
    private static final long MIB = 1L << 20;
    private static final int SEGMENTS = 24;
    private static final int DEVICE = (int) (24 * MIB);

    @Test
    void aFailedPersistNeverLosesWhatWasDurableAndNeverAcknowledgesMore(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        DiskModel model = new DiskModel(DEVICE);
        PowerCutMedium medium = PowerCutMedium.create(Layout.segmentAreaOffset(SEGMENTS) + SEGMENTS * MIB);
        PowerCutBackingDevice disk = new PowerCutBackingDevice(DEVICE);
        Cache.format(medium, disk, new FormatOptions(MIB, r.nextBoolean()));
        int failedRounds = 0;
        int rounds = 10;
        for (int round = 0; round < rounds; round++) {
            String where = seed + " round " + round;
            FaultyMedium faulty = new FaultyMedium(medium);
            CacheOptions options = CacheOptions.defaults().withParallel(1 + r.nextInt(2)).withGcPercent(r.nextInt(91));
            Cache cache = Cache.open(faulty, disk, options);
            assertThat(cache.status().corruptKeysSkipped() + cache.status().dataCrcErrors())
                    .as("%s: damage reported after a failed persist and a power cut", where).isZero();
            model.verifyAfterCut(cache, where + " after reopening");
            int ops = 200 + r.nextInt(1200);
            int armAt = r.nextInt(ops);
            boolean failedSeen = false;
            for (int op = 0; op < ops; op++) {
                if (op == armAt) {
                    if (r.nextInt(3) == 0) {
                        faulty.failAlways();
                    } else {
                        faulty.failNthPersist(1 + r.nextInt(12));
                    }
                }
                failedSeen |= cache.status().failure() != null;
                String at = where + " op " + op;
                double p = r.nextDouble();
                try {
                    if (p < 0.45 || p >= 0.95) {
                        boolean fua = r.nextInt(6) == 0;
                        long[] io = pick(r);
                        byte[] data = model.write(io[0], (int) io[1], false, false); // durable only once acknowledged
                        cache.write(io[0], MemorySegment.ofArray(data), fua);
                        acknowledged(failedSeen, at + " write");
                        if (fua) {
                            model.lastWriteDurable();
                        }
                    } else if (p < 0.55) {
                        cache.flush();
                        acknowledged(failedSeen, at + " flush");
                        model.flush();
                    } else if (p < 0.62) {
                        long[] io = pick(r);
                        boolean trim = r.nextBoolean();
                        model.write(io[0], (int) io[1], true, false);
                        if (trim) {
                            cache.trim(io[0], io[1]);
                        } else {
                            cache.writeZeroes(io[0], io[1], false);
                        }
                        acknowledged(failedSeen, at + (trim ? " trim" : " write-zeroes"));
                    } else {
                        long[] io = pick(r);
                        byte[] got = new byte[(int) io[1]];
                        cache.read(io[0], MemorySegment.ofArray(got));
                        if (!failedSeen) {
                            int bad = java.util.Arrays.mismatch(got, 0, got.length, model.current, (int) io[0],
                                    (int) (io[0] + io[1]));
                            assertThat(bad).as("%s read [%d, +%d)", at, io[0], io[1]).isEqualTo(-1);
                        }
                    }
                } catch (DeviceFailedException ex) {
                    failedSeen = true;
                    assertThat(cache.status().failure()).as("%s: status after %s", at, ex.getMessage()).isNotNull();
                }
            }
            if (failedSeen) {
                failedRounds++;
            }
            try {
                cache.close();
            } catch (DeviceFailedException ex) {
                failedSeen = true; // the failure reached the close: nothing more was written
            }
            long cutSeed = r.nextLong();
            PowerCutMedium after = medium.cut(cutSeed);
            medium.close();
            medium = after;
            disk = disk.cut(cutSeed ^ 0x5eed);
        }
        Cache last = Cache.open(medium, disk, CacheOptions.defaults().withParallel(1));
        model.verifyAfterCut(last, seed + " at the end");
        last.close();
        medium.close();
        System.err.println("MediumFaultModelTest " + seed + ": " + failedRounds + " of " + rounds
                + " rounds saw the cache fail");
        assertThat(failedRounds).as("%s: rounds in which a persist failure reached the cache", seed).isPositive();
    }

    /** A write, trim, zero or flush returned normally: not allowed once the cache has failed. */
    private static void acknowledged(boolean failedSeen, String what) {
        if (failedSeen) {
            fail(what + " succeeded after the cache reported a failed persist");
        }
    }

    private static long[] pick(SplittableRandom r) {
        int sectors = r.nextInt(4) == 0 ? 1 + r.nextInt(2048) : 1 + r.nextInt(32);
        long len = (long) sectors * SECTOR;
        long start = r.nextLong(DEVICE - len + 1);
        start -= start % SECTOR;
        return new long[] {start, len};
    }
}
