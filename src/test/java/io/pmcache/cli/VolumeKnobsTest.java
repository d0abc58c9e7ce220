package io.pmcache.cli;

import static io.pmcache.cli.CliRun.pm;
import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.admin.StatusSource;
import io.pmcache.admin.VolumeControl;
import io.pmcache.admin.VolumesAdminServer;
import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheMode;
import io.pmcache.cache.CacheOptions;
import io.pmcache.cache.FormatOptions;
import io.pmcache.cli.CliRun.Result;
import io.pmcache.media.PowerCutMedium;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The per-volume knobs of a server of volumes, through {@code pmcache set ... --volume} and
 * {@code invalidate --volume}: each changes only the volume it names.
 */
class VolumeKnobsTest {
    private static final long MIB = 1L << 20;
    private final List<AutoCloseable> open = new java.util.ArrayList<>();
    private final Map<String, Cache> caches = new LinkedHashMap<>();

    @AfterEach
    void closeAll() throws Exception {
        for (AutoCloseable c : open.reversed()) {
            c.close();
        }
    }

    private Cache volume(String name) throws IOException {
        PowerCutMedium medium = PowerCutMedium.create(16 * MIB);
        open.add(medium);
        MemoryBackingDevice backing = new MemoryBackingDevice(8 * MIB, name.hashCode());
        Cache.format(medium, backing, new FormatOptions(MIB, false));
        Cache c = Cache.open(medium, backing, CacheOptions.defaults().withParallel(1).withWriteback(false));
        open.add(c);
        caches.put(name, c);
        return c;
    }

    /** Only the knobs: the volume table operations are not what this test is about. */
    private final class Served implements VolumeControl {
        @Override
        public Map<String, Object> volumes() {
            throw new UnsupportedOperationException();
        }

        @Override
        public StatusSource status(String name) {
            Cache c = caches.get(name);
            return c == null ? null : StatusSource.of(c, null);
        }

        @Override
        public Cache cache(String name) {
            return caches.get(name);
        }

        @Override
        public List<String> served() {
            return List.copyOf(caches.keySet());
        }

        @Override
        public String create(Map<?, ?> request) {
            throw new UnsupportedOperationException();
        }

        @Override
        public String remove(String name, boolean force) {
            throw new UnsupportedOperationException();
        }

        @Override
        public String detach(String name) {
            throw new UnsupportedOperationException();
        }
    }

    @Test
    void cacheModeCutoffAndInvalidateChangeOnlyTheNamedVolume() throws Exception {
        Cache a = volume("vol-a");
        Cache b = volume("vol-b");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment block = arena.allocate(4096);
            a.write(0, block, false);
            a.flush();
        }
        VolumesAdminServer admin = VolumesAdminServer.start(new InetSocketAddress("127.0.0.1", 0), new Served(),
                new io.pmcache.nbd.NbdStats()::snapshot);
        open.add(admin);
        String at = String.valueOf(admin.address().getPort());

        Result mode = pm("set", "cache-mode", "writethrough", "--admin", at, "--volume", "vol-b");
        assertThat(mode.exit()).as(mode.err()).isZero();
        assertThat(mode.out()).contains("cache mode is now writethrough");
        assertThat(b.cacheMode()).isEqualTo(CacheMode.WRITETHROUGH);
        assertThat(a.cacheMode()).isEqualTo(CacheMode.WRITEBACK);

        Result cutoff = pm("set", "sequential-cutoff", "1M", "--admin", at, "--volume", "vol-a");
        assertThat(cutoff.exit()).as(cutoff.err()).isZero();
        assertThat(a.sequentialCutoff()).isEqualTo(MIB);
        assertThat(b.sequentialCutoff()).isZero();

        Result unnamed = pm("set", "sequential-cutoff", "0", "--admin", at);
        assertThat(unnamed.exit()).isNotZero();
        assertThat(unnamed.err()).contains("serves 2 volumes", "--volume NAME");
        Result unknown = pm("set", "cache-mode", "none", "--admin", at, "--volume", "vol-c");
        assertThat(unknown.exit()).isNotZero();
        assertThat(unknown.err()).contains("no volume named 'vol-c'");

        Result inv = pm("invalidate", "--admin", at, "--volume", "vol-b");
        assertThat(inv.exit()).as(inv.err()).isZero();
        assertThat(a.status().dirtyBytes()).isEqualTo(4096);
    }
}
