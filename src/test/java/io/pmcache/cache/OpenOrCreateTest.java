package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.pmcache.os.FileInUseException;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The library's create-or-open call ({@link Cache#openOrCreate}) and the figures a user reads first. */
class OpenOrCreateTest {
    @TempDir
    Path dir;

    private Path backing(long size) throws IOException {
        Path b = dir.resolve("backing.img");
        try (RandomAccessFile f = new RandomAccessFile(b.toFile(), "rw")) {
            f.setLength(size);
        }
        return b;
    }

    @Test
    void createsThenReopensAndOwnsItsFiles() throws IOException {
        Path cacheFile = dir.resolve("cache.img");
        Path disk = backing(64 << 20);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(4096);
            buf.fill((byte) 0x5a);
            try (Cache c = Cache.openOrCreate(cacheFile, 128 << 20, disk)) {
                assertThat(c.status().segmentSize()).as("automatic segment size on 128 MiB").isEqualTo(2 << 20);
                c.write(8192, buf, false);
                c.flush();
            }
            assertThat(Files.size(cacheFile)).isEqualTo(128 << 20);
            // The files were closed with the cache: they can be opened again, and the data is there.
            try (Cache c = Cache.openOrCreate(cacheFile, 999, disk)) {
                MemorySegment back = a.allocate(4096);
                c.read(8192, back);
                assertThat(back.mismatch(buf)).isEqualTo(-1);
            }
        }
    }

    @Test
    void aSecondOpenerIsRefusedWhileTheFirstHoldsTheFiles() throws IOException {
        Path cacheFile = dir.resolve("cache.img");
        Path disk = backing(16 << 20);
        try (Cache c = Cache.openOrCreate(cacheFile, 32 << 20, disk)) {
            assertThatThrownBy(() -> Cache.openOrCreate(cacheFile, 32 << 20, disk))
                    .isInstanceOf(FileInUseException.class);
        }
        Cache.openOrCreate(cacheFile, 32 << 20, disk).close();
    }

    @Test
    void aFailedCreateLeavesNoCacheFile() throws IOException {
        Path cacheFile = dir.resolve("cache.img");
        Path disk = backing(16 << 20);
        assertThatThrownBy(() -> Cache.openOrCreate(cacheFile, 64 << 20, disk, FormatOptions.defaults(),
                CacheOptions.defaults().withParallel(64))).hasMessageContaining("parallel 64");
        assertThat(cacheFile).doesNotExist();
        assertThatThrownBy(() -> Cache.openOrCreate(cacheFile, 2 << 20, disk))
                .hasMessageContaining("the smallest cache is");
        assertThat(cacheFile).doesNotExist();
        // Nothing stays locked: the files open again.
        Cache.openOrCreate(cacheFile, 32 << 20, disk).close();
    }

    @Test
    void aForeignFileIsNeverOverwritten() throws IOException {
        Path cacheFile = dir.resolve("thesis.txt");
        Files.writeString(cacheFile, "my precious thesis");
        Path disk = backing(16 << 20);
        assertThatThrownBy(() -> Cache.openOrCreate(cacheFile, 32 << 20, disk))
                .hasMessageContaining("neither empty nor a pmcache cache");
        assertThat(Files.readString(cacheFile)).isEqualTo("my precious thesis");
    }

    @Test
    void theAutomaticSegmentSizeKeepsEnoughSegments() {
        FormatOptions auto = FormatOptions.defaults();
        assertThat(auto.segmentSizeFor(64L << 20)).isEqualTo(1 << 20);
        assertThat(auto.segmentSizeFor(128L << 20)).isEqualTo(2 << 20);
        assertThat(auto.segmentSizeFor(512L << 20)).isEqualTo(8 << 20);
        assertThat(auto.segmentSizeFor(1L << 30)).isEqualTo(16 << 20);
        assertThat(auto.segmentSizeFor(1L << 40)).isEqualTo(16 << 20);
        assertThat(auto.segmentSizeFor(4L << 20)).as("never below 1 MiB").isEqualTo(1 << 20);
        assertThat(new FormatOptions(4 << 20, false).segmentSizeFor(64L << 20)).as("explicit").isEqualTo(4 << 20);
    }

    /** Issue 14: writeback_bytes counted zeroed ranges as bytes written. */
    @Test
    void writebackBytesCountDataNotZeroedRanges() throws IOException {
        Path disk = backing(64 << 20);
        try (Cache c = Cache.openOrCreate(dir.resolve("cache.img"), 64 << 20, disk);
             Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(4096);
            buf.fill((byte) 1);
            c.write(0, buf, false);
            c.writeZeroes(1 << 20, 8 << 20, false);
            c.trim(16 << 20, 1 << 20);
            c.flushAll(left -> { });
            CacheStatus s = c.status();
            assertThat(s.dirtyBytes()).isZero();
            assertThat(s.writebackBytes()).isEqualTo(4096);
            assertThat(s.writebackZeroBytes()).isEqualTo((8 << 20) + (1 << 20));
        }
    }

    /** Issue 14: the format log line repeated the backing size. */
    @Test
    void theFormatLogLineNamesEachSizeOnce() throws IOException {
        ch.qos.logback.classic.Logger cacheLog = (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory
                .getLogger(Cache.class);
        ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> events =
                new ch.qos.logback.core.read.ListAppender<>();
        events.start();
        ch.qos.logback.classic.Level level = cacheLog.getLevel();
        cacheLog.setLevel(ch.qos.logback.classic.Level.INFO);
        cacheLog.setAdditive(false); // not on the test's stderr
        cacheLog.addAppender(events);
        try {
            Cache.openOrCreate(dir.resolve("cache.img"), 128 << 20, backing(64 << 20)).close();
        } finally {
            cacheLog.detachAppender(events);
            cacheLog.setAdditive(true);
            cacheLog.setLevel(level);
        }
        String line = events.list.stream().map(e -> e.getFormattedMessage()).filter(m -> m.startsWith("formatted"))
                .findFirst().orElseThrow();
        assertThat(line.split(String.valueOf(64 << 20), -1)).as(line).hasSize(2); // the backing size, once
        assertThat(line).contains("segments of 2 MiB");
    }
}
