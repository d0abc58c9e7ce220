package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.FileBackingDevice;
import io.pmcache.media.PowerCutMedium;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
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
            long device = descriptorsOn(file); // the device's own
            long open = -1;
            for (int i = 0; i < 40; i++) {
                try (Cache c = Cache.open(medium, backing, CacheOptions.defaults().withParallel(1))) {
                    c.write(i * 4096L, MemorySegment.ofArray(new byte[4096]), false);
                    c.flush();
                    long now = descriptorsOn(file);
                    if (open < 0) {
                        open = now;
                        assertThat(open).as("a cache takes one flusher").isEqualTo(device + 1);
                    }
                    assertThat(now).as("descriptors on the backing file while cache %d is open", i).isEqualTo(open);
                }
                assertThat(descriptorsOn(file)).as("descriptors after cache %d closed", i).isEqualTo(device);
            }
        }
        assertThat(descriptorsOn(file)).isZero();
    }

    /** Descriptors of this process ({@code /proc/self/fd}) open on {@code file}. */
    private static long descriptorsOn(Path file) throws IOException {
        Path real = file.toRealPath();
        try (var fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.filter(fd -> {
                try {
                    return Files.readSymbolicLink(fd).equals(real);
                } catch (IOException e) {
                    return false; // closed meanwhile
                }
            }).count();
        }
    }
}
