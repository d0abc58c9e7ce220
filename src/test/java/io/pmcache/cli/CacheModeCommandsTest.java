package io.pmcache.cli;

import static io.pmcache.cli.CliRun.pm;
import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.FileBackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheMode;
import io.pmcache.cache.CacheOptions;
import io.pmcache.cli.CliRun.Result;
import io.pmcache.media.MappedFileMedium;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The cache-mode commands in-process: usage errors, offline invalidate, the offline status fields. */
class CacheModeCommandsTest {
    @TempDir
    Path dir;

    private Path cache() {
        return dir.resolve("cache.img");
    }

    private Path backing() {
        return dir.resolve("backing.img");
    }

    @Test
    void usageErrorsExit2BeforeAnythingIsContacted() {
        Result bad = pm("set", "cache-mode", "fast", "--admin", "127.0.0.1:1");
        assertThat(bad.exit()).isEqualTo(2);
        assertThat(bad.err()).contains("unknown cache mode 'fast'", "writethrough");
        Result neither = pm("invalidate");
        assertThat(neither.exit()).isEqualTo(2);
        Result both = pm("invalidate", "--admin", "1", "--cache", "c", "--backing", "b");
        assertThat(both.exit()).isEqualTo(2);
        Result serve = pm("serve", "--cache", cache().toString(), "--backing", backing().toString(), "--socket",
                dir.resolve("s.sock").toString(), "--cache-size", "16M", "--backing-size", "8M", "--cache-mode", "x");
        assertThat(serve.exit()).isEqualTo(2);
        assertThat(serve.err()).contains("unknown cache mode 'x'");
        assertThat(cache()).doesNotExist();
        for (String[] cmd : new String[][] {{"set", "cache-mode"}, {"set", "sequential-cutoff"}, {"invalidate"}}) {
            String[] args = java.util.Arrays.copyOf(cmd, cmd.length + 1);
            args[cmd.length] = "--help";
            Result h = pm(args);
            assertThat(h.exit()).as(String.join(" ", cmd)).isZero();
            assertThat(h.out()).contains("Usage: pmcache " + String.join(" ", cmd));
        }
    }

    @Test
    void offlineInvalidateDropsCleanDataKeepsDirtyDataAndStatusShowsIt() throws Exception {
        Result f = pm("format", "--cache", cache().toString(), "--cache-size", "16M", "--backing",
                backing().toString(), "--backing-size", "8M", "--segment-size", "1M");
        assertThat(f.exit()).as(f.err()).isZero();
        byte[] clean = new byte[65536];
        java.util.Arrays.fill(clean, (byte) 3);
        byte[] dirty = new byte[4096];
        java.util.Arrays.fill(dirty, (byte) 9);
        try (MappedFileMedium m = MappedFileMedium.open(cache());
             FileBackingDevice disk = FileBackingDevice.open(backing(), false);
             Cache c = Cache.open(CliRun.cacheIn(m), disk, CacheOptions.defaults())) {
            c.write(0, MemorySegment.ofArray(clean), false);
            c.flushAll(left -> { });
            c.write(5L << 20, MemorySegment.ofArray(dirty), false);
            c.setCacheMode(CacheMode.WRITEAROUND, left -> { }); // drains the dirty write too
            c.setCacheMode(CacheMode.WRITEBACK, left -> { });
            c.write(6L << 20, MemorySegment.ofArray(dirty), false); // dirty at close
        }
        Result inv = pm("invalidate", "--cache", cache().toString(), "--backing", backing().toString());
        assertThat(inv.exit()).as(inv.err()).isZero();
        assertThat(inv.out()).contains("invalidated 68 KiB of clean cached data; dirty data stays");
        Result st = pm("status", "--cache", cache().toString(), "--json");
        assertThat(st.exit()).as(st.err()).isZero();
        assertThat(st.out().replaceAll("\\s", "")).contains("\"cache_mode\":\"writeback\"",
                "\"clean_keys_untrusted_before\":\"all\"");
        try (MappedFileMedium m = MappedFileMedium.open(cache());
             FileBackingDevice disk = FileBackingDevice.open(backing(), false);
             Cache c = Cache.open(CliRun.cacheIn(m), disk, CacheOptions.defaults())) {
            assertThat(c.status().dirtyBytes()).isEqualTo(4096);
            byte[] got = new byte[4096];
            c.read(6L << 20, MemorySegment.ofArray(got));
            assertThat(got).isEqualTo(dirty);
            got = new byte[65536];
            c.read(0, MemorySegment.ofArray(got));
            assertThat(got).isEqualTo(clean);
            assertThat(c.status().readMisses()).as("the clean data is no longer cached").isEqualTo(1);
        }
    }
}
