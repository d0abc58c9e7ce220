package io.pmcache.backing;

import io.pmcache.os.LinuxFiles;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;

/** {@link FileBackingDevice#writeBehind} through {@link DirectWriteBehind} (O_DIRECT, io_uring). */
class DirectWriteBehindTest {
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    /** A directory on a disk-backed file system when there is one (tmpfs takes O_DIRECT only since Linux 6.6). */
    private Path backingDir() throws IOException {
        Path varTmp = Path.of("/var/tmp");
        return Files.isDirectory(varTmp) && Files.isWritable(varTmp)
                ? Files.createTempDirectory(varTmp, "pmcache-direct-test") : dir;
    }

    private static void deleteTree(Path p) throws IOException {
        try (var files = Files.walk(p)) {
            for (Path f : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(f);
            }
        }
    }

    /**
     * Random writes behind (overlapping each other, aligned and not, from native and heap memory),
     * plain writes, write-zeroes, reads and flushes against a byte model: every read sees the latest
     * write, however many direct writes were in flight. The seed is printed on failure.
     */
    @Test
    void writesBehindLandInTheOrderTheyWereMadeAndReadsSeeThem() throws IOException {
        long seed = System.nanoTime();
        Path d = backingDir();
        try (Arena arena = Arena.ofConfined()) {
            int size = 256 * BLOCK;
            byte[] model = new byte[size];
            // Memory the writes are made from stays unchanged until the next flush, as the contract asks:
            // each write behind takes fresh memory, freed with the arena.
            try (FileBackingDevice dev = FileBackingDevice.createSparse(d.resolve("backing"), size)) {
                SplittableRandom r = new SplittableRandom(seed);
                boolean direct = false;
                for (int op = 0; op < 4000; op++) {
                    int kind = r.nextInt(100);
                    boolean aligned = r.nextInt(10) > 0;
                    int len = aligned ? BLOCK * (1 + r.nextInt(r.nextInt(8) == 0 ? 64 : 4)) : 512 * (1 + r.nextInt(16));
                    len = Math.min(len, size);
                    int at = aligned ? BLOCK * r.nextInt((size - len) / BLOCK + 1) : 512 * r.nextInt((size - len) / 512 + 1);
                    if (kind < 70) {
                        MemorySegment src = r.nextInt(20) == 0 ? MemorySegment.ofArray(new byte[len])
                                : arena.allocate(len, BLOCK);
                        byte fill = (byte) r.nextInt(256);
                        src.fill(fill);
                        src.set(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, 0, op);
                        MemorySegment.copy(src, 0, MemorySegment.ofArray(model), at, len);
                        dev.writeBehind(at, src);
                        direct |= dev.writesDirectly();
                    } else if (kind < 80) {
                        byte[] b = new byte[len];
                        r.nextBytes(b);
                        System.arraycopy(b, 0, model, at, len);
                        dev.write(at, MemorySegment.ofArray(b), false);
                    } else if (kind < 85) {
                        java.util.Arrays.fill(model, at, at + len, (byte) 0);
                        dev.writeZeroes(at, len, false);
                    } else if (kind < 97) {
                        byte[] b = new byte[len];
                        dev.read(at, MemorySegment.ofArray(b));
                        assertThat(MemorySegment.ofArray(b).mismatch(MemorySegment.ofArray(model).asSlice(at, len)))
                                .as("seed %d op %d: read [%d, +%d)", seed, op, at, len).isEqualTo(-1L);
                    } else {
                        dev.flush();
                    }
                }
                dev.flush();
                assumeThat(direct).as("io_uring and O_DIRECT available on %s", d).isTrue();
            }
            try (FileBackingDevice dev = FileBackingDevice.open(d.resolve("backing"), true)) {
                byte[] back = new byte[size];
                dev.read(0, MemorySegment.ofArray(back));
                assertThat(MemorySegment.ofArray(back).mismatch(MemorySegment.ofArray(model)))
                        .as("seed %d: the file after close", seed).isEqualTo(-1L);
            }
        } finally {
            if (!d.equals(dir)) {
                deleteTree(d);
            }
        }
    }

    /**
     * A write the kernel fails fails the next flush, naming the file and the write, once; later
     * writes go through the page cache.
     */
    @Test
    void aFailedDirectWriteFailsTheNextFlushOnce() throws IOException {
        Path f = dir.resolve("backing");
        Files.write(f, new byte[16 * BLOCK]);
        int readOnlyFd = LinuxFiles.openReadOnly(f); // writes through it fail with EBADF
        DirectWriteBehind d = DirectWriteBehind.tryOpen(f, readOnlyFd);
        assumeThat(d).as("io_uring available").isNotNull();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = arena.allocate(2 * BLOCK, BLOCK);
            assertThat(d.write(BLOCK, src)).isTrue();
            assertThatThrownBy(d::settle).isInstanceOf(IOException.class)
                    .hasMessageContaining(f.toString())
                    .hasMessageContaining("direct write at [4096, 12288) failed: errno 9 (EBADF)")
                    .hasMessageContaining("must be written again");
            d.settle(); // reported once
            assertThat(d.write(0, src)).as("after a failed write, through the page cache").isFalse();
        } finally {
            d.close();
        }
        assertThat(d.stopped()).as("the ring is still sound after a failed write: close stops its thread").isTrue();
    }

    /** What cannot go directly is left to the page cache: heap memory, unaligned memory or positions. */
    @Test
    void onlyAlignedNativeMemoryGoesDirectly() throws IOException {
        Path f = dir.resolve("backing");
        Files.write(f, new byte[16 * BLOCK]);
        DirectWriteBehind d = DirectWriteBehind.tryOpen(f, LinuxFiles.openReadOnly(f));
        assumeThat(d).as("io_uring available").isNotNull();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = arena.allocate(2 * BLOCK, BLOCK);
            assertThat(d.write(1, src)).as("unaligned position").isFalse();
            assertThat(d.write(0, MemorySegment.ofArray(new byte[BLOCK]))).as("heap memory").isFalse();
            assertThat(d.write(0, src.asSlice(512, BLOCK))).as("unaligned memory").isFalse();
        } finally {
            d.close();
        }
    }
}
