package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.FaultyBackingDevice;
import io.pmcache.backing.FaultyBackingDevice.Op;
import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.device.DeviceClosedException;
import io.pmcache.format.CacheInfo;
import io.pmcache.testing.Hangs;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A full cache whose space does not come back (writeback off, or a backing device whose writes
 * keep failing), writers waiting for that space, and what must still work then (issue 9, items
 * 5 to 7): reads, {@code status()}, gc, and {@code close()}, which must fail the waiting writers
 * with {@link DeviceClosedException} and return, keeping every acknowledged write.
 *
 * <p>No test here depends on timing: each drives the cache into a state that lasts (the cache is
 * full and nothing can free space) and waits for it on a condition; the bounds (tens of seconds)
 * only separate "done" from "never". A bound that passes fails the test with the stacks of the
 * cache's threads and of the test's own, and the lock each one waits for and its owner. The test
 * then unwedges the cache (interrupting its own waiting threads) so that the next tests run.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 600, unit = TimeUnit.SECONDS)
class BlockedOnSpaceTest {
    private static final long MIB = Rig.MIB;
    private static final int SEGMENTS = 16;
    /** Segments kept for the key log: data allocations wait at this many free (max(2, segments / 64)). */
    private static final int RESERVE = 2;
    private static final int DEVICE = (int) (64 * MIB);
    private static final int BLOCK = 64 * 1024;
    private static final int WRITERS = 4;
    /** Writer i writes [i * 8 MiB, (i + 1) * 8 MiB): 32 MiB in all, twice the cache. */
    private static final long WRITER_SPAN = 8 * MIB;
    /** Written and written back before the cache fills: reads of it may miss and fill. */
    private static final long WRITTEN_BACK = 32 * MIB;
    /** Never written: every read of it misses. */
    private static final long MISSING = 40 * MIB;
    private static final Duration BOUND = Duration.ofSeconds(30);
    private static final Predicate<Thread> DUMPED = Hangs.cacheThreadsAnd("space-");

    /** Why space does not come back. */
    enum Cause {
        /** The writeback worker is off: nothing becomes clean. */
        WRITEBACK_OFF,
        /** Every backing write fails: writeback retries and makes no progress. */
        BACKING_WRITES_FAIL
    }

    /** A thread writing 64 KiB blocks round its own span until a write fails; remembers what was acknowledged. */
    static final class Writer {
        final int index;
        final Thread thread;
        /** Last acknowledged content per block offset. Read after join. */
        final Map<Long, byte[]> acked = new HashMap<>();
        /** The write in flight when the writer stopped, or null. Read after join. */
        long pendingOffset = -1;
        byte[] pending;
        final AtomicReference<Throwable> ended = new AtomicReference<>();

        Writer(int index, Cache cache, long seed) {
            this.index = index;
            SplittableRandom r = new SplittableRandom(seed);
            this.thread = Thread.ofPlatform().daemon().name("space-writer-" + index).unstarted(() -> {
                try {
                    for (long i = 0; ; i++) {
                        long off = index * WRITER_SPAN + (i % (WRITER_SPAN / BLOCK)) * BLOCK;
                        byte[] data = new byte[BLOCK];
                        r.nextBytes(data);
                        pendingOffset = off;
                        pending = data;
                        cache.write(off, MemorySegment.ofArray(data), false);
                        acked.put(off, data);
                        pending = null;
                        pendingOffset = -1;
                    }
                } catch (Throwable ex) {
                    ended.set(ex);
                }
            });
        }
    }

    /** A thread reading missing, written-back and acknowledged data until a read fails; checks what it reads. */
    static final class Reader {
        final Thread thread;
        final AtomicReference<Throwable> ended = new AtomicReference<>();
        volatile long reads;

        Reader(int index, Cache cache, byte[] expected, long seed) {
            SplittableRandom r = new SplittableRandom(seed);
            this.thread = Thread.ofPlatform().daemon().name("space-reader-" + index).unstarted(() -> {
                try {
                    while (true) {
                        long off = r.nextBoolean() ? WRITTEN_BACK + r.nextLong(MIB / BLOCK) * BLOCK
                                : MISSING + r.nextLong((DEVICE - MISSING) / BLOCK) * BLOCK;
                        byte[] got = new byte[BLOCK];
                        cache.read(off, MemorySegment.ofArray(got));
                        int bad = Arrays.mismatch(got, 0, BLOCK, expected, (int) off, (int) off + BLOCK);
                        if (bad >= 0) {
                            throw new AssertionError("read [" + off + ", +" + BLOCK + ") wrong at byte " + (off + bad));
                        }
                        reads++;
                    }
                } catch (Throwable ex) {
                    ended.set(ex);
                }
            });
        }
    }

    /** A cache that has filled up with the writers waiting for space; the test's starting state. */
    private static final class Full implements AutoCloseable {
        final Seed seed;
        final Cause cause;
        final MemoryBackingDevice disk = new MemoryBackingDevice(DEVICE, 7);
        final FaultyBackingDevice faulty = new FaultyBackingDevice(disk);
        /** What the device must read as outside the writers' spans (and inside, where nothing was acknowledged). */
        final byte[] expected = new byte[DEVICE];
        final Rig rig;
        final List<Writer> writers = new ArrayList<>();
        final List<Reader> readers = new ArrayList<>();
        /** Other threads of the test, joined at close. */
        final List<Thread> others = new ArrayList<>();

        Full(Seed seed, Cause cause) throws IOException {
            this.seed = seed;
            this.cause = cause;
            SplittableRandom r = seed.random();
            r.nextBytes(expected);
            disk.write(0, MemorySegment.ofArray(expected), false);
            rig = Rig.format(SEGMENTS, faulty, false);
            rig.open(new CacheOptions(1, 50, cause != Cause.WRITEBACK_OFF, true));
            // 1 MiB written and written back while the backing device works: once gc passes its
            // keys (it will, the cache fills), reads of it miss and fill.
            byte[] back = new byte[(int) MIB];
            r.nextBytes(back);
            rig.cache.write(WRITTEN_BACK, MemorySegment.ofArray(back), false);
            System.arraycopy(back, 0, expected, (int) WRITTEN_BACK, back.length);
            rig.cache.flushAll(left -> { });
            if (cause == Cause.BACKING_WRITES_FAIL) {
                faulty.failAlways(Op.WRITE);
            }
            try {
                fill();
            } catch (Throwable ex) {
                close();
                throw ex;
            }
        }

        private void fill() {
            for (int i = 0; i < WRITERS; i++) {
                Writer w = new Writer(i, rig.cache, seed.value() + 100 + i);
                writers.add(w);
                w.thread.start();
            }
            Engine e = rig.cache.engine();
            Hangs.await(() -> stuck(e), Duration.ofSeconds(120),
                    () -> seed + " " + cause + ": the writers fill the cache and wait for space that cannot come back",
                    DUMPED);
            for (Writer w : writers) {
                assertThat(w.ended.get()).as("%s %s: writer %d stopped before the cache was full", seed, cause,
                        w.index).isNull();
            }
        }

        /**
         * True once the writers wait for space that nothing can free any more. The order of the
         * checks matters: first gc has passed everything written back (the key tail reached the
         * dirty tail, which stands still: writeback is off or failing), so from then on no segment
         * is freed; then no segment is free beyond the key log's reserve, which stays so; then
         * every writer waits in the engine and one waits for a segment. A check in another order
         * could catch writers waiting for a moment while gc still frees the written-back data.
         */
        private boolean stuck(Engine e) {
            CacheInfo info = e.info.current();
            if (info.keyTail().ksetSeq() < info.dirtyTail().ksetSeq()) {
                return false;
            }
            if (SEGMENTS - e.allocator.usedCount() > RESERVE) {
                return false;
            }
            return e.allocator.hasWaiters() && writers.stream().allMatch(
                    w -> w.ended.get() != null || Hangs.waitingIn(w.thread, "io.pmcache.cache."));
        }

        void startReaders(int n) {
            for (int i = 0; i < n; i++) {
                Reader rd = new Reader(i, rig.cache, expected, seed.value() + 200 + i);
                readers.add(rd);
                rd.thread.start();
            }
        }

        /**
         * After the cache was closed: reopens it on a working backing device and checks every
         * acknowledged write, the data around them, and the drained backing device.
         */
        void verifyAfterReopen(String where) throws IOException {
            faulty.heal();
            rig.open(new CacheOptions(1, 50, true, true));
            byte[] want = expected.clone();
            for (Writer w : writers) {
                w.acked.forEach((off, data) -> System.arraycopy(data, 0, want, (int) (long) off, BLOCK));
            }
            byte[] got = new byte[DEVICE];
            for (long off = 0; off < DEVICE; off += 4 * MIB) {
                rig.cache.read(off, MemorySegment.ofArray(got).asSlice(off, 4 * MIB));
            }
            for (Writer w : writers) {
                if (w.pending != null) {
                    // Not acknowledged: each sector holds the old or the new content (never garbage).
                    int at = (int) w.pendingOffset;
                    for (int s = 0; s < BLOCK; s += 512) {
                        if (Arrays.equals(got, at + s, at + s + 512, w.pending, s, s + 512)) {
                            System.arraycopy(w.pending, s, want, at + s, 512);
                        }
                    }
                }
            }
            int bad = Arrays.mismatch(got, want);
            assertThat(bad).as("%s %s %s: first wrong byte after reopen (acknowledged writes are kept)", seed, cause,
                    where).isEqualTo(-1);
            rig.cache.flushAll(left -> { });
            assertThat(Arrays.mismatch(disk.toByteArray(), want)).as("%s %s %s: first wrong byte on the drained disk",
                    seed, cause, where).isEqualTo(-1);
        }

        /**
         * Ends every thread of the test, the engine's way or not: a hung test must not leave a
         * wedged cache behind. Interrupting a writer that waits for space fails its write, which
         * releases the locks it holds, so reads blocked behind it go on.
         */
        @Override
        public void close() throws IOException {
            faulty.heal();
            for (Writer w : writers) {
                w.thread.interrupt();
            }
            for (Reader rd : readers) {
                rd.thread.interrupt();
            }
            try {
                for (Writer w : writers) {
                    w.thread.join(BOUND);
                }
                for (Reader rd : readers) {
                    rd.thread.join(BOUND);
                }
                for (Thread t : others) {
                    t.join(BOUND);
                }
            } catch (InterruptedException ex) {
                Thread.currentThread().interrupt();
            }
            rig.close();
        }
    }

    /**
     * Item 6: a read must not wait for a writer that waits for space. Today a writer waits in
     * {@code SegmentAllocator.allocateData} holding its data head's lock, and a read miss that
     * fills takes the same lock ({@code DataHead.allocateForFill}). One data head: every read
     * shares it with the waiting writers.
     */
    @ParameterizedTest
    @EnumSource(Cause.class)
    void readsDoNotWaitBehindAWriterThatWaitsForSpace(Cause cause, Seed seed) throws Exception {
        try (Full full = new Full(seed, cause)) {
            Cache cache = full.rig.cache;
            // A miss (fills), written-back data (a hit, or a miss once gc passed it), acknowledged data (a hit).
            Writer w0 = full.writers.get(0);
            long[] offsets = {MISSING + 3 * MIB, WRITTEN_BACK + 256 * 1024, MISSING + 7 * MIB + 4096, w0.index * WRITER_SPAN};
            for (long off : offsets) {
                AtomicReference<Throwable> failed = new AtomicReference<>();
                byte[] got = new byte[BLOCK];
                Thread t = Thread.ofPlatform().daemon().name("space-read-" + off).start(() -> {
                    try {
                        cache.read(off, MemorySegment.ofArray(got));
                    } catch (Throwable ex) {
                        failed.set(ex);
                    }
                });
                Hangs.join(t, BOUND, seed + " " + cause + ": a read of [" + off + ", +" + BLOCK
                        + ") while writers wait for space", DUMPED);
                assertThat(failed.get()).as("%s %s: the read of %d", seed, cause, off).isNull();
                if (off >= WRITTEN_BACK) {
                    assertThat(Arrays.mismatch(got, 0, BLOCK, full.expected, (int) off, (int) off + BLOCK))
                            .as("%s %s: first wrong byte of the read of %d", seed, cause, off).isEqualTo(-1);
                }
            }
            assertThat(full.rig.cache.status().readMisses()).as("some reads missed").isPositive();
            assertThat(full.rig.cache.status().spaceWaitNanos()).as("%s: the waits in progress count", seed)
                    .isPositive();
        }
    }

    /**
     * Item 5: close() while writers wait for space, alone or with readers racing it (which, while
     * item 6 stands, wait behind the writers too). It must return within a bound, fail each
     * waiting writer with DeviceClosedException (not leave it waiting, not let its write succeed
     * unseen), let each read finish or fail the same way, and keep every acknowledged write
     * across a reopen.
     */
    @ParameterizedTest(name = "{0}, {1} readers")
    @CsvSource({"WRITEBACK_OFF, 0", "WRITEBACK_OFF, 3", "BACKING_WRITES_FAIL, 0", "BACKING_WRITES_FAIL, 3"})
    void closeFailsTheWritersThatWaitForSpaceAndReturns(Cause cause, int readers, Seed seed) throws Exception {
        try (Full full = new Full(seed, cause)) {
            full.startReaders(readers);
            Cache cache = full.rig.cache;
            AtomicReference<Throwable> closeFailed = new AtomicReference<>();
            Thread closer = Thread.ofPlatform().daemon().name("space-close").start(() -> {
                try {
                    cache.close();
                } catch (Throwable ex) {
                    closeFailed.set(ex);
                }
            });
            full.others.add(closer);
            Hangs.join(closer, BOUND, seed + " " + cause + ": close() with " + WRITERS
                    + " writers waiting for space and " + readers + " readers", DUMPED);
            assertThat(closeFailed.get()).as("%s %s: close()", seed, cause).isNull();
            for (Writer w : full.writers) {
                Hangs.join(w.thread, BOUND, seed + " " + cause + ": writer " + w.index + " after close()", DUMPED);
                assertThat(w.ended.get()).as("%s %s: how writer %d's waiting write ended", seed, cause, w.index)
                        .isInstanceOf(DeviceClosedException.class);
            }
            for (Reader rd : full.readers) {
                Hangs.join(rd.thread, BOUND, seed + " " + cause + ": " + rd.thread.getName() + " after close()", DUMPED);
                assertThat(rd.ended.get()).as("%s %s: how %s ended (a read either completes or is refused)", seed,
                        cause, rd.thread.getName()).isInstanceOf(DeviceClosedException.class);
            }
            full.verifyAfterReopen("after close");
        }
    }

    /**
     * Item 7, in part: {@code status()} must answer while a writer waits for a log segment.
     * Data-less keys (write-zeroes) fill the key log while writeback is off; the writer then
     * waits in {@code allocateLog} holding its range, stream and head locks, and
     * {@code status()} reads the head under the head lock.
     */
    @Test
    void statusAnswersWhileAWriterWaitsForALogSegment(Seed seed) throws Exception {
        try (Rig rig = Rig.format(SEGMENTS, new MemoryBackingDevice(DEVICE, 7), false)) {
            rig.open(new CacheOptions(1, 50, false, true));
            Flood flood = new Flood(rig.cache, 1_000_000);
            try {
                flood.thread.start();
                Hangs.await(() -> flood.ended.get() != null || waitingForSpace(flood.thread),
                        Duration.ofSeconds(120), () -> seed + ": write-zeroes fill the key log and wait for space",
                        DUMPED);
                assertThat(flood.ended.get()).as("%s: the flood stopped early", seed).isNull();
                AtomicReference<CacheStatus> st = new AtomicReference<>();
                Thread t = Thread.ofPlatform().daemon().name("space-status").start(() -> st.set(rig.cache.status()));
                Hangs.join(t, BOUND, seed + ": status() while a writer waits for a log segment", DUMPED);
                assertThat(st.get()).as("%s: status()", seed).isNotNull();
            } finally {
                flood.thread.interrupt();
                flood.thread.join(BOUND);
            }
        }
    }

    /**
     * Item 7: a writer waits in {@code allocateLog} for a log segment holding its range lock
     * while gc, the only thread that frees log segments, waits for that range lock in
     * {@code cleanIndex}: neither ever goes on, even once the backing device heals.
     *
     * <p>The state is built step by step: 1 MiB + 4 KiB written to range 0 and written back (a
     * data segment full of range-0 data, no longer the data head's); backing writes fail; a flood
     * of 4 KiB write-zeroes over range 0 fills the key log. gc, passing the written-back keys,
     * reclaims that segment (its extents in range 0 are now stale and to be cleaned) and is held
     * at the end of that step by a step hook, while the flood fills the cache and waits for a log
     * segment. Then gc is let go and the backing device heals: the flood must finish.
     */
    @Test
    void gcCleaningTheIndexDoesNotDeadlockWithAWriterWaitingForALogSegment(Seed seed) throws Exception {
        MemoryBackingDevice disk = new MemoryBackingDevice(DEVICE, 7);
        byte[] want = new byte[DEVICE];
        seed.random().nextBytes(want);
        disk.write(0, MemorySegment.ofArray(want), false);
        FaultyBackingDevice faulty = new FaultyBackingDevice(disk);
        HoldGcAfterReclaim hook = new HoldGcAfterReclaim();
        try (Rig rig = Rig.format(SEGMENTS, faulty, false)) {
            rig.open(new CacheOptions(1, 50, true, true));
            byte[] data = new byte[(int) MIB + 4096];
            seed.random().nextBytes(data);
            rig.cache.write(0, MemorySegment.ofArray(data), false);
            rig.cache.flushAll(left -> { });
            rig.cache.stepHookForTests(hook);
            faulty.failAlways(Op.WRITE);
            Flood flood = new Flood(rig.cache, 300_000); // more keys than the 16 MiB key log holds
            try {
                flood.thread.start();
                assertThat(hook.held.await(120, TimeUnit.SECONDS))
                        .as("%s: gc reclaimed the written-back segment (and was held after that step)\n%s", seed,
                                Hangs.dump(DUMPED)).isTrue();
                Hangs.await(() -> flood.ended.get() != null || waitingForSpace(flood.thread),
                        Duration.ofSeconds(120), () -> seed + ": write-zeroes fill the key log and wait for space",
                        DUMPED);
                assertThat(flood.ended.get()).as("%s: the flood stopped early", seed).isNull();
                hook.release.countDown();
                faulty.heal();
                Hangs.join(flood.thread, Duration.ofSeconds(60), seed + ": the flood of write-zeroes after gc was "
                        + "let go and the backing device healed", DUMPED);
                assertThat(flood.ended.get()).as("%s: how the flood ended", seed).isInstanceOf(Flood.Done.class);
            } finally {
                hook.release.countDown();
                faulty.heal();
                flood.thread.interrupt();
                flood.thread.join(BOUND);
            }
            Arrays.fill(want, 0, (int) (4 * MIB), (byte) 0);
            verify(rig, want, seed + ": after the flood");
            rig.closeCache();
            rig.open(new CacheOptions(1, 50, true, true));
            verify(rig, want, seed + ": after reopen");
            rig.cache.flushAll(left -> { });
            assertThat(Arrays.mismatch(disk.toByteArray(), want)).as("%s: first wrong byte on the drained disk", seed)
                    .isEqualTo(-1);
        }
    }

    /**
     * True when {@code t} waits for cache space: today in {@link SegmentAllocator} (a data or a
     * log segment). If the engine comes to wait for space elsewhere, name that place here.
     */
    static boolean waitingForSpace(Thread t) {
        return Hangs.waitingIn(t, "SegmentAllocator");
    }

    private static void verify(Rig rig, byte[] want, String where) throws IOException {
        byte[] got = new byte[want.length];
        for (long off = 0; off < want.length; off += 4 * MIB) {
            rig.cache.read(off, MemorySegment.ofArray(got).asSlice(off, 4 * MIB));
        }
        assertThat(Arrays.mismatch(got, want)).as("%s: first wrong byte", where).isEqualTo(-1);
    }

    /** A thread writing zeroes over range 0, 4 KiB at a time, {@code count} times. */
    static final class Flood {
        /** How a flood that did all its writes ends. */
        static final class Done extends Throwable {
            Done() {
                super("done", null, false, false);
            }
        }

        final Thread thread;
        final AtomicReference<Throwable> ended = new AtomicReference<>();

        Flood(Cache cache, int count) {
            thread = Thread.ofPlatform().daemon().name("space-flood").unstarted(() -> {
                try {
                    for (int i = 0; i < count; i++) {
                        cache.writeZeroes((i % 1024) * 4096L, 4096, false);
                    }
                    ended.set(new Done());
                } catch (Throwable ex) {
                    ended.set(ex);
                }
            });
        }
    }

    /**
     * Holds the gc worker at the end of the first step (after the key tail moved) in which it
     * reclaimed a data segment, until released.
     */
    static final class HoldGcAfterReclaim implements StepHook {
        final CountDownLatch held = new CountDownLatch(1);
        final CountDownLatch release = new CountDownLatch(1);
        private volatile boolean reclaimed;
        private final AtomicBoolean fired = new AtomicBoolean();

        @Override
        public void at(Point p) {
            if (!Thread.currentThread().getName().startsWith("pmcache-gc")) {
                return;
            }
            if (p == Point.RECLAIM_AFTER_BUMP) {
                reclaimed = true;
            } else if (p == Point.GC_AFTER_TAIL && reclaimed && fired.compareAndSet(false, true)) {
                held.countDown();
                try {
                    release.await();
                } catch (InterruptedException ex) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }
}
