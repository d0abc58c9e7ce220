package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * kill -9: writes acknowledged but never flushed survive a process crash (the medium is reopened
 * from its current mapped bytes, nothing persisted on purpose), with and without writeback and gc
 * wrapping the log underneath.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ProcessCrashTest {
    private static final long MIB = CacheHarness.MIB;
    private static final int SECTOR = WriteHistory.SECTOR;

    @Test
    void unflushedWritesSurviveACrash(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        int device = (int) (64 * MIB);
        WriteHistory model = new WriteHistory(device);
        try (CacheHarness h = CacheHarness.create(32, device, new CacheOptions(2, 90, true, true), r.nextBoolean())) {
            // Mostly within the cache: the writes are still in open ksets or just sealed at each
            // crash. (Writeback and gc stay on only because verifying reads the whole device, and
            // its read-miss fills need room.)
            for (int round = 0; round < 3; round++) {
                long written = 0;
                while (written < 4 * MIB) {
                    written += write(h, model, r);
                }
                h.crash();
                verify(h, model, seed + " round " + round);
            }
        }
    }

    @Test
    void unflushedWritesSurviveACrashWhileWritebackAndGcWrapTheLog(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        int device = (int) (64 * MIB);
        WriteHistory model = new WriteHistory(device);
        try (CacheHarness h = CacheHarness.create(16, device, new CacheOptions(2, 20, true, true), r.nextBoolean())) {
            long reclaimed = 0;
            for (int round = 0; round < 6; round++) {
                long written = 0;
                long target = (4 + r.nextInt(40)) * MIB; // up to ~3 times the cache between crashes
                while (written < target) {
                    written += write(h, model, r);
                }
                // Counters start over with each open: add up what each cache instance reclaimed.
                reclaimed += h.cache().status().segmentsReclaimed();
                h.crash();
                verify(h, model, seed + " round " + round);
            }
            reclaimed += h.cache().status().segmentsReclaimed();
            assertThat(reclaimed).as("gc ran").isPositive();
            h.cache().flushAll(left -> { });
            verify(h, model, seed + " after drain");
        }
    }

    /** A write of 512 B .. 1 MiB, often across a 4 MiB range boundary, sector-aligned; returns its length. */
    private static int write(CacheHarness h, WriteHistory model, SplittableRandom r) throws IOException {
        int len = SECTOR * switch (r.nextInt(4)) {
            case 0 -> 1 + r.nextInt(8);
            case 1 -> 8 + r.nextInt(120);
            case 2 -> 128 + r.nextInt(1920);
            default -> 2048;
        };
        long off;
        if (r.nextInt(3) == 0) { // across a 4 MiB boundary
            long boundary = (1 + r.nextInt(model.size() / (int) (4 * MIB) - 1)) * 4 * MIB;
            off = boundary - SECTOR * (1 + r.nextInt(len / SECTOR));
        } else {
            off = r.nextLong((model.size() - len) / SECTOR + 1) * SECTOR;
        }
        h.write(off, MemorySegment.ofArray(model.write(off, len)), false);
        return len;
    }

    private static void verify(CacheHarness h, WriteHistory model, String where) throws IOException {
        int chunk = (int) (4 * MIB);
        for (int off = 0; off < model.size(); off += chunk) {
            byte[] got = new byte[chunk];
            h.read(off, MemorySegment.ofArray(got));
            int bad = Arrays.mismatch(got, 0, chunk, model.current, off, off + chunk);
            assertThat(bad).as("%s: first wrong byte after crash at %d", where, bad < 0 ? -1 : off + bad)
                    .isEqualTo(-1);
        }
    }
}
