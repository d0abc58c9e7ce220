package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.BackingDevice;
import io.pmcache.format.Layout;
import io.pmcache.media.Medium;
import io.pmcache.media.PowerCutMedium;
import java.io.IOException;
import java.util.concurrent.locks.LockSupport;

/**
 * A cache whose background work happens only when the test thread asks for it, so that a
 * workload stores the same bytes in the same order on every run.
 *
 * <ul>
 *   <li>The writeback and gc workers are off; {@link #writeback} and {@link #gc} are this test's
 *       own {@link Writeback} and {@link GarbageCollector} on the cache's engine, stepped by the
 *       caller.</li>
 *   <li>The sealer, which always runs, is held at its step boundary before the first operation
 *       ({@link Workers#holdForTests}), so ksets are sealed only by flushes, FUA-less full ksets
 *       and close — never by age.</li>
 *   <li>Writeback flushes the backing device in its syncer thread while the stepping thread
 *       writes the next batch; a step hook makes that flush wait until the stepping thread waits
 *       for it, so each flush covers the same writes on every run.</li>
 * </ul>
 */
final class SteppedCache {
    /** Writeback and gc workers off. */
    static final CacheOptions OPTIONS = new CacheOptions(1, -1, false, false);

    final Cache cache;
    final Writeback writeback;
    final GarbageCollector gc;

    private SteppedCache(Cache cache) {
        this.cache = cache;
        Engine e = cache.engine();
        this.writeback = new Writeback(e);
        this.gc = new GarbageCollector(e);
    }

    /** A power-cut medium of {@code segments} 1 MiB segments, formatted in front of {@code disk}. */
    static PowerCutMedium formatted(int segments, BackingDevice disk) throws IOException {
        PowerCutMedium medium = PowerCutMedium.create(Layout.segmentAreaOffset(segments) + segments * Rig.MIB);
        Cache.format(medium, disk, new FormatOptions(Rig.MIB, false));
        return medium;
    }

    /** Opens the cache and holds its sealer; the calling thread is the one that steps it. */
    static SteppedCache open(Medium medium, BackingDevice backing) throws IOException {
        Cache cache = Cache.open(medium, backing, OPTIONS);
        Workers workers = cache.workers();
        workers.holdForTests();
        long deadline = System.nanoTime() + 60_000_000_000L;
        for (Thread t : workers.threadsForTests()) {
            while (!workers.heldForTests(t)) {
                assertThat(System.nanoTime()).as("%s reaches its step boundary", t.getName()).isLessThan(deadline);
                LockSupport.parkNanos(100_000);
            }
        }
        Thread stepping = Thread.currentThread();
        cache.stepHookForTests(p -> {
            if (p == StepHook.Point.WRITEBACK_BEFORE_SYNC) {
                awaitWaiting(stepping);
            }
        });
        return new SteppedCache(cache);
    }

    /** The syncer goes on once the stepping thread has written its batch and waits for the flush. */
    private static void awaitWaiting(Thread stepping) {
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (stepping.getState() != Thread.State.WAITING && System.nanoTime() < deadline) {
            LockSupport.parkNanos(20_000);
        }
    }

    Engine engine() {
        return cache.engine();
    }

    int freeSegments() {
        SegmentAllocator a = cache.engine().allocator;
        return a.count() - a.usedCount();
    }

    /** Up to {@code steps} writeback steps (-1: until idle); fails on a failed step. */
    void writebackSteps(int steps, String where) {
        for (int s = 0; steps < 0 || s < steps; s++) {
            Writeback.Step step = writeback.step();
            assertThat(step).as("%s: writeback step %d", where, s).isNotEqualTo(Writeback.Step.FAILED);
            if (step == Writeback.Step.IDLE) {
                return;
            }
            assertThat(s).as("%s: writeback steps", where).isLessThan(100_000);
        }
    }

    /** Up to {@code steps} gc steps (-1: until gc reaches the dirty tail). */
    void gcSteps(int steps, String where) {
        for (int s = 0; (steps < 0 || s < steps) && gc.step(); s++) {
            assertThat(s).as("%s: gc steps", where).isLessThan(1_000_000);
        }
    }

    /** Clean stop: every kset sealed and persisted. */
    void close() throws IOException {
        writeback.close();
        cache.close();
    }

    /** kill -9: nothing more is sealed or persisted. */
    void crash() {
        writeback.close();
        cache.abandonForTests();
    }
}
