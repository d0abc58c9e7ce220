package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The dirty-byte count is striped (every write adds to it): status still reports it exactly —
 * after concurrent writes, after a replay, and once writeback drained it.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class DirtyBytesTest {
    private static final long MIB = Rig.MIB;
    private static final long DEVICE = 64 * MIB;
    private static final int THREADS = 4;

    @Test
    void statusReportsExactDirtyBytesAfterWritesReplayAndWriteback(Seed seed) throws Exception {
        SplittableRandom r = seed.random();
        try (Rig rig = Rig.format(96, DEVICE, r.nextBoolean())) {
            rig.open(new CacheOptions(2, 70, false, false));
            AtomicLong written = new AtomicLong();
            List<Thread> threads = new ArrayList<>();
            List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
            for (int t = 0; t < THREADS; t++) {
                SplittableRandom tr = r.split();
                Thread th = new Thread(() -> {
                    try {
                        for (int i = 0; i < 150; i++) {
                            int length = 512 * (1 + tr.nextInt(64));                  // 512 B .. 32 KiB
                            long offset = 512L * tr.nextLong((DEVICE - length) / 512); // may cross a range end
                            if (tr.nextInt(8) == 0) {
                                rig.cache.writeZeroes(offset, length, false);
                            } else {
                                rig.cache.write(offset, MemorySegment.ofArray(new byte[length]), false);
                            }
                            written.addAndGet(length);
                        }
                    } catch (Throwable e) {
                        failures.add(e);
                    }
                });
                threads.add(th);
                th.start();
            }
            for (Thread th : threads) {
                th.join();
            }
            assertThat(failures).as("%s", seed).isEmpty();
            long expected = written.get();
            assertThat(rig.cache.status().dirtyBytes()).as("%s: after the writes", seed).isEqualTo(expected);

            rig.closeCache();
            rig.open(new CacheOptions(2, 70, false, false));
            assertThat(rig.cache.status().dirtyBytes()).as("%s: after replay", seed).isEqualTo(expected);

            rig.closeCache();
            rig.open(new CacheOptions(2, 70, true, true));
            List<Long> progress = new ArrayList<>();
            rig.cache.flushAll(progress::add);
            assertThat(rig.cache.status().dirtyBytes()).as("%s: after writeback", seed).isZero();
            assertThat(progress).as("progress reported").isNotEmpty();
            assertThat(progress.getLast()).isZero();
        }
    }
}
