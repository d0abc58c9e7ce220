package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.pmcache.backing.FileBackingDevice;
import io.pmcache.testing.Hangs;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The backing file is truncated under a running cache (issue 9: "a truncated backing file reads
 * as zeros instead of EIO"): a read miss past the new end fails instead of returning zeros,
 * writeback fails and says so in the status instead of advancing over data the file lost, the
 * dirty data stays readable in the cache, and once the file is given its size back and the cache
 * restarted, writeback puts the dirty data where it belongs.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class ShrunkBackingFileTest {
    private static final long MIB = Rig.MIB;
    private static final int DEVICE = (int) (8 * MIB);

    @TempDir
    Path dir;

    @Test
    void aShrunkBackingFileFailsReadsAndWritebackAndLosesNoDirtyData(Seed seed) throws Exception {
        SplittableRandom r = seed.random();
        Path file = dir.resolve("backing.img");
        byte[] content = new byte[DEVICE];
        r.nextBytes(content);
        Files.write(file, content);
        byte[] dirty = new byte[(int) MIB];
        r.nextBytes(dirty);
        FileBackingDevice backing = FileBackingDevice.open(file, false);
        Rig rig = Rig.format(16, backing, false);
        try {
            rig.open(new CacheOptions(1, 50, true, true));
            assertThat(rig.read(5 * MIB, 4096)).as("a miss before the truncation")
                    .isEqualTo(Arrays.copyOfRange(content, (int) (5 * MIB), (int) (5 * MIB) + 4096));
            long errorsBefore = rig.cache.status().backingErrors();
            try (var raf = new RandomAccessFile(file.toFile(), "rw")) {
                raf.setLength(4 * MIB);
            }
            rig.cache.write(0, MemorySegment.ofArray(dirty), false);
            rig.cache.flush();

            assertThatThrownBy(() -> rig.read(6 * MIB, 4096)).as("%s: a miss past the new end", seed)
                    .isInstanceOf(IOException.class).hasMessageContaining(file.toString())
                    .hasMessageContaining(String.valueOf(6 * MIB));
            Hangs.await(() -> rig.cache.status().backingErrors() > errorsBefore, Duration.ofSeconds(60),
                    () -> seed + ": writeback reports the shrunk backing file", Hangs.cacheThreadsAnd("pmcache-"));
            CacheStatus st = rig.cache.status();
            assertThat(st.lastBackingError()).as("%s: the status names the file", seed).contains(file.toString());
            assertThat(st.dirtyBytes()).as("%s: the dirty data stays dirty", seed).isEqualTo(MIB);
            assertThat(rig.read(0, (int) MIB)).as("%s: and readable", seed).isEqualTo(dirty);
            rig.closeCache();
            backing.close();
            assertThat(Files.size(file)).as("%s: writeback did not grow the file back behind the error", seed)
                    .isLessThan(DEVICE);

            // The operator gives the file its size back (what was cut off is lost) and restarts.
            try (var raf = new RandomAccessFile(file.toFile(), "rw")) {
                raf.setLength(DEVICE);
            }
            try (FileBackingDevice again = FileBackingDevice.open(file, false)) {
                Cache cache = Cache.open(rig.medium, again, new CacheOptions(1, 50, true, true));
                try {
                    cache.flushAll(left -> { });
                    assertThat(cache.status().dirtyBytes()).isZero();
                } finally {
                    cache.close();
                }
            }
        } finally {
            rig.closeCache();
            backing.close();
            rig.medium.close();
        }
        byte[] after = Files.readAllBytes(file);
        assertThat(Arrays.copyOf(after, (int) MIB)).as("%s: the dirty data was written back", seed).isEqualTo(dirty);
    }
}
