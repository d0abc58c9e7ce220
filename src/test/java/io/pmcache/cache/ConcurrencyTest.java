package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Several threads reading, writing, flushing and trimming overlapping ranges of a small cache
 * while writeback and gc churn. The test holds a lock per 4 KiB block around each cache call and
 * its model update (locks taken in block order), so the model knows the exact content: every
 * read must equal it, and so must the device after join, after reopen, and the drained disk.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ConcurrencyTest {
    private static final long MIB = CacheHarness.MIB;
    private static final int BLOCK = 4096;
    private static final int SECTOR = 512;

    @Test
    void threadsOnOverlappingRangesMatchTheModel(Seed seed) throws Exception {
        int device = (int) (24 * MIB);
        int threads = 6;
        int opsPerThread = 2500;
        byte[] model = new byte[device];
        ReentrantLock[] locks = new ReentrantLock[device / BLOCK];
        for (int i = 0; i < locks.length; i++) {
            locks[i] = new ReentrantLock();
        }
        AtomicInteger ids = new AtomicInteger();
        long base = seed.value();
        try (CacheHarness h = CacheHarness.create(16, device, new CacheOptions(4, 40, true, true), false)) {
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                SplittableRandom r = new SplittableRandom(base + t);
                done.add(pool.submit(() -> {
                    for (int op = 0; op < opsPerThread; op++) {
                        int sectors = r.nextInt(5) == 0 ? 1 + r.nextInt(512) : 1 + r.nextInt(24);
                        int len = sectors * SECTOR;
                        long off = hotOffset(r, device, len);
                        int kind = r.nextInt(100);
                        if (kind < 3) {
                            h.flush();
                            continue;
                        }
                        int first = (int) (off / BLOCK);
                        int last = (int) ((off + len - 1) / BLOCK);
                        for (int b = first; b <= last; b++) {
                            locks[b].lock();
                        }
                        try {
                            if (kind < 50) {
                                byte[] data = new byte[len];
                                DiskModel.fill(data, 0, ids.incrementAndGet(), off, len, false);
                                h.write(off, MemorySegment.ofArray(data), r.nextInt(20) == 0);
                                System.arraycopy(data, 0, model, (int) off, len);
                            } else if (kind < 56) {
                                h.trim(off, len);
                                Arrays.fill(model, (int) off, (int) off + len, (byte) 0);
                            } else {
                                byte[] got = new byte[len];
                                h.read(off, MemorySegment.ofArray(got));
                                int bad = Arrays.mismatch(got, 0, len, model, (int) off, (int) off + len);
                                if (bad >= 0) {
                                    throw new AssertionError(seed + ": read [" + off + ", +" + len
                                            + ") differs from the model at byte " + (off + bad));
                                }
                            }
                        } finally {
                            for (int b = first; b <= last; b++) {
                                locks[b].unlock();
                            }
                        }
                    }
                    return null;
                }));
            }
            pool.shutdown();
            for (Future<?> f : done) {
                f.get();
            }
            CacheStatus st = h.cache().status();
            assertThat(st.segmentsReclaimed()).as("gc churned").isPositive();
            assertThat(st.writebackBytes()).as("writeback churned").isPositive();
            h.flush();
            verify(h, model, seed + " after join");
            h.reopen();
            verify(h, model, seed + " after reopen");
            h.cache().flushAll(left -> { });
            byte[] disk = new byte[device];
            h.backing().read(0, MemorySegment.ofArray(disk));
            assertThat(Arrays.mismatch(disk, model)).as("%s: drained disk vs model", seed).isEqualTo(-1);
        }
    }

    /** Mostly the first 2 MiB and around the 4 MiB and 8 MiB range boundaries; sometimes anywhere. */
    private static long hotOffset(SplittableRandom r, int device, int len) {
        long off = switch (r.nextInt(4)) {
            case 0 -> r.nextLong(2 * MIB);
            case 1 -> 4 * MIB - 128 * 1024 + r.nextLong(256 * 1024);
            case 2 -> 8 * MIB - 64 * 1024 + r.nextLong(128 * 1024);
            default -> r.nextLong(device);
        };
        off = Math.min(off, device - len);
        return off - off % SECTOR;
    }

    private static void verify(CacheHarness h, byte[] model, String where) throws IOException {
        int chunk = (int) (4 * MIB);
        for (int off = 0; off < model.length; off += chunk) {
            byte[] got = new byte[chunk];
            h.read(off, MemorySegment.ofArray(got));
            int bad = Arrays.mismatch(got, 0, chunk, model, off, off + chunk);
            assertThat(bad).as("%s: first wrong byte at %d", where, bad < 0 ? -1 : off + bad).isEqualTo(-1);
        }
    }
}
