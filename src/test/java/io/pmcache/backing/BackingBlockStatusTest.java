package io.pmcache.backing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.pmcache.device.BlockStatus;
import io.pmcache.device.BlockStatus.Kind;
import io.pmcache.os.LinuxFiles;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The backing devices report their holes: a sparse file's through SEEK_DATA/SEEK_HOLE (skipped
 * where the temp directory's file system does not keep holes), the memory device's per 4 KiB
 * block; written bytes are DATA.
 */
class BackingBlockStatusTest {
    private static final long MIB = 1 << 20;

    @TempDir
    Path dir;

    @Test
    void fileHolesAreHolesAndWrittenBlocksData() throws IOException {
        assumeTrue(LinuxFiles.AVAILABLE, "needs Linux");
        try (FileBackingDevice d = FileBackingDevice.createSparse(dir.resolve("b.img"), 8 * MIB)) {
            assumeTrue(d.blockStatus(0, 8 * MIB, 16).equals(List.of(new BlockStatus(0, 8 * MIB, Kind.HOLE))),
                    "the temp directory's file system does not report holes");
            d.write(MIB, MemorySegment.ofArray(new byte[] {1, 2, 3}), false);
            d.write(3 * MIB, MemorySegment.ofArray(new byte[(int) MIB]), false); // zeros written: data
            assertThat(d.blockStatus(0, 8 * MIB, 16)).containsExactly(
                    new BlockStatus(0, MIB, Kind.HOLE),
                    new BlockStatus(MIB, 4096, Kind.DATA),
                    new BlockStatus(MIB + 4096, 2 * MIB - 4096, Kind.HOLE),
                    new BlockStatus(3 * MIB, MIB, Kind.DATA),
                    new BlockStatus(4 * MIB, 4 * MIB, Kind.HOLE));
            // a range inside, and a cap of two extents: a prefix
            assertThat(d.blockStatus(MIB + 1, 3 * MIB, 2)).containsExactly(
                    new BlockStatus(MIB + 1, 4095, Kind.DATA),
                    new BlockStatus(MIB + 4096, 2 * MIB - 4096, Kind.HOLE));
            d.trim(3 * MIB, MIB);
            d.writeZeroes(MIB, 4096, false);
            assumeTrue(d.punchesHoles(), "no hole punching here");
            assertThat(d.blockStatus(0, 8 * MIB, 16)).containsExactly(new BlockStatus(0, 8 * MIB, Kind.HOLE));
        }
    }

    @Test
    void readOnlyFileReportsHolesToo() throws IOException {
        assumeTrue(LinuxFiles.AVAILABLE, "needs Linux");
        Path p = dir.resolve("ro.img");
        try (FileBackingDevice d = FileBackingDevice.createSparse(p, 4 * MIB)) {
            d.write(2 * MIB, MemorySegment.ofArray(new byte[4096]).fill((byte) 1), true);
        }
        try (FileBackingDevice d = FileBackingDevice.open(p, true)) {
            List<BlockStatus> s = d.blockStatus(0, 4 * MIB, 16);
            assumeTrue(s.size() > 1, "the temp directory's file system does not report holes");
            assertThat(s).contains(new BlockStatus(2 * MIB, 4096, Kind.DATA));
            assertThat(s.get(0)).isEqualTo(new BlockStatus(0, 2 * MIB, Kind.HOLE));
        }
    }

    @Test
    void aShrunkFileIsAnErrorNotAHole() throws IOException {
        assumeTrue(LinuxFiles.AVAILABLE, "needs Linux");
        Path p = dir.resolve("shrinks.img");
        try (FileBackingDevice d = FileBackingDevice.createSparse(p, 4 * MIB)) {
            d.write(3 * MIB, MemorySegment.ofArray(new byte[4096]).fill((byte) 1), true);
            try (var raf = new java.io.RandomAccessFile(p.toFile(), "rw")) {
                raf.setLength(2 * MIB);
            }
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> d.blockStatus(2 * MIB, 2 * MIB, 16))
                    .isInstanceOf(IOException.class).hasMessageContaining("shrank");
        }
        Files.delete(p);
    }

    @Test
    void memoryDeviceTracksBlocks() throws IOException {
        try (MemoryBackingDevice d = new MemoryBackingDevice(64 * 4096, 1)) {
            assertThat(d.blockStatus(0, 64 * 4096, 8)).containsExactly(new BlockStatus(0, 64 * 4096, Kind.HOLE));
            d.write(4096 + 100, MemorySegment.ofArray(new byte[5000]), false); // touches blocks 1 and 2
            assertThat(d.blockStatus(0, 64 * 4096, 8)).containsExactly(
                    new BlockStatus(0, 4096, Kind.HOLE),
                    new BlockStatus(4096, 2 * 4096, Kind.DATA),
                    new BlockStatus(3 * 4096, 61 * 4096, Kind.HOLE));
            d.trim(4096 + 1, 2 * 4096); // [4097, 12289) covers block 2 whole, block 1 only in part
            assertThat(d.blockStatus(0, 64 * 4096, 8)).containsExactly(
                    new BlockStatus(0, 4096, Kind.HOLE),
                    new BlockStatus(4096, 4096, Kind.DATA),
                    new BlockStatus(2 * 4096, 62 * 4096, Kind.HOLE));
            d.writeZeroes(4096, 4096, false);
            assertThat(d.blockStatus(0, 64 * 4096, 8)).containsExactly(new BlockStatus(0, 64 * 4096, Kind.HOLE));
        }
    }
}
