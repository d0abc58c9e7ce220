package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.BackingDevice;
import io.pmcache.backing.MemoryBackingDevice;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * Cache modes, the sequential cutoff and invalidate, one property per test (see {@link CachePolicy}
 * and {@link DirectPath}). Writeback runs only where a test drives it, so what is on the backing
 * device at each step is known.
 */
class CacheModesTest {
    static final long MIB = 1L << 20;
    static final long DEVICE = 64 * MIB;
    /** Workers on, but the writeback worker off: writeback runs only in flushAll/setCacheMode or by step(). */
    static final CacheOptions NO_WRITEBACK = new CacheOptions(CacheOptions.PARALLEL_AUTO, -1, false, true);

    static byte[] pattern(int length, int seed) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (seed * 31 + i * 7 + (i >> 9));
        }
        return b;
    }

    static byte[] read(BlockDeviceLike d, long offset, int length) throws IOException {
        byte[] b = new byte[length];
        d.read(offset, MemorySegment.ofArray(b));
        return b;
    }

    interface BlockDeviceLike {
        void read(long offset, MemorySegment dst) throws IOException;
    }

    static byte[] cacheRead(Cache c, long offset, int length) throws IOException {
        return read(c::read, offset, length);
    }

    static byte[] backingRead(BackingDevice d, long offset, int length) throws IOException {
        return read(d::read, offset, length);
    }

    @Test
    void writethroughDataIsOnTheBackingDeviceWhenTheWriteReturns() throws IOException {
        try (CacheHarness h = CacheHarness.create(32, DEVICE, NO_WRITEBACK, false)) {
            Cache c = h.cache();
            c.setCacheMode(CacheMode.WRITETHROUGH, left -> { });
            byte[] data = pattern(256 * 1024, 1);
            c.write(3 * MIB + 512, MemorySegment.ofArray(data), false);
            assertThat(backingRead(h.backing(), 3 * MIB + 512, data.length)).isEqualTo(data);
            CacheStatus s = c.status();
            assertThat(s.dirtyBytes()).isZero();
            assertThat(s.writethroughWrites()).isEqualTo(1);
            long hits = s.readHits();
            assertThat(cacheRead(c, 3 * MIB + 512, data.length)).isEqualTo(data);
            assertThat(c.status().readHits()).as("the data is also in the cache").isEqualTo(hits + 1);
            assertThat(c.status().cacheMode()).isEqualTo("writethrough");
        }
    }

    /**
     * A writethrough write to a range that still holds dirty data (a write that came in while the
     * switch from writeback drained) goes into the cache — written directly it could be overtaken
     * by that older data's writeback — and is written back before it is acknowledged.
     */
    @Test
    void writethroughOverDirtyDataIsWrittenBackBeforeTheAcknowledgement() throws IOException {
        try (CacheHarness h = CacheHarness.create(32, DEVICE, NO_WRITEBACK, false)) {
            Cache c = h.cache();
            byte[] old = pattern(64 * 1024, 60);
            c.write(4 * MIB, MemorySegment.ofArray(old), false);          // dirty, in range 1
            c.engine().policy.setMode(CacheMode.WRITETHROUGH);             // as in the middle of a switch
            byte[] data = pattern(16 * 1024, 61);
            c.write(4 * MIB + 8192, MemorySegment.ofArray(data), false);
            assertThat(c.status().dirtyRangeWrites()).isEqualTo(1);
            assertThat(c.status().dirtyBytes()).isZero();
            assertThat(backingRead(h.backing(), 4 * MIB + 8192, data.length)).isEqualTo(data);
            byte[] want = old.clone();
            System.arraycopy(data, 0, want, 8192, data.length);
            assertThat(cacheRead(c, 4 * MIB, want.length)).isEqualTo(want);
        }
    }

    @Test
    void writearoundDropsTheCachedRangeSoNoReadIsStale() throws IOException {
        try (CacheHarness h = CacheHarness.create(32, DEVICE, NO_WRITEBACK, false)) {
            Cache c = h.cache();
            byte[] a = pattern(64 * 1024, 2);
            c.write(8 * MIB, MemorySegment.ofArray(a), false);           // dirty, in the cache
            byte[] far = pattern(4096, 3);
            h.backing().write(20 * MIB, MemorySegment.ofArray(far), false);
            assertThat(cacheRead(c, 20 * MIB, 4096)).isEqualTo(far);     // a miss, filled
            c.setCacheMode(CacheMode.WRITEAROUND, left -> { });          // drains a
            assertThat(backingRead(h.backing(), 8 * MIB, a.length)).isEqualTo(a);
            byte[] b = pattern(16 * 1024, 4);
            c.write(8 * MIB + 4096, MemorySegment.ofArray(b), false);
            byte[] far2 = pattern(4096, 5);
            c.write(20 * MIB, MemorySegment.ofArray(far2), false);
            byte[] want = a.clone();
            System.arraycopy(b, 0, want, 4096, b.length);
            assertThat(cacheRead(c, 8 * MIB, a.length)).isEqualTo(want);
            assertThat(cacheRead(c, 20 * MIB, 4096)).isEqualTo(far2);
            assertThat(backingRead(h.backing(), 8 * MIB, a.length)).isEqualTo(want);
            CacheStatus s = c.status();
            assertThat(s.dirtyBytes()).isZero();
            assertThat(s.directWrites()).isEqualTo(2);
            assertThat(s.writethroughWrites()).isZero();
            // reads fill in writearound: the second read of a miss is a hit
            long hits = s.readHits();
            cacheRead(c, 30 * MIB, 4096);
            cacheRead(c, 30 * MIB, 4096);
            assertThat(c.status().readHits()).isEqualTo(hits + 1);
        }
    }

    @Test
    void aDirectWriteIsNotUndoneByAReplayedCleanKey() throws IOException {
        try (CacheHarness h = CacheHarness.create(32, DEVICE, NO_WRITEBACK, false)) {
            byte[] a = pattern(64 * 1024, 6);
            h.cache().write(2 * MIB, MemorySegment.ofArray(a), false);
            h.flushAll();                                     // a: written back; its key replays clean
            h.cache().setCacheMode(CacheMode.WRITEAROUND, left -> { });
            byte[] b = pattern(64 * 1024, 7);
            h.cache().write(2 * MIB, MemorySegment.ofArray(b), true);
            h.crash();                                        // the index's invalidation is lost with the process
            assertThat(h.cache().cacheMode()).isEqualTo(CacheMode.WRITEAROUND);
            assertThat(cacheRead(h.cache(), 2 * MIB, b.length)).isEqualTo(b);
            h.powerCut(42);
            assertThat(cacheRead(h.cache(), 2 * MIB, b.length)).isEqualTo(b);
        }
    }

    @Test
    void leavingWritebackDrainsFirstWithProgressAndPersistsTheMode() throws IOException {
        try (CacheHarness h = CacheHarness.create(32, DEVICE, NO_WRITEBACK, false)) {
            Cache c = h.cache();
            List<byte[]> data = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                byte[] d = pattern(512 * 1024, 10 + i);
                data.add(d);
                c.write(i * 3 * MIB, MemorySegment.ofArray(d), false);
            }
            assertThat(c.status().dirtyBytes()).isEqualTo(8 * 512 * 1024);
            List<Long> progress = new ArrayList<>();
            c.setCacheMode(CacheMode.NONE, progress::add);
            assertThat(progress).isNotEmpty();
            assertThat(progress.getLast()).isZero();
            assertThat(c.status().dirtyBytes()).isZero();
            for (int i = 0; i < 8; i++) {
                assertThat(backingRead(h.backing(), i * 3 * MIB, 512 * 1024)).isEqualTo(data.get(i));
            }
            assertThat(c.status().invalidatedBytes()).as("none drops the clean data").isEqualTo(8 * 512 * 1024);
            long misses = c.status().readMisses();
            cacheRead(c, 0, 4096);
            cacheRead(c, 0, 4096);
            assertThat(c.status().readMisses()).as("none: misses do not fill").isEqualTo(misses + 2);
            h.reopen();
            assertThat(h.cache().cacheMode()).isEqualTo(CacheMode.NONE);
            h.cache().setCacheMode(CacheMode.WRITEBACK, left -> { });
            h.reopen();
            assertThat(h.cache().cacheMode()).isEqualTo(CacheMode.WRITEBACK);
        }
    }

    /**
     * The cutoff over dirty data: a sequential stream over a range whose dirty data is not yet
     * (durably) written back goes into the cache; over a clean range it goes to the backing device.
     * Reads see the newest data throughout; after writeback and after a power cut the backing
     * device holds the stream, never the older dirty data over it.
     */
    @Test
    void cutoffOverDirtyDataNeverReturnsStaleDataNorLetsWritebackOverwriteIt() throws IOException {
        try (CacheHarness h = CacheHarness.create(48, DEVICE, NO_WRITEBACK, false)) {
            Cache c = h.cache();
            c.setSequentialCutoff(1 * MIB);
            byte[] old0 = pattern(64 * 1024, 20);
            byte[] old1 = pattern(64 * 1024, 21);
            c.write(1 * MIB, MemorySegment.ofArray(old0), false);        // range 0: dirty
            c.write(5 * MIB, MemorySegment.ofArray(old1), false);        // range 1: dirty
            c.flush();
            // writeback writes a batch (range 0 and 1) but the dirty tail moves only with the next step
            assertThat(c.writebackForTests().step()).isEqualTo(Writeback.Step.PROGRESS);
            assertThat(backingRead(h.backing(), 5 * MIB, old1.length)).isEqualTo(old1);
            byte[] stream = pattern((int) (12 * MIB), 22);
            for (long at = 0; at < stream.length; at += 512 * 1024) {
                c.write(at, MemorySegment.ofArray(stream).asSlice(at, 512 * 1024), false);
            }
            CacheStatus s = c.status();
            assertThat(s.sequentialBypassWrites()).isPositive();
            assertThat(s.dirtyRangeWrites()).as("ranges 0 and 1 held dirty data not durably written back").isPositive();
            assertThat(s.directWrites()).as("range 2 was clean").isPositive();
            assertThat(cacheRead(c, 0, stream.length)).isEqualTo(stream);
            c.flush();
            c.writebackForTests().step();                                 // syncs and moves the tail; writes the stream's cached part
            c.writebackForTests().step();
            assertThat(cacheRead(c, 0, stream.length)).isEqualTo(stream);
            h.powerCut(7);
            assertThat(cacheRead(h.cache(), 0, stream.length)).isEqualTo(stream);
            h.flushAll();
            assertThat(backingRead(h.backing(), 0, stream.length)).isEqualTo(stream);
        }
    }

    /**
     * A cached write to bytes a direct write is writing waits for it: its data then reaches the
     * backing device (by writeback) after the direct write's, never before it to be overwritten
     * by it. A read of those bytes waits too.
     */
    @Test
    void aCachedWriteAndAReadWaitForADirectWriteToTheSameBytes() throws Exception {
        GatedBacking gated = new GatedBacking(new MemoryBackingDevice(DEVICE, 7));
        try (CacheHarness h = CacheHarness.create(32, gated, NO_WRITEBACK, false)) {
            Cache c = h.cache();
            c.setSequentialCutoff(256 * 1024);
            byte[] seq = pattern((int) MIB, 30);
            gated.hold(10 * MIB);
            AtomicReference<Throwable> failed = new AtomicReference<>();
            Thread direct = Thread.ofPlatform().start(() -> {
                try {
                    c.write(10 * MIB, MemorySegment.ofArray(seq), false);  // 1 MiB > cutoff: direct
                } catch (Throwable t) {
                    failed.set(t);
                }
            });
            assertThat(gated.entered.await(30, TimeUnit.SECONDS)).isTrue();
            byte[] small = pattern(4096, 31);
            Thread cached = Thread.ofPlatform().start(() -> {
                try {
                    c.write(10 * MIB + 8192, MemorySegment.ofArray(small), false);
                } catch (Throwable t) {
                    failed.set(t);
                }
            });
            byte[][] seen = new byte[1][];
            Thread reader = Thread.ofPlatform().start(() -> {
                try {
                    seen[0] = cacheRead(c, 10 * MIB, 4096);
                } catch (Throwable t) {
                    failed.set(t);
                }
            });
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (c.status().directWaits() < 2 && System.nanoTime() < deadline) {
                Thread.onSpinWait();
            }
            assertThat(c.status().directWaits()).as("the cached write and the read wait").isEqualTo(2);
            gated.release();
            direct.join();
            cached.join();
            reader.join();
            assertThat(failed.get()).isNull();
            assertThat(seen[0]).isEqualTo(Arrays.copyOf(seq, 4096));
            byte[] want = seq.clone();
            System.arraycopy(small, 0, want, 8192, small.length);
            assertThat(cacheRead(c, 10 * MIB, want.length)).isEqualTo(want);
            h.flushAll();
            assertThat(backingRead(h.backing(), 10 * MIB, want.length)).isEqualTo(want);
        }
    }

    @Test
    void sequentialReadsPastTheCutoffDoNotFill() throws IOException {
        try (CacheHarness h = CacheHarness.create(32, DEVICE, NO_WRITEBACK, false)) {
            Cache c = h.cache();
            c.setSequentialCutoff(1 * MIB);
            for (long at = 0; at < 4 * MIB; at += 256 * 1024) {
                cacheRead(c, at, 256 * 1024);
            }
            CacheStatus s = c.status();
            assertThat(s.sequentialBypassReads()).isEqualTo(12);   // the first 1 MiB of the stream fills
            assertThat(s.fillsBypassed()).isEqualTo(12);
            assertThat(s.fillBytes()).isEqualTo(1 * MIB);
        }
    }

    @Test
    void invalidateDropsCleanDataAndKeepsDirtyData() throws IOException {
        try (CacheHarness h = CacheHarness.create(32, DEVICE, NO_WRITEBACK, false)) {
            Cache c = h.cache();
            byte[] clean = pattern(64 * 1024, 40);
            c.write(12 * MIB, MemorySegment.ofArray(clean), false);
            h.flushAll();                                              // written back: clean
            byte[] fill = pattern(4096, 41);
            h.backing().write(20 * MIB, MemorySegment.ofArray(fill), false);
            cacheRead(c, 20 * MIB, 4096);                              // a clean fill
            byte[] dirty = pattern(32 * 1024, 42);
            c.write(16 * MIB + 128 * 1024, MemorySegment.ofArray(dirty), false);
            // (in a range that still holds dirty data, written-back extents are kept: the index
            // does not tell them from dirty ones; only extents filled clean go)
            long dirtyBytes = c.status().dirtyBytes();
            assertThat(dirtyBytes).isEqualTo(dirty.length);
            long dropped = c.invalidate();
            assertThat(dropped).as("the written-back write and the fill").isEqualTo(clean.length + 4096);
            assertThat(c.status().dirtyBytes()).isEqualTo(dirtyBytes);
            assertThat(cacheRead(c, 16 * MIB + 128 * 1024, dirty.length)).isEqualTo(dirty);
            assertThat(backingRead(h.backing(), 16 * MIB + 128 * 1024, dirty.length)).isNotEqualTo(dirty);
            long misses = c.status().readMisses();
            assertThat(cacheRead(c, 12 * MIB, clean.length)).isEqualTo(clean);
            assertThat(c.status().readMisses()).isEqualTo(misses + 1);
            c.flush();
            h.powerCut(3);
            assertThat(cacheRead(h.cache(), 16 * MIB + 128 * 1024, dirty.length)).isEqualTo(dirty);
            h.flushAll();
            assertThat(backingRead(h.backing(), 16 * MIB + 128 * 1024, dirty.length)).isEqualTo(dirty);
        }
    }

    /**
     * A direct write acknowledged before a process crash is still unflushed in the OS (the backing
     * disk): the first FLUSH after the restart must flush the backing device, or a power cut then
     * loses a write the client was told is durable. (Found by CacheModelTest, seed
     * 2207938069244598032.)
     */
    @Test
    void aFlushAfterACrashFlushesDirectWritesOfTheCrashedProcess() throws IOException {
        for (long cutSeed = 0; cutSeed < 8; cutSeed++) {
            try (CacheHarness h = CacheHarness.create(32, new PowerCutBackingDevice(DEVICE), NO_WRITEBACK, false)) {
                h.cache().setCacheMode(CacheMode.WRITEAROUND, left -> { });
                byte[] data = pattern(64 * 1024, 70);
                h.cache().write(2 * MIB, MemorySegment.ofArray(data), false);
                h.crash();
                h.cache().flush();
                h.powerCut(cutSeed);
                assertThat(cacheRead(h.cache(), 2 * MIB, data.length)).as("cut seed %d", cutSeed).isEqualTo(data);
            }
        }
    }

    @Test
    void aFlushFlushesDirectWritesOnTheBackingDevice() throws IOException {
        try (CacheHarness h = CacheHarness.create(32, DEVICE, NO_WRITEBACK, false)) {
            MemoryBackingDevice disk = (MemoryBackingDevice) h.backing();
            Cache c = h.cache();
            c.setCacheMode(CacheMode.WRITEAROUND, left -> { });
            long before = disk.flushCount();
            c.flush();
            assertThat(disk.flushCount()).as("nothing written directly: nothing to flush").isEqualTo(before);
            c.write(0, MemorySegment.ofArray(pattern(4096, 50)), false);
            c.flush();
            assertThat(disk.flushCount()).isEqualTo(before + 1);
        }
    }

    /** A backing device whose writes starting at a given offset wait until released. */
    static final class GatedBacking implements BackingDevice {
        private final BackingDevice d;
        final CountDownLatch entered = new CountDownLatch(1);
        private final CountDownLatch released = new CountDownLatch(1);
        private volatile long heldAt = -1;

        GatedBacking(BackingDevice d) {
            this.d = d;
        }

        void hold(long offset) {
            heldAt = offset;
        }

        void release() {
            released.countDown();
        }

        @Override
        public long fingerprint() {
            return d.fingerprint();
        }

        @Override
        public String describe() {
            return "gated " + d.describe();
        }

        @Override
        public long size() {
            return d.size();
        }

        @Override
        public void read(long offset, MemorySegment dst) throws IOException {
            d.read(offset, dst);
        }

        @Override
        public void write(long offset, MemorySegment src, boolean fua) throws IOException {
            if (offset == heldAt) {
                heldAt = -1;
                entered.countDown();
                try {
                    released.await();
                } catch (InterruptedException ex) {
                    throw new java.io.InterruptedIOException();
                }
            }
            d.write(offset, src, fua);
        }

        @Override
        public void flush() throws IOException {
            d.flush();
        }

        @Override
        public void trim(long offset, long length) throws IOException {
            d.trim(offset, length);
        }

        @Override
        public void writeZeroes(long offset, long length, boolean fua) throws IOException {
            d.writeZeroes(offset, length, fua);
        }

        @Override
        public void close() throws IOException {
            d.close();
        }
    }
}
