package io.pmcache.backing;

import io.pmcache.testing.OpenDescriptors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicReference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class FileBackingDeviceTest {

    @TempDir
    Path dir;

    @Test
    void punchHoleZeroesTheRangeAndKeepsTheSize() throws IOException {
        Path f = dir.resolve("b");
        byte[] ones = new byte[1 << 20];
        Arrays.fill(ones, (byte) 1);
        try (FileBackingDevice d = FileBackingDevice.createSparse(f, 1 << 20)) {
            d.write(0, MemorySegment.ofArray(ones), true);
            d.trim(4096 + 7, 300_000);
            d.writeZeroes(700_001, 50_000, true);
            assertThat(d.punchesHoles()).as("fallocate punch-hole works on %s", dir).isTrue();
            byte[] back = new byte[1 << 20];
            d.read(0, MemorySegment.ofArray(back));
            byte[] want = ones.clone();
            Arrays.fill(want, 4096 + 7, 4096 + 7 + 300_000, (byte) 0);
            Arrays.fill(want, 700_001, 750_001, (byte) 0);
            assertThat(MemorySegment.ofArray(back).mismatch(MemorySegment.ofArray(want))).isEqualTo(-1L);
        }
        assertThat(Files.getAttribute(f, "unix:size")).isEqualTo((long) (1 << 20));
    }

    @Test
    void fingerprintIsStableAcrossReopenAndRenameAndDiffersBetweenFiles() throws IOException {
        Path a = dir.resolve("a");
        Path b = dir.resolve("b");
        long fa;
        long fb;
        try (var da = FileBackingDevice.createSparse(a, 4096); var db = FileBackingDevice.createSparse(b, 4096)) {
            fa = da.fingerprint();
            fb = db.fingerprint();
        }
        assertThat(fa).isNotEqualTo(fb);
        Path moved = Files.move(a, dir.resolve("renamed"));
        try (var d = FileBackingDevice.open(moved, true)) {
            assertThat(d.fingerprint()).isEqualTo(fa);
        }
        Path copy = Files.copy(moved, dir.resolve("copy"));
        try (var d = FileBackingDevice.open(copy, true)) {
            assertThat(d.fingerprint()).as("a copy is another device").isNotEqualTo(fa);
        }
    }

    /**
     * A flusher of its own has a descriptor of its own (Linux reports a write-out error once per
     * open file), made when the flusher is, and closed with the device. (The error itself needs a
     * failing disk: not testable here.)
     */
    @Test
    void aFlusherFlushesThroughADescriptorOfItsOwnClosedWithTheDevice() throws IOException {
        Path f = dir.resolve("b");
        FileBackingDevice d = FileBackingDevice.createSparse(f, 1 << 20);
        long before = OpenDescriptors.on(f);
        io.pmcache.device.BlockDevice.Flusher flusher = d.newFlusher();
        assertThat(OpenDescriptors.on(f)).isEqualTo(before + 1);
        d.write(4096, MemorySegment.ofArray(new byte[] {1, 2, 3}), false);
        flusher.flush();
        d.write(0, MemorySegment.ofArray(new byte[] {4}), true); // FUA: flushed through another one
        d.close();
        assertThat(OpenDescriptors.on(f)).isZero();
        assertThatThrownBy(flusher::flush).isInstanceOf(IOException.class).hasMessageContaining("closed");
        assertThat(Files.readAllBytes(f)[4097]).isEqualTo((byte) 2);
    }

    /**
     * A flusher closed on its own gives its descriptor back at once (not only when the device
     * closes), its flush then fails, and the device and its other flushers go on.
     */
    @Test
    void aClosedFlusherGivesItsDescriptorBackAndTheDeviceGoesOn() throws IOException {
        Path f = dir.resolve("c");
        try (FileBackingDevice d = FileBackingDevice.createSparse(f, 1 << 20)) {
            long before = OpenDescriptors.on(f);
            io.pmcache.device.BlockDevice.Flusher kept = d.newFlusher();
            for (int i = 0; i < 20; i++) {
                io.pmcache.device.BlockDevice.Flusher f2 = d.newFlusher();
                f2.flush();
                f2.close();
                if (i == 0) {
                    assertThatThrownBy(f2::flush).isInstanceOf(IOException.class)
                            .hasMessageContaining(f + ": flusher is closed");
                }
            }
            assertThat(OpenDescriptors.on(f)).isEqualTo(before + 1);
            d.write(0, MemorySegment.ofArray(new byte[] {5}), true);
            kept.flush();
            d.flush();
            kept.close();
            assertThat(OpenDescriptors.on(f)).isEqualTo(before);
        }
        assertThat(OpenDescriptors.on(f)).isZero();
    }

    @Test
    void createSparseRefusesAnExistingFile() throws IOException {
        Path f = Files.writeString(dir.resolve("precious"), "keep");
        assertThatThrownBy(() -> FileBackingDevice.createSparse(f, 4096))
                .isInstanceOf(FileAlreadyExistsException.class).hasMessageContaining(f.toString());
        assertThat(Files.readString(f)).isEqualTo("keep");
    }

    @Test
    void openGivesClearErrors() throws IOException {
        Path missing = dir.resolve("missing");
        assertThatThrownBy(() -> FileBackingDevice.open(missing, false))
                .isInstanceOf(NoSuchFileException.class).hasMessageContaining(missing.toString());
        assertThatThrownBy(() -> FileBackingDevice.open(dir, false))
                .isInstanceOf(IOException.class).hasMessageContaining("regular file or a block device");
        Path empty = Files.createFile(dir.resolve("empty"));
        assertThatThrownBy(() -> FileBackingDevice.open(empty, false))
                .isInstanceOf(IOException.class).hasMessageContaining("empty");
    }

    @Test
    void readOnlyDeviceReadsButRefusesChanges() throws IOException {
        Path f = dir.resolve("ro");
        try (var d = FileBackingDevice.createSparse(f, 8192)) {
            d.write(100, MemorySegment.ofArray(new byte[] {5}), true);
        }
        try (var d = FileBackingDevice.open(f, true)) {
            byte[] one = new byte[1];
            d.read(100, MemorySegment.ofArray(one));
            assertThat(one).containsExactly(5);
            assertThat(d.isReadOnly()).isTrue();
            assertThat(d.describe()).contains(f.toString()).contains("read-only").contains("8192");
            MemorySegment src = MemorySegment.ofArray(new byte[1]);
            assertThatThrownBy(() -> d.write(0, src, false)).isInstanceOf(IOException.class).hasMessageContaining("read-only");
            assertThatThrownBy(() -> d.trim(0, 1)).isInstanceOf(IOException.class).hasMessageContaining("read-only");
        }
    }

    @Test
    void closedDeviceRefusesIo() throws IOException {
        var d = FileBackingDevice.createSparse(dir.resolve("c"), 4096);
        d.trim(0, 4096);
        d.close();
        d.close();
        assertThatThrownBy(() -> d.read(0, MemorySegment.ofArray(new byte[1])))
                .isInstanceOf(IOException.class).hasMessageContaining("closed");
    }

    @Test
    void heapSegmentsOfOtherArraysWork() throws IOException {
        try (var d = FileBackingDevice.createSparse(dir.resolve("h"), 4096)) {
            d.write(8, MemorySegment.ofArray(new long[] {0x0102030405060708L, -1L}), false);
            long[] back = new long[2];
            d.read(8, MemorySegment.ofArray(back));
            assertThat(back).containsExactly(0x0102030405060708L, -1L);
        }
    }

    @Test
    void anInterruptedThreadDoesNotBreakTheDeviceForOthers() throws Exception {
        try (var d = FileBackingDevice.createSparse(dir.resolve("i"), 1 << 20)) {
            d.write(0, MemorySegment.ofArray(new byte[] {42}), false);
            AtomicReference<Throwable> seen = new AtomicReference<>();
            Thread t = Thread.ofPlatform().start(() -> {
                Thread.currentThread().interrupt();
                try {
                    d.read(0, MemorySegment.ofArray(new byte[1]));
                } catch (Throwable e) {
                    seen.set(e);
                }
            });
            t.join();
            assertThat(seen.get()).isInstanceOf(InterruptedIOException.class);
            byte[] one = new byte[1];
            d.read(0, MemorySegment.ofArray(one));
            assertThat(one).containsExactly(42);
        }
    }

    /**
     * An interrupt during a flusher's flush closes its descriptor (the JDK closes an interrupted
     * channel): that flush fails with InterruptedIOException, and the flusher goes on with a
     * descriptor of its own again (one, not one more per interrupt), as the device's channel does.
     */
    @Test
    void anInterruptedFlushLeavesTheFlusherWorkingOnADescriptorOfItsOwn() throws Exception {
        Path f = dir.resolve("fi");
        try (FileBackingDevice d = FileBackingDevice.createSparse(f, 1 << 20)) {
            long before = OpenDescriptors.on(f);
            io.pmcache.device.BlockDevice.Flusher flusher = d.newFlusher();
            for (int round = 0; round < 3; round++) {
                AtomicReference<Throwable> seen = new AtomicReference<>();
                Thread t = Thread.ofPlatform().start(() -> {
                    Thread.currentThread().interrupt();
                    try {
                        flusher.flush();
                    } catch (Throwable e) {
                        seen.set(e);
                    }
                });
                t.join();
                assertThat(seen.get()).isInstanceOf(InterruptedIOException.class)
                        .hasMessageContaining(f + ": flush interrupted");
                d.write(round, MemorySegment.ofArray(new byte[] {(byte) (round + 1)}), false);
                flusher.flush();
                assertThat(OpenDescriptors.on(f)).as("round %d", round).isEqualTo(before + 1);
            }
            assertThat(Files.readAllBytes(f)).startsWith(1, 2, 3);
        }
    }

    // ---- a backing file that shrank under the device (truncated by someone else) ----

    private static final int MIB = 1 << 20;

    /** A 1 MiB backing file full of ones, then truncated to 512 KiB behind the device's back. */
    private FileBackingDevice shrunkDevice(Path f) throws IOException {
        FileBackingDevice d = FileBackingDevice.createSparse(f, MIB);
        byte[] ones = new byte[MIB];
        Arrays.fill(ones, (byte) 1);
        d.write(0, MemorySegment.ofArray(ones), true);
        try (var raf = new RandomAccessFile(f.toFile(), "rw")) {
            raf.setLength(MIB / 2);
        }
        return d;
    }

    @Test
    void aReadPastTheEndOfAShrunkFileFailsNamingTheFileAndTheOffset() throws IOException {
        Path f = dir.resolve("b");
        try (FileBackingDevice d = shrunkDevice(f)) {
            byte[] below = new byte[4096];
            d.read(4096, MemorySegment.ofArray(below));
            assertThat(below).as("before anything noticed the shrink, data below the new end reads").containsOnly(1);
            // Straddles the new end: half the bytes exist, the rest do not: no zeros for them.
            assertThatThrownBy(() -> d.read(MIB / 2 - 4096, MemorySegment.ofArray(new byte[8192])))
                    .isInstanceOf(IOException.class).hasMessageContaining(f.toString())
                    .hasMessageContaining(String.valueOf(MIB / 2 - 4096)).hasMessageContaining("shrank");
            assertThatThrownBy(() -> d.read(768 * 1024, MemorySegment.ofArray(new byte[4096])))
                    .isInstanceOf(IOException.class).hasMessageContaining(f.toString())
                    .hasMessageContaining(String.valueOf(768 * 1024));
        }
    }

    @Test
    void aFlushAfterTheFileShrankFailsAndSoDoesEveryLaterRequest() throws IOException {
        Path f = dir.resolve("b");
        try (FileBackingDevice d = shrunkDevice(f)) {
            // A write below the new end goes through (nothing is wrong at that offset), but the
            // flush that would make it and everything before it durable must not claim success:
            // what was written past 512 KiB is gone.
            d.write(8192, MemorySegment.ofArray(new byte[4096]), false);
            assertThatThrownBy(d::flush).isInstanceOf(IOException.class).hasMessageContaining(f.toString())
                    .hasMessageContaining(String.valueOf(MIB / 2)).hasMessageContaining(String.valueOf(MIB));
            // From now on nothing of it is trusted: holes may read as zeros anywhere past the old end.
            assertThatThrownBy(() -> d.read(0, MemorySegment.ofArray(new byte[4096])))
                    .isInstanceOf(IOException.class).hasMessageContaining(f.toString()).hasMessageContaining("shrank");
            assertThatThrownBy(() -> d.write(12288, MemorySegment.ofArray(new byte[4096]), false))
                    .isInstanceOf(IOException.class).hasMessageContaining("12288");
            assertThatThrownBy(() -> d.writeZeroes(4096, 4096, false)).isInstanceOf(IOException.class);
            assertThatThrownBy(() -> d.trim(4096, 4096)).isInstanceOf(IOException.class);
            assertThatThrownBy(d::flush).isInstanceOf(IOException.class);
        }
        assertThat(Files.size(f)).as("the file was not grown back").isEqualTo(MIB / 2);
    }

    @Test
    void aWriteThatWouldGrowAShrunkFileBackToItsSizeFailsWithoutWriting() throws IOException {
        Path f = dir.resolve("b");
        try (FileBackingDevice d = shrunkDevice(f)) {
            // Writing the last block would silently give the file its old size back, with a hole
            // reading as zeros where the truncated data was, and a flush could not tell.
            assertThatThrownBy(() -> d.write(MIB - 4096, MemorySegment.ofArray(new byte[4096]), false))
                    .isInstanceOf(IOException.class).hasMessageContaining(f.toString())
                    .hasMessageContaining(String.valueOf(MIB - 4096)).hasMessageContaining("shrank");
            assertThat(Files.size(f)).isEqualTo(MIB / 2);
        }
        Path g = dir.resolve("c");
        try (FileBackingDevice d = shrunkDevice(g)) {
            d.disableHolePunching(); // zeroes are then written, which would grow the file too
            assertThatThrownBy(() -> d.writeZeroes(MIB - 8192, 8192, false)).isInstanceOf(IOException.class)
                    .hasMessageContaining(g.toString()).hasMessageContaining(String.valueOf(MIB - 8192));
            assertThat(Files.size(g)).isEqualTo(MIB / 2);
        }
    }
}
