package io.pmcache.cache;

import io.pmcache.backing.BackingDevice;
import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.device.BlockDevice;
import io.pmcache.media.PowerCutMedium;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * A cache on a {@link PowerCutMedium} in front of an in-memory backing device, owning both, with
 * the restarts tests need: clean reopen, process crash, and power cut.
 */
public final class CacheHarness implements BlockDevice {
    public static final long MIB = 1L << 20;

    private PowerCutMedium medium;
    private BackingDevice backing;
    /** A power-cut backing disk no instance uses any more, whose memory the next cut reuses. */
    private PowerCutBackingDevice spare;
    private final CacheOptions options;
    private volatile Cache cache;
    /** Installed on every instance; idle unless a test arms it. Its foreground is the creating thread. */
    private final CutHook hook = new CutHook(Thread.currentThread(), () -> cache.engine().allocator.hasWaiters());

    private CacheHarness(PowerCutMedium medium, BackingDevice backing, CacheOptions options) throws IOException {
        this.medium = medium;
        this.backing = backing;
        this.options = options;
        open();
    }

    private void open() throws IOException {
        cache = Cache.open(medium, backing, options);
        cache.stepHookForTests(hook);
    }

    /** A fresh cache of {@code segments} 1 MiB segments in front of {@code deviceSize} bytes. */
    public static CacheHarness create(int segments, long deviceSize, CacheOptions options, boolean dataCrc)
            throws IOException {
        return create(segments, new MemoryBackingDevice(deviceSize, 7), options, dataCrc);
    }

    public static CacheHarness create(int segments, BackingDevice backing, CacheOptions options, boolean dataCrc)
            throws IOException {
        long mediumSize = io.pmcache.format.Layout.segmentAreaOffset(segments) + segments * MIB;
        PowerCutMedium medium = PowerCutMedium.create(mediumSize);
        Cache.format(medium, backing, new FormatOptions(MIB, dataCrc));
        return new CacheHarness(medium, backing, options);
    }

    public Cache cache() {
        return cache;
    }

    public PowerCutMedium medium() {
        return medium;
    }

    public BackingDevice backing() {
        return backing;
    }

    /** The hook that freezes a worker mid-step for {@link #powerCutMidStep}. */
    CutHook hook() {
        return hook;
    }

    /** Writes back everything (a parked worker would block it: the hook is cancelled first). */
    public void flushAll() throws IOException {
        hook.cancel();
        cache.flushAll(left -> { });
    }

    /** Clean stop and start. */
    public void reopen() throws IOException {
        hook.cancel();
        cache.close();
        assertWorkersStopped(); // the next instance opens the same medium
        open();
    }

    /** kill -9: the workers are stopped without sealing anything; the mapped bytes survive as they are. */
    public void crash() throws IOException {
        freeze();
        PowerCutMedium image = medium.crash();
        medium.close();
        medium = image; // the backing disk keeps everything written to it: the OS has it
        open();
    }

    /** Power loss: only what was persisted survives, plus an arbitrary subset of the rest. */
    public void powerCut(long seed) throws IOException {
        freeze();
        restartOn(medium.cut(seed), cutBacking(seed));
    }

    /**
     * Power loss in the middle of a writeback or gc step: call after {@link CutHook#claim} returned
     * true, i.e. while a worker is parked at the hook's point. The other workers are stopped at
     * their step boundaries (or, reaching a point, parked there too), the image of the medium and
     * of the backing disk is taken, and only then is the old instance let go and stopped: it goes
     * on storing into the old medium, which is no longer the image.
     *
     * <p>The caller must not hold I/O in flight (it is at an operation boundary).
     */
    public void powerCutMidStep(long seed) throws IOException {
        Workers workers = cache.workers();
        workers.holdForTests();
        awaitQuiet(workers);
        PowerCutMedium image = medium.cut(seed);
        BackingDevice disk = cutBacking(seed);
        hook.release();
        cache.abandonForTests();
        restartOn(image, disk);
    }

    /**
     * Waits until no worker can store into the medium any more: each is held at a step boundary,
     * or parked at a point, or (the writeback worker) waits for the parked syncer (a flush it
     * submitted) and is not between the backing sync and the dirty-tail store.
     */
    private void awaitQuiet(Workers workers) {
        List<Thread> threads = workers.threadsForTests();
        Thread writeback = workers.writebackThreadForTests();
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (true) {
            boolean syncerParked = hook.parkedOutside(threads);
            List<Thread> busy = new ArrayList<>();
            for (Thread t : threads) {
                boolean quiet = !t.isAlive() || workers.heldForTests(t) || hook.isParked(t)
                        || (t == writeback && syncerParked && !hook.inStore(t));
                if (!quiet) {
                    busy.add(t);
                }
            }
            if (busy.isEmpty()) {
                return;
            }
            if (System.nanoTime() > deadline) {
                StringBuilder sb = new StringBuilder("workers did not stop for a mid-step power cut; " + hook.describe());
                for (Thread t : busy) {
                    sb.append("\n").append(t).append(' ').append(t.getState());
                    for (StackTraceElement f : t.getStackTrace()) {
                        sb.append("\n    at ").append(f);
                    }
                }
                throw new AssertionError(sb.toString());
            }
            try {
                Thread.sleep(1);
            } catch (InterruptedException ex) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted", ex);
            }
        }
    }

    /** The backing disk after a power cut (the same disk unless it can lose unflushed writes). */
    private BackingDevice cutBacking(long seed) {
        if (backing instanceof PowerCutBackingDevice p) {
            PowerCutBackingDevice after = p.cut(seed ^ 0x5eed, spare); // built in the spare's memory
            spare = null;
            return after;
        }
        return backing;
    }

    /** Call only once the old instance stopped: its medium is closed, its backing disk recycled. */
    private void restartOn(PowerCutMedium image, BackingDevice disk) throws IOException {
        medium.close();
        if (backing != disk && backing instanceof PowerCutBackingDevice old) {
            spare = old; // nothing uses it any more: the next cut is built in its memory
        }
        medium = image;
        backing = disk;
        open();
    }

    /**
     * Stops the old instance's threads (each finishes the step it is in, which is the same as
     * crashing a little later) without sealing or persisting anything more. The image must be
     * taken only then: copying a medium that background threads are still storing into would
     * mix bytes from different instants — a state no real crash produces (say, a segment's new
     * data without the generation bump that preceded it).
     */
    private void freeze() {
        hook.cancel();
        cache.abandonForTests();
        assertWorkersStopped();
    }

    /**
     * A worker still running would go on storing into the medium while a crash or cut image is
     * copied, or while the next instance uses it: a state no real crash or restart leaves, and a
     * test failure with a false cause.
     */
    private void assertWorkersStopped() {
        for (Thread t : cache.workers().threadsForTests()) {
            if (t.isAlive()) {
                throw new AssertionError(t.getName() + " still runs after the cache was abandoned: "
                        + java.util.Arrays.toString(t.getStackTrace()));
            }
        }
    }

    @Override
    public long size() {
        return cache.size();
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        cache.read(offset, dst);
    }

    @Override
    public void write(long offset, MemorySegment src, boolean fua) throws IOException {
        cache.write(offset, src, fua);
    }

    @Override
    public void writeFrom(long offset, int length, io.pmcache.device.PayloadSource data, boolean fua)
            throws IOException {
        cache.writeFrom(offset, length, data, fua);
    }

    @Override
    public void flush() throws IOException {
        cache.flush();
    }

    @Override
    public void trim(long offset, long length) throws IOException {
        cache.trim(offset, length);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean fua) throws IOException {
        cache.writeZeroes(offset, length, fua);
    }

    @Override
    public java.util.List<io.pmcache.device.BlockStatus> blockStatus(long offset, long length, int maxExtents)
            throws IOException {
        return cache.blockStatus(offset, length, maxExtents);
    }

    @Override
    public void close() throws IOException {
        hook.cancel();
        cache.close();
        medium.close();
        backing.close();
    }
}
