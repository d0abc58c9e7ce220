package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.device.DeviceFailedException;
import io.pmcache.format.Layout;
import io.pmcache.media.FaultyMedium;
import io.pmcache.media.PowerCutMedium;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The engine's failure paths on the medium: a failed persist is never followed by a successful
 * flush (issue 9 item 4), and a fault on the mapped medium fails the cache instead of escaping.
 * (Stop, reads and status against writers waiting for space, items 5 to 7: {@link BlockedOnSpaceTest}.)
 * No test here depends on timing: waits are on conditions, with generous bounds that only end a hang.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class FaultPathTest {
    private static final long MIB = CacheHarness.MIB;
    private static final Duration HANG = Duration.ofSeconds(60);

    private record Rig(FaultyMedium medium, PowerCutMedium inner, MemoryBackingDevice backing, Cache cache)
            implements AutoCloseable {
        @Override
        public void close() throws IOException {
            try {
                cache.close();
            } catch (IOException ignored) {
                // a failed cache reports its state at close
            }
            inner.close();
            backing.close();
        }
    }

    private static Rig rig(int segments, long device, CacheOptions options) throws IOException {
        PowerCutMedium inner = PowerCutMedium.create(Layout.segmentAreaOffset(segments) + segments * MIB);
        FaultyMedium medium = new FaultyMedium(inner);
        MemoryBackingDevice backing = new MemoryBackingDevice(device, 7);
        Cache.format(medium, backing, new FormatOptions(MIB, false));
        return new Rig(medium, inner, backing, Cache.open(medium, backing, options));
    }

    private static MemorySegment pattern(int len, int seed) {
        MemorySegment s = Arena.ofAuto().allocate(len);
        for (int i = 0; i < len; i++) {
            s.set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) (seed * 31 + i / 512));
        }
        return s;
    }

    private static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + HANG.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("gave up waiting for: " + what);
            }
            Thread.sleep(2);
        }
    }

    @Test
    void aFailedSealPersistIsNeverFollowedByASuccessfulFlush() throws Exception {
        try (Rig r = rig(16, 64 * MIB, new CacheOptions(1, 70, true, true))) {
            r.cache.write(0, pattern(64 << 10, 1), false);
            r.medium.failNthPersist(1); // the first persist of the next seal round
            assertThatThrownBy(r.cache::flush).isInstanceOf(DeviceFailedException.class);
            r.medium.heal();
            // The seal round was lost with the failed persist: no later flush may claim durability.
            assertThatThrownBy(r.cache::flush).isInstanceOf(DeviceFailedException.class);
            assertThatThrownBy(() -> r.cache.write(1 << 20, pattern(4096, 2), false))
                    .isInstanceOf(DeviceFailedException.class);
            assertThatThrownBy(() -> r.cache.trim(0, 4096)).isInstanceOf(DeviceFailedException.class);
            CacheStatus s = r.cache.status();
            assertThat(s.failure()).contains("persist").contains("injected EIO");
            // Reads still work: the data is in the mapped medium.
            MemorySegment back = Arena.ofAuto().allocate(64 << 10);
            r.cache.read(0, back);
            assertThat(back.mismatch(pattern(64 << 10, 1))).isEqualTo(-1);
        }
    }

    /**
     * The front end's idle call reserves a kset ahead (its header is persisted): when that persist
     * fails, the call returns (the NBD reader must not die of it) and the cache has failed, so the
     * next write and flush say so.
     */
    @Test
    void aFailedPersistWhileReservingAheadFailsTheCacheNotTheCaller() throws Exception {
        try (Rig r = rig(16, 64 * MIB, new CacheOptions(1, 70, false, false))) {
            for (int i = 0; i < 128; i++) { // fills the stream's first kset (128 keys)
                r.cache.write(i * 4096L, pattern(4096, i), false);
            }
            long before = r.medium.failures();
            r.medium.failAlways();
            r.cache.idle(); // reserves the next kset: its header's persist fails
            assertThat(r.medium.failures()).as("the reservation persisted its header").isGreaterThan(before);
            r.medium.heal();
            r.cache.idle(); // nothing more to do, and no exception either
            assertThat(r.cache.status().ksetsReservedAhead()).isZero();
            assertThat(r.cache.status().failure()).contains("persist").contains("injected EIO");
            assertThatThrownBy(() -> r.cache.write(1 << 20, pattern(4096, 2), false))
                    .isInstanceOf(DeviceFailedException.class);
            assertThatThrownBy(r.cache::flush).isInstanceOf(DeviceFailedException.class);
            MemorySegment back = Arena.ofAuto().allocate(4096);
            r.cache.read(127 * 4096L, back);
            assertThat(back.mismatch(pattern(4096, 127))).isEqualTo(-1);
        }
    }

    @Test
    void aFailedPersistInTheBackgroundFailsTheNextFlush() throws Exception {
        try (Rig r = rig(16, 64 * MIB, new CacheOptions(1, 70, true, true))) {
            r.cache.write(0, pattern(4096, 3), false);
            long before = r.medium.failures();
            r.medium.failAlways(); // the sealer's next round (at most a second away) fails
            await(() -> r.medium.failures() > before, "a background persist to fail");
            r.medium.heal();
            assertThatThrownBy(r.cache::flush).isInstanceOf(DeviceFailedException.class);
            assertThat(r.cache.status().failure()).isNotNull();
        }
    }

    /**
     * A writer waits for space (writeback off: nothing frees any) when a persist fails. The failed
     * cache's workers stop making space, so the wait must end with the failure, not last forever.
     * (Found by {@link MediumFaultModelTest}: its test thread hung there.)
     */
    @Test
    void aWriterWaitingForSpaceFailsWhenTheCacheFails() throws Exception {
        try (Rig r = rig(16, 256 * MIB, new CacheOptions(1, 70, false, true))) {
            CompletableFuture<Void> writer = CompletableFuture.runAsync(() -> {
                MemorySegment data = pattern(1 << 20, 4);
                try {
                    for (long off = 0; ; off = (off + (1 << 20)) % r.backing.size()) {
                        r.cache.write(off, data, false);
                    }
                } catch (IOException ex) {
                    throw new java.util.concurrent.CompletionException(ex);
                }
            }, runnable -> Thread.ofPlatform().daemon().start(runnable));
            await(() -> r.cache.engine().allocator.hasWaiters() || writer.isDone(), "a writer to wait for space");
            assertThat(writer).isNotDone();
            r.medium.failAlways();
            // A FUA zero needs no data space, only its key persisted: the persist fails.
            assertThatThrownBy(() -> r.cache.writeZeroes(200 * MIB, 4096, true))
                    .isInstanceOf(DeviceFailedException.class);
            assertThatThrownBy(() -> writer.get(HANG.toSeconds(), TimeUnit.SECONDS))
                    .isInstanceOf(ExecutionException.class).cause().isInstanceOf(DeviceFailedException.class);
        }
    }

    /**
     * The cache file is truncated under the running cache (an operator's mistake): the next access
     * faults (SIGBUS, which the JDK raises as an InternalError). The cache must fail, answering EIO,
     * not let the Error escape to the caller (an NBD server's thread) as if it were a bug.
     */
    @Test
    void aTruncatedCacheFileFailsTheCacheInsteadOfEscapingAsAnError(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
            throws Exception {
        java.nio.file.Path file = dir.resolve("cache.img");
        long size = Layout.segmentAreaOffset(16) + 16 * MIB;
        try (io.pmcache.media.MappedFileMedium medium = io.pmcache.media.MappedFileMedium.create(file, size);
             MemoryBackingDevice backing = new MemoryBackingDevice(64 * MIB, 7)) {
            Cache.format(medium, backing, new FormatOptions(MIB, false));
            Cache cache = Cache.open(medium, backing, new CacheOptions(1, 70, false, false));
            cache.write(0, pattern(4096, 1), false);
            try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(file,
                    java.nio.file.StandardOpenOption.WRITE)) {
                ch.truncate(Layout.segmentAreaOffset(16)); // every segment is gone
            }
            assertThatThrownBy(() -> cache.write(8 * MIB, pattern(1 << 20, 2), false))
                    .isInstanceOf(DeviceFailedException.class).hasMessageContaining("faulted");
            assertThatThrownBy(cache::flush).isInstanceOf(DeviceFailedException.class);
            assertThat(cache.status().failure()).contains("faulted");
            assertThatThrownBy(cache::close).isInstanceOf(DeviceFailedException.class);
        }
    }
}
