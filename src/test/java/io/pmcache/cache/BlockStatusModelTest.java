package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.device.BlockStatus;
import io.pmcache.device.BlockStatusCheck;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Block status of the cache against a disk model (a byte array: what the cache must read as):
 * random writes (some of them all zeros, some unaligned), trims, write-zeroes, reads (which fill the cache), flushes, drains, detaches,
 * gc_percent changes, clean restarts and process crashes, with writeback and gc running in the
 * background, over a backing device that tracks its holes ({@link MemoryBackingDevice}).
 *
 * <p>After every operation, random ranges (and now and then the whole device) are queried with
 * random extent limits, and {@link BlockStatusCheck} checks each answer: well formed, and ZERO or
 * HOLE only where the model reads zeros (never a hole over data, wherever the data is: dirty,
 * clean, being written back, or only on the backing device). A trim or write-zeroes must then
 * show as HOLE at once (the index holds it), so the test fails if the cache answered DATA
 * everywhere; over the run some HOLE must also come from the backing device after a detach.
 * {@code -Dpmcache.seed=N} repeats a seed; {@code -Dpmcache.blockstatus.ops} sets the count.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class BlockStatusModelTest {
    private static final long MIB = 1L << 20;
    private static final int[] MAX_EXTENTS = {1, 3, 16, 1024};

    @Test
    void reportedZerosAndHolesReadAsZeros(Seed seed) throws IOException {
        int size = (int) (16 * MIB);
        int ops = Integer.getInteger("pmcache.blockstatus.ops", 3000);
        SplittableRandom r = seed.random();
        byte[] model = new byte[size]; // what the cache must read as
        CacheOptions options = CacheOptions.defaults().withParallel(2).withGcPercent(r.nextInt(91));
        long holeBytesAfterDetach = 0;
        try (CacheHarness h = CacheHarness.create(24, new MemoryBackingDevice(size, 7), options, r.nextBoolean())) {
            BlockStatusCheck.check(h, 0, size, 1024, model, seed + " fresh");
            assertThat(h.blockStatus(0, size, 1024)).as("%s: a fresh cache over an empty sparse device", seed)
                    .containsExactly(new BlockStatus(0, size, BlockStatus.Kind.HOLE));
            for (int op = 0; op < ops; op++) {
                String where = seed + " op " + op;
                long[] io = pick(r, size);
                double p = r.nextDouble();
                if (p < 0.40) {
                    byte[] data = new byte[(int) io[1]];
                    if (r.nextInt(5) != 0) { // else zeros written as data: DATA or ZERO, never wrong
                        r.nextBytes(data);
                    }
                    System.arraycopy(data, 0, model, (int) io[0], data.length);
                    h.write(io[0], MemorySegment.ofArray(data), r.nextInt(8) == 0);
                } else if (p < 0.55) {
                    if (r.nextBoolean()) {
                        h.trim(io[0], io[1]);
                    } else {
                        h.writeZeroes(io[0], io[1], r.nextInt(4) == 0);
                    }
                    java.util.Arrays.fill(model, (int) io[0], (int) (io[0] + io[1]), (byte) 0);
                    List<BlockStatus> s = BlockStatusCheck.check(h, io[0], io[1], 1024, model, where);
                    assertThat(s).as("%s: a range just zeroed", where)
                            .containsExactly(new BlockStatus(io[0], io[1], BlockStatus.Kind.HOLE));
                } else if (p < 0.80) {
                    byte[] got = new byte[(int) io[1]];
                    h.read(io[0], MemorySegment.ofArray(got));
                    assertThat(java.util.Arrays.mismatch(got, 0, got.length, model, (int) io[0],
                            (int) (io[0] + io[1]))).as("%s: read [%d, +%d)", where, io[0], io[1]).isEqualTo(-1);
                } else if (p < 0.86) {
                    h.flush();
                } else if (p < 0.91) {
                    h.flushAll();
                } else if (p < 0.92) {
                    h.cache().detach(left -> { });
                    List<BlockStatus> all = BlockStatusCheck.check(h, 0, size, 1024, model, where + " detached");
                    holeBytesAfterDetach += BlockStatusCheck.bytes(all, BlockStatus.Kind.HOLE);
                } else if (p < 0.94) {
                    h.cache().setGcPercent(r.nextInt(91));
                } else if (p < 0.95) {
                    h.reopen();
                } else if (p < 0.96) {
                    h.crash();
                } else {
                    byte[] data = new byte[(int) io[1]];
                    r.nextBytes(data);
                    System.arraycopy(data, 0, model, (int) io[0], data.length);
                    h.write(io[0], MemorySegment.ofArray(data), false);
                }
                for (int q = 0; q < 3; q++) {
                    long[] range = q == 0 && op % 64 == 0 ? new long[] {0, size} : pick(r, size);
                    BlockStatusCheck.check(h, range[0], range[1], MAX_EXTENTS[r.nextInt(MAX_EXTENTS.length)],
                            model, where);
                }
            }
            BlockStatusCheck.check(h, 0, size, 1024, model, seed + " at the end");
            h.cache().detach(left -> { });
            List<BlockStatus> all = BlockStatusCheck.check(h, 0, size, 1024, model, seed + " detached at the end");
            holeBytesAfterDetach += BlockStatusCheck.bytes(all, BlockStatus.Kind.HOLE);
        }
        assertThat(holeBytesAfterDetach).as("%s: holes reported from the backing device after detaches", seed)
                .isPositive();
    }

    /** A range: sectors or odd bytes, small to 1 MiB, half of them near the start or a 4 MiB boundary. */
    private static long[] pick(SplittableRandom r, int size) {
        long len;
        double q = r.nextDouble();
        if (q < 0.5) {
            len = 1 + r.nextInt(8192);
        } else if (q < 0.9) {
            len = 512L * (1 + r.nextInt(256));
        } else {
            len = 1 + r.nextInt((int) MIB);
        }
        long start = switch (r.nextInt(3)) {
            case 0 -> r.nextLong(2 * MIB);
            case 1 -> 4 * MIB - 256 * 1024 + r.nextLong(512 * 1024);
            default -> r.nextLong(size - len + 1);
        };
        if (r.nextBoolean()) {
            start -= start % 512;
        }
        start = Math.min(start, size - len);
        return new long[] {start, len};
    }
}
