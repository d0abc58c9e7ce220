package io.pmcache.bench;

import io.pmcache.media.MappedFileMedium;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;

/** Scratch files for the benchmarks: in {@code /dev/shm} when it exists, else in java.io.tmpdir. */
final class BenchFiles {
    private BenchFiles() {
    }

    static Path dir() throws IOException {
        Path shm = Path.of("/dev/shm");
        Path base = Files.isDirectory(shm) && Files.isWritable(shm) ? shm : Path.of(System.getProperty("java.io.tmpdir"));
        return Files.createTempDirectory(base, "pmcache-jmh-");
    }

    /**
     * A medium file of {@code size} bytes, mapped and every page touched once, so that the benchmark
     * measures stores into resident mapped memory (the steady state of a cache that has run for a
     * while) rather than the kernel's first-touch page faults.
     */
    static MappedFileMedium prefaulted(Path file, long size) throws IOException {
        MappedFileMedium m = MappedFileMedium.create(file, size);
        MemorySegment s = m.segment();
        for (long off = 0; off < size; off += 4096) {
            s.set(ValueLayout.JAVA_BYTE, off, (byte) 0);
        }
        return m;
    }

    static void fillRandom(MemorySegment s, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        for (long off = 0; off + 8 <= s.byteSize(); off += 8) {
            s.set(ValueLayout.JAVA_LONG_UNALIGNED, off, r.nextLong());
        }
    }

    static void deleteTree(Path dir) {
        if (dir == null) {
            return;
        }
        try (var files = Files.list(dir)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                Files.deleteIfExists(p);
            }
            Files.deleteIfExists(dir);
        } catch (IOException ignored) {
            // scratch space; best effort
        }
    }
}
