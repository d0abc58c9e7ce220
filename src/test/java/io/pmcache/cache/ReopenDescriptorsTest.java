package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.FileBackingDevice;
import io.pmcache.media.PowerCutMedium;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import io.pmcache.testing.OpenDescriptors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A long-lived backing device reopened by many caches in turn (a volume detached and attached
 * again, {@code invalidate}, a library user's open/close): each cache gives back the flusher it took
 * from the device ({@code BlockDevice.newFlusher}) when it closes, so the process's descriptors on
 * the backing file do not grow with the number of opens.
 */
class ReopenDescriptorsTest {
    private static final long MIB = 1L << 20;

    @TempDir
    Path dir;

    @Test
    void reopeningACacheManyTimesOnOneDeviceKeepsTheDescriptorsItHolds() throws IOException {
        Path file = dir.resolve("backing.img");
        try (PowerCutMedium medium = PowerCutMedium.create(16 * MIB);
             FileBackingDevice backing = FileBackingDevice.createSparse(file, 8 * MIB)) {
            Cache.format(medium, backing, new FormatOptions(MIB, false));
            // The device's own descriptors, its direct writes' included: it opens that one at the first
            // write behind, which any cache's writeback may make at any time.
            try (Arena arena = Arena.ofConfined()) {
                backing.writeBehind(0, arena.allocate(4096, 4096));
                backing.flush();
            }
            long device = OpenDescriptors.on(file);
            long open = -1;
            for (int i = 0; i < 40; i++) {
                try (Cache c = Cache.open(medium, backing, CacheOptions.defaults().withParallel(1))) {
                    c.write(i * 4096L, MemorySegment.ofArray(new byte[4096]), false);
                    c.flush();
                    long now = OpenDescriptors.on(file);
                    if (open < 0) {
                        open = now;
                        assertThat(open).as("a cache takes one flusher").isEqualTo(device + 1);
                    }
                    assertThat(now).as("descriptors on the backing file while cache %d is open", i).isEqualTo(open);
                }
                assertThat(OpenDescriptors.on(file)).as("descriptors after cache %d closed", i).isEqualTo(device);
            }
        }
        assertThat(OpenDescriptors.on(file)).isZero();
    }
}
