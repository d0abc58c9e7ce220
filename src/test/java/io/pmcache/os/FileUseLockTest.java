package io.pmcache.os;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.pmcache.backing.FileBackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheOptions;
import io.pmcache.cache.FormatOptions;
import io.pmcache.media.MappedFileMedium;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Exclusive use of cache and backing files: a second opener is refused with a one-line
 * {@link FileInUseException} while the first holds the file, and succeeds once it closed. Run on
 * the temp directory's filesystem (ext4 here) and on tmpfs ({@code /dev/shm}) when present.
 */
class FileUseLockTest {
    @TempDir
    Path tmp;
    private final List<Path> cleanup = new ArrayList<>();

    @AfterEach
    void removeShmFiles() throws IOException {
        for (Path p : cleanup) {
            Files.deleteIfExists(p);
        }
    }

    private Path dir(String where) throws IOException {
        if (where.equals("shm")) {
            Path shm = Path.of("/dev/shm");
            org.junit.jupiter.api.Assumptions.assumeTrue(Files.isDirectory(shm) && Files.isWritable(shm),
                    "no writable /dev/shm");
            Path d = Files.createTempDirectory(shm, "pmcache-lock");
            cleanup.add(d);
            return d;
        }
        return tmp;
    }

    private Path file(Path dir, String name) {
        Path p = dir.resolve(name);
        cleanup.addFirst(p);
        return p;
    }

    @ParameterizedTest
    @ValueSource(strings = {"tmp", "shm"})
    void aMappedCacheFileIsRefusedToASecondOpenerUntilClosed(String where) throws IOException {
        Path f = file(dir(where), "cache.img");
        MappedFileMedium first = MappedFileMedium.create(f, 1 << 20);
        assertThatThrownBy(() -> MappedFileMedium.open(f)).isInstanceOf(FileInUseException.class)
                .hasMessageContaining(f.toString()).hasMessageContaining("in use by another pmcache process")
                .hasMessageNotContaining("\n");
        assertThatThrownBy(() -> MappedFileMedium.open(f, 4096)).isInstanceOf(FileInUseException.class);
        assertThatThrownBy(() -> MappedFileMedium.openReadOnly(f)).isInstanceOf(FileInUseException.class)
                .hasMessageContaining("may be writing to it");
        // Opening and closing the file through other descriptors (POSIX record locks would be lost).
        Files.readAllBytes(f);
        try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "r")) {
            raf.read();
        }
        assertThatThrownBy(() -> MappedFileMedium.open(f)).as("still locked after other fds closed")
                .isInstanceOf(FileInUseException.class);
        first.close();
        try (MappedFileMedium second = MappedFileMedium.open(f)) {
            assertThat(second.size()).isEqualTo(1 << 20);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tmp", "shm"})
    void readersShareButExcludeWriters(String where) throws IOException {
        Path f = file(dir(where), "cache.img");
        MappedFileMedium.create(f, 1 << 20).close();
        try (MappedFileMedium a = MappedFileMedium.openReadOnly(f);
             MappedFileMedium b = MappedFileMedium.openReadOnly(f)) {
            assertThat(a.isReadOnly()).isTrue();
            assertThat(b.size()).isEqualTo(1 << 20);
            assertThatThrownBy(() -> MappedFileMedium.open(f)).isInstanceOf(FileInUseException.class)
                    .hasMessageContaining(f.toString());
            a.close();
            assertThatThrownBy(() -> MappedFileMedium.open(f)).as("one reader is left")
                    .isInstanceOf(FileInUseException.class);
        }
        MappedFileMedium.open(f).close();
    }

    @ParameterizedTest
    @ValueSource(strings = {"tmp", "shm"})
    void aBackingFileHasOneWriterAndAnyNumberOfReaders(String where) throws IOException {
        Path f = file(dir(where), "backing.img");
        FileBackingDevice first = FileBackingDevice.createSparse(f, 1 << 20);
        assertThatThrownBy(() -> FileBackingDevice.open(f, false)).isInstanceOf(FileInUseException.class)
                .hasMessageContaining("backing file " + f).hasMessageContaining("in use by another pmcache process");
        try (FileBackingDevice reader = FileBackingDevice.open(f, true)) {
            assertThat(reader.size()).isEqualTo(1 << 20);
        }
        first.close();
        FileBackingDevice.open(f, false).close();
    }

    @ParameterizedTest
    @ValueSource(strings = {"tmp", "shm"})
    void anOpenCacheHoldsItsFilesAndReleasesThemOnClose(String where) throws IOException {
        Path d = dir(where);
        Path cache = file(d, "cache.img");
        Path backing = file(d, "backing.img");
        FileBackingDevice disk = FileBackingDevice.createSparse(backing, 8 << 20);
        MappedFileMedium medium = MappedFileMedium.create(cache, 16 << 20);
        Cache.format(medium, disk, new FormatOptions(1 << 20, false));
        Cache c = Cache.open(medium, disk, CacheOptions.defaults().withParallel(1));
        assertThatThrownBy(() -> MappedFileMedium.open(cache)).isInstanceOf(FileInUseException.class);
        assertThatThrownBy(() -> FileBackingDevice.open(backing, false)).isInstanceOf(FileInUseException.class);
        c.close();
        medium.close();
        disk.close();
        try (FileBackingDevice disk2 = FileBackingDevice.open(backing, false);
             MappedFileMedium medium2 = MappedFileMedium.open(cache);
             Cache c2 = Cache.open(medium2, disk2, CacheOptions.defaults().withParallel(1))) {
            assertThat(c2.size()).isEqualTo(8 << 20);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tmp"})
    void aCacheDoesNotOpenOnAReadOnlyMapping(String where) throws IOException {
        Path d = dir(where);
        Path cache = file(d, "cache.img");
        try (FileBackingDevice disk = FileBackingDevice.createSparse(file(d, "backing.img"), 8 << 20)) {
            try (MappedFileMedium m = MappedFileMedium.create(cache, 16 << 20)) {
                Cache.format(m, disk, new FormatOptions(1 << 20, false));
            }
            try (MappedFileMedium ro = MappedFileMedium.openReadOnly(cache)) {
                assertThatThrownBy(() -> Cache.open(ro, disk, CacheOptions.defaults().withParallel(1)))
                        .isInstanceOf(IOException.class).hasMessageContaining("read-only");
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tmp"})
    void aLockHeldByTheCallerLetsItMapTheFile(String where) throws IOException {
        Path f = file(dir(where), "cache.img");
        MappedFileMedium.create(f, 1 << 20).close();
        try (FileUseLock held = FileUseLock.acquire(f, FileUseLock.Mode.EXCLUSIVE, "cache file")) {
            assertThatThrownBy(() -> MappedFileMedium.open(f)).isInstanceOf(FileInUseException.class);
            MappedFileMedium.openReadOnly(f, held).close();
            MappedFileMedium.open(f, held).close();
            assertThat(held.isHeld()).as("the medium leaves the caller's lock alone").isTrue();
            assertThatThrownBy(() -> MappedFileMedium.openReadOnly(f)).isInstanceOf(FileInUseException.class);
        }
        try (FileUseLock shared = FileUseLock.acquire(f, FileUseLock.Mode.SHARED, "cache file")) {
            assertThatThrownBy(() -> MappedFileMedium.open(f, shared)).isInstanceOf(IllegalArgumentException.class);
        }
        MappedFileMedium.open(f).close();
    }
}
