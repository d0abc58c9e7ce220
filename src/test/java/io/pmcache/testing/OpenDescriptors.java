package io.pmcache.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Descriptors this process holds open on a file (Linux {@code /proc/self/fd}). */
public final class OpenDescriptors {
    private OpenDescriptors() {
    }

    /** How many descriptors of this process are open on {@code file}. */
    public static long on(Path file) throws IOException {
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
