package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.cache.StepHook.Point;
import io.pmcache.device.BlockStatusCheck;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The cache against a plain disk model: random reads, writes (512 B to 1 MiB, aligned and not,
 * hot overlapping ranges), FUA writes, flushes, trims, write-zeroes, gc_percent changes, drains,
 * clean restarts, process crashes and power cuts (of both the cache medium and the backing disk),
 * with writeback and gc running in the background.
 *
 * <p>Power cuts land at two kinds of instants. Plain cuts let each worker finish the step it is
 * in. Mid-step cuts ({@link MidStepCuts}) freeze a worker at a named {@link StepHook.Point}: after
 * some of a writeback batch's extents reached the backing disk, before and after the backing
 * sync, after the dirty-tail update; after gc dropped a kset's segment references but before the
 * key tail moved, after the key-tail update, after a reclaimed data segment's generation bump.
 * The other workers are stopped at their step boundaries, the images are taken, and the run goes
 * on from them. Each test fails unless some cut landed inside a writeback step and some inside a
 * gc step; the counts per point go to stderr.
 *
 * <p>Checked: every read returns the newest acknowledged data (and, now and then, the block status of
 * the range read reports ZERO or HOLE only where the model reads zeros); after a crash everything
 * acknowledged reads back; after a power cut (plain or mid-step) every flushed and FUA write reads
 * back and no sector holds anything never written there; after a final drain the backing disk
 * equals the model.
 *
 * <p>Half the writes hand the cache their data as a {@link io.pmcache.device.PayloadSource}
 * ({@link Cache#writeFrom}, what the NBD server does for large payloads): read straight into the
 * medium, or taken whole when the cache has no room at hand or the mode routes the write past it.
 *
 * <p>Cache modes and the sequential cutoff are part of the random operations: each run starts in
 * a random {@link CacheMode} with a random cutoff (0 = off, 64 KiB .. 1 MiB), and switches modes
 * (writeback and a random other mode in turn, back to writeback after at most 800 operations, so
 * that writeback and gc steps happen for the mid-step cuts; leaving writeback drains first), changes the cutoff, invalidates the clean data, and issues
 * sequential write and read streams that cross the cutoff, all along; the model stays the oracle
 * (no mode changes what a read returns). Operation count: {@code -Dpmcache.model.ops} (CI runs 100,000 over the two
 * tests); {@code -Dpmcache.seed=N} repeats a seed (the background threads still make each run
 * differ in timing); {@code -Dpmcache.model.hunt=N} runs N short seeds.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 15, unit = TimeUnit.MINUTES)
class CacheModelTest {
    private static final int SECTOR = DiskModel.SECTOR;
    private static final long MIB = 1L << 20;

    private static int ops() {
        return Integer.getInteger("pmcache.model.ops", 20_000);
    }

    @Test
    void powerCutsCrashesAndRestartsOnACacheSizedWorkingSet(Seed seed) throws IOException {
        MidStepCuts mid = new MidStepCuts();
        run(seed, 24, (int) (16 * MIB), 2, ops() / 2, 0.004, mid);
        mid.report("cache-sized working set, " + seed);
        mid.assertLandedInWritebackAndGc(seed);
    }

    @Test
    void writebackAndGcWrapTheLogWithAWorkingSetTenTimesTheCache(Seed seed) throws IOException {
        MidStepCuts mid = new MidStepCuts();
        run(seed, 16, (int) (160 * MIB), 2, ops() / 2, 0.0005, mid);
        mid.report("working set 10x the cache, " + seed);
        mid.assertLandedInWritebackAndGc(seed);
    }

    @Test
    @Timeout(value = 180, unit = TimeUnit.MINUTES)
    @org.junit.jupiter.api.condition.EnabledIfSystemProperty(named = "pmcache.model.hunt", matches = "\\d+")
    void hunt(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        MidStepCuts mid = new MidStepCuts();
        for (int i = 0; i < Integer.getInteger("pmcache.model.hunt"); i++) {
            long s = Long.getLong("pmcache.model.huntseed", r.nextLong());
            System.err.println("hunt seed " + s);
            run(new Seed(s), 24, (int) (16 * MIB), 2, 1500, 0.004, mid);
        }
        mid.report("hunt, " + seed);
        mid.assertLandedInWritebackAndGc(seed);
    }

    /**
     * Power cuts in the middle of writeback and gc steps: now and then a random {@link Point} is
     * armed for its n-th hit (n small; writeback and gc points in turn); the background thread
     * that reaches it parks there, and at the next operation boundary the test cuts power with
     * that step half done. An operation that would wait for a parked worker (a drain, a restart,
     * a plain cut) suspends the arming and re-arms it afterwards; a point not reached within
     * {@link #MAX_OPS_ARMED} operations is disarmed.
     */
    static final class MidStepCuts {
        static final int MAX_OPS_ARMED = 1500;
        private static final Point[] POINTS = Point.values();
        private static final Point[] WRITEBACK = java.util.Arrays.stream(POINTS).filter(Point::writeback)
                .toArray(Point[]::new);
        private static final Point[] GC = java.util.Arrays.stream(POINTS).filter(p -> !p.writeback())
                .toArray(Point[]::new);
        final int[] armed = new int[POINTS.length];
        final int[] landed = new int[POINTS.length];
        private int armedAt = -1;
        private long opsArmed;
        private int retractions;
        private boolean gcNext;
        private Point point;
        /** Occurrences to re-arm after the current operation (0: none). */
        private int suspended;
        private final long[] hits = new long[POINTS.length];

        /** At an operation boundary: claims a fired hook (true: cut now), disarms a stale one. */
        boolean fired(CacheHarness h, int op) {
            if (armedAt < 0) {
                return false;
            }
            if (h.hook().claim()) {
                landed(op);
                return true;
            }
            if (op - armedAt > MAX_OPS_ARMED) {
                h.hook().cancel();
                disarmed(op);
            }
            return false;
        }

        /** Before an operation that waits for the workers: true when one is parked (claimed: cut now). */
        boolean suspend(CacheHarness h, int op) {
            if (armedAt < 0) {
                return false;
            }
            int left = h.hook().suspend();
            if (left < 0) {
                landed(op);
                return true;
            }
            if (left == 0) {
                disarmed(op);
            }
            suspended = left;
            return false;
        }

        /** After the operation: re-arms what {@link #suspend} took out of the way. */
        void resume(CacheHarness h) {
            if (suspended > 0) {
                h.hook().arm(point, suspended);
                suspended = 0;
            }
        }

        private void landed(int op) {
            landed[point.ordinal()]++;
            disarmed(op);
        }

        private void disarmed(int op) {
            opsArmed += op - armedAt;
            armedAt = -1;
        }

        void arm(CacheHarness h, SplittableRandom r, int op) {
            Point[] family = gcNext ? GC : WRITEBACK;
            gcNext = !gcNext;
            point = family[r.nextInt(family.length)];
            h.hook().arm(point, 1 + r.nextInt(3));
            armed[point.ordinal()]++;
            armedAt = op;
        }

        boolean armed() {
            return armedAt >= 0;
        }

        /** At the end of a run: nothing may stay parked (the final drain would wait for it). */
        void finish(CacheHarness h, int op) {
            if (armedAt >= 0) {
                h.hook().cancel();
                disarmed(op);
            }
            retractions += h.hook().retractions();
            for (Point p : POINTS) {
                hits[p.ordinal()] += h.hook().hits(p);
            }
        }

        void report(String what) {
            StringBuilder sb = new StringBuilder("mid-step power cuts (" + what + "), landed/armed per point:");
            for (Point p : POINTS) {
                sb.append(' ').append(p).append('=').append(landed[p.ordinal()]).append('/').append(armed[p.ordinal()]);
            }
            sb.append("; operations spent armed: ").append(opsArmed)
                    .append("; parked threads that gave up waiting for the test thread: ").append(retractions)
                    .append("; background hits per point:");
            for (Point p : POINTS) {
                sb.append(' ').append(hits[p.ordinal()]);
            }
            System.err.println(sb);
        }

        void assertLandedInWritebackAndGc(Seed seed) {
            int writeback = 0;
            int gc = 0;
            for (Point p : POINTS) {
                if (p.writeback()) {
                    writeback += landed[p.ordinal()];
                } else {
                    gc += landed[p.ordinal()];
                }
            }
            assertThat(writeback).as("%s: power cuts that landed inside a writeback step", seed).isPositive();
            assertThat(gc).as("%s: power cuts that landed inside a gc step", seed).isPositive();
        }
    }

    private void run(Seed seed, int segments, int deviceSize, int parallel, int ops, double cutRate,
                     MidStepCuts mid) throws IOException {
        double armRate = midStepArmRate(deviceSize, ops);
        SplittableRandom r = seed.random();
        DiskModel model = new DiskModel(deviceSize);
        PowerCutBackingDevice disk = new PowerCutBackingDevice(deviceSize);
        CacheOptions options = CacheOptions.defaults().withParallel(parallel).withGcPercent(r.nextInt(91));
        try (CacheHarness h = CacheHarness.create(segments, disk, options, r.nextBoolean())) {
            h.cache().setCacheMode(MODES[r.nextInt(MODES.length)], left -> { });
            h.cache().setSequentialCutoff(CUTOFFS[r.nextInt(CUTOFFS.length)]);
            long[] nanos = new long[12];
            long cutoff = h.cache().sequentialCutoff();
            modeSince = 0;
            for (int op = 0; op < ops; op++) {
                long t0 = System.nanoTime();
                String where = seed + " op " + op;
                if (!mid.armed() && r.nextDouble() < armRate) {
                    mid.arm(h, r, op);
                }
                if (h.cache().cacheMode() != CacheMode.WRITEBACK && op - modeSince > MAX_OPS_OUT_OF_WRITEBACK) {
                    // none and writearound make no writeback or gc work for the mid-step cuts: back to
                    // writeback after a while (this switch waits for nothing)
                    h.cache().setCacheMode(CacheMode.WRITEBACK, left -> { });
                    modeSwitches++;
                }
                if (h.cache().cacheMode() == CacheMode.WRITEBACK) {
                    modeSince = op;
                }
                double p = r.nextDouble();
                // A drain, a restart or a plain cut would wait for a parked worker: the hook steps
                // aside for it (or, if a worker is parked already, the cut happens there instead).
                boolean waitsForWorkers = p >= 0.905 && p < 0.917 + cutRate;
                if (mid.fired(h, op) || (waitsForWorkers && mid.suspend(h, op))) {
                    Point at = h.hook().firedAt();
                    tally(h);
                    h.powerCutMidStep(r.nextLong());
                    h.cache().setSequentialCutoff(cutoff);
                    verifyAfterCut(h, model, where + " after a power cut at " + at);
                    nanos[11] += System.nanoTime() - t0;
                    continue;
                }
                if (p < 0.45) {
                    write(h, model, r, false);
                } else if (p < 0.50) {
                    write(h, model, r, true);
                } else if (p < 0.82) {
                    long[] io = pick(r, deviceSize);
                    byte[] got = read(h, io[0], (int) io[1]);
                    int bad = java.util.Arrays.mismatch(got, 0, got.length, model.current, (int) io[0],
                            (int) (io[0] + io[1]));
                    assertThat(bad).as("%s read [%d, +%d): first wrong byte at %d; %s", where, io[0], io[1],
                            io[0] + bad, bad < 0 ? "" : model.describe((io[0] + bad) / SECTOR, got,
                                    (int) (bad - bad % SECTOR))).isEqualTo(-1);
                    if (r.nextInt(8) == 0) { // block status: ZERO and HOLE only where the model reads zeros
                        BlockStatusCheck.check(h, io[0], io[1], 1 + r.nextInt(16), model.current,
                                where);
                    }
                } else if (p < 0.87) {
                    h.flush();
                    model.flush();
                } else if (p < 0.90) {
                    long[] io = pick(r, deviceSize);
                    if (r.nextBoolean()) {
                        h.trim(io[0], io[1]);
                        model.write(io[0], (int) io[1], true, false);
                    } else {
                        boolean fua = r.nextInt(4) == 0;
                        h.writeZeroes(io[0], io[1], fua);
                        model.write(io[0], (int) io[1], true, fua);
                    }
                } else if (p < 0.905) {
                    h.cache().setGcPercent(r.nextInt(91));
                } else if (p < 0.906) {
                    h.flushAll();
                    model.flush();
                } else if (p < 0.907) {
                    // leaving writeback drains (the hook stepped aside: this waits for the workers)
                    // writeback and another mode in turn: about half the run has writeback and gc
                    // work for the mid-step cuts to land in (none and writearound make no dirty data)
                    h.cache().setCacheMode(h.cache().cacheMode() == CacheMode.WRITEBACK
                            ? MODES[1 + r.nextInt(MODES.length - 1)] : CacheMode.WRITEBACK, left -> { });
                    modeSwitches++;
                } else if (p < 0.912) {
                    tally(h);
                    h.reopen();
                    assertNoDamageReported(h, where + " after reopen");
                    h.cache().setSequentialCutoff(cutoff); // not persisted, unlike the mode
                    model.flush();
                } else if (p < 0.917) {
                    tally(h);
                    h.crash();
                    h.cache().setSequentialCutoff(cutoff);
                    verifyEverything(h, model, where + " after crash");
                } else if (p < 0.917 + cutRate) {
                    tally(h);
                    h.powerCut(r.nextLong());
                    h.cache().setSequentialCutoff(cutoff);
                    verifyAfterCut(h, model, where + " after power cut");
                } else {
                    double q = r.nextDouble();
                    if (q < 0.02) {
                        cutoff = CUTOFFS[r.nextInt(CUTOFFS.length)];
                        h.cache().setSequentialCutoff(cutoff);
                    } else if (q < 0.04) {
                        h.cache().invalidate();
                    } else if (q < 0.30) {
                        if (stream(h, model, r, where)) {
                            streamsPastCutoff++;
                        }
                    } else {
                        write(h, model, r, false);
                    }
                }
                mid.resume(h);
                nanos[kind(p, cutRate)] += System.nanoTime() - t0;
            }
            if (Boolean.getBoolean("pmcache.model.timing")) {
                System.err.println(java.util.Arrays.toString(java.util.Arrays.stream(nanos).map(n -> n / 1_000_000).toArray()));
            }
            mid.finish(h, ops);
            verifyEverything(h, model, seed + " at the end");
            tally(h);
            System.err.printf("%s: modes: %d switches, ending in %s; %d direct writes (%d bytes), %d of them "
                    + "writethrough, %d pieces cached for their dirty range, %d sequential writes and %d reads past the "
                    + "cutoff, %d bytes invalidated%n", seed, modeSwitches, h.cache().cacheMode().label(), totals[0],
                    totals[1], totals[2], totals[3], totals[4], totals[5], totals[6]);
            if (ops >= 5000) { // short runs (the hunt) may not get there
                assertThat(totals[0]).as("%s: direct writes", seed).isPositive();
            }
            if (streamsPastCutoff > 0) {
                assertThat(totals[4] + totals[5]).as("%s: I/O past the sequential cutoff (%d streams longer than "
                        + "the cutoff in a mode it applies to)", seed, streamsPastCutoff).isPositive();
            }
            h.flushAll();
            assertThat(h.cache().status().dirtyBytes()).as("%s dirty bytes after drain", seed).isZero();
            byte[] onDisk = new byte[deviceSize];
            MemorySegment.copy(((PowerCutBackingDevice) h.backing()).contents(), java.lang.foreign.ValueLayout.JAVA_BYTE,
                    0, onDisk, 0, deviceSize);
            assertThat(java.util.Arrays.mismatch(onDisk, model.current))
                    .as("%s: first byte where the drained backing disk differs from the model", seed).isEqualTo(-1);
        }
    }

    /**
     * Chance per operation (while nothing is armed) of arming a mid-step cut: each cut costs a
     * full verification of the device, so a larger device gets fewer; but at least 16 / ops, so
     * that short runs (the hunt) still arm a dozen points or so and cut inside writeback and gc.
     * {@code -Dpmcache.model.midstep=rate} overrides it.
     */
    private static double midStepArmRate(int deviceSize, int ops) {
        String rate = System.getProperty("pmcache.model.midstep");
        if (rate != null) {
            return Double.parseDouble(rate);
        }
        return Math.max(deviceSize <= 16 * MIB ? 0.0015 : 0.0006, 16.0 / ops);
    }

    private static int kind(double p, double cutRate) {
        double[] bounds = {0.45, 0.50, 0.82, 0.87, 0.90, 0.905, 0.907, 0.912, 0.917, 0.917 + cutRate};
        for (int i = 0; i < bounds.length; i++) {
            if (p < bounds[i]) {
                return i;
            }
        }
        return 10;
    }

    /** An I/O range: half the time in hot areas (the start, and around a 4 MiB range boundary). */
    private static long[] pick(SplittableRandom r, int deviceSize) {
        int sectors;
        double q = r.nextDouble();
        if (q < 0.6) {
            sectors = 1 + r.nextInt(16);
        } else if (q < 0.9) {
            sectors = 17 + r.nextInt(240);
        } else {
            sectors = 257 + r.nextInt(2048 - 256);
        }
        long len = (long) sectors * SECTOR;
        long maxStart = deviceSize - len;
        long start;
        switch (r.nextInt(4)) {
            case 0 -> start = r.nextLong(Math.min(maxStart, 2 * MIB) + 1);
            case 1 -> start = Math.min(maxStart, Math.max(0, 4 * MIB - 256 * 1024 + r.nextLong(512 * 1024)));
            default -> start = r.nextLong(maxStart + 1);
        }
        start -= start % SECTOR;
        if (r.nextInt(3) == 0) {
            start -= start % 4096; // aligned to 4 KiB
        }
        return new long[] {start, len};
    }

    private static final CacheMode[] MODES = CacheMode.values();
    private static final long[] CUTOFFS = {0, 64 * 1024, 256 * 1024, MIB};
    private int modeSwitches;
    /** The last operation the cache was in writeback mode. */
    private int modeSince;
    /** Longest stretch of operations out of writeback mode. */
    private static final int MAX_OPS_OUT_OF_WRITEBACK = 800;
    /** Streams longer than the cutoff in force, in a mode where the cutoff applies to them. */
    private int streamsPastCutoff;
    /** Over all opens of a run: direct writes, their bytes, writethrough, dirty-range pieces, sequential writes, reads, invalidated bytes. */
    private final long[] totals = new long[7];

    /** Adds the figures of the open about to end (a status counts since its open). */
    private void tally(CacheHarness h) {
        CacheStatus s = h.cache().status();
        long[] now = {s.directWrites(), s.directWriteBytes(), s.writethroughWrites(), s.dirtyRangeWrites(),
            s.sequentialBypassWrites(), s.sequentialBypassReads(), s.invalidatedBytes()};
        for (int i = 0; i < now.length; i++) {
            totals[i] += now[i];
        }
    }

    /**
     * A sequential stream: 4 to 24 writes or reads of 16 to 256 KiB, each starting where the last
     * ended, from a random place (so it crosses the cutoff, and now and then a 4 MiB range
     * boundary); a write stream is FUA now and then. Reads are checked against the model. True
     * when the stream ran past the cutoff in a mode the cutoff applies to (it must have been seen).
     */
    private static boolean stream(CacheHarness h, DiskModel model, SplittableRandom r, String where)
            throws IOException {
        boolean writes = r.nextBoolean();
        CacheMode mode = h.cache().cacheMode();
        long cutoff = h.cache().sequentialCutoff();
        boolean applies = cutoff > 0 && (writes ? mode == CacheMode.WRITEBACK || mode == CacheMode.WRITETHROUGH
                : mode != CacheMode.NONE);
        long bytes = 0;
        int piece = (16 + r.nextInt(241)) * 1024 / SECTOR * SECTOR;
        int count = 4 + r.nextInt(21);
        long at = r.nextLong(Math.max(1, model.size() - (long) piece * count)) / SECTOR * SECTOR;
        for (int i = 0; i < count && at + piece <= model.size(); i++, at += piece) {
            if (writes) {
                boolean fua = r.nextInt(8) == 0;
                writeSomehow(h, at, model.write(at, piece, false, fua), fua, r);
            } else {
                byte[] got = read(h, at, piece);
                int bad = java.util.Arrays.mismatch(got, 0, piece, model.current, (int) at, (int) at + piece);
                assertThat(bad).as("%s stream read [%d, +%d): first wrong byte at %d", where, at, piece,
                        at + bad).isEqualTo(-1);
            }
            bytes += piece;
        }
        return applies && bytes > cutoff;
    }

    private static void write(CacheHarness h, DiskModel model, SplittableRandom r, boolean fua) throws IOException {
        long[] io = pick(r, model.size());
        writeSomehow(h, io[0], model.write(io[0], (int) io[1], false, fua), fua, r);
    }

    /** A write from memory, or half the time one whose data the cache takes from a source as it needs it. */
    private static void writeSomehow(CacheHarness h, long offset, byte[] data, boolean fua, SplittableRandom r)
            throws IOException {
        if (r.nextBoolean()) {
            h.write(offset, MemorySegment.ofArray(data), fua);
            return;
        }
        ArrayPayload payload = new ArrayPayload(data);
        h.writeFrom(offset, data.length, payload, fua);
        assertThat(payload.delivered()).as("the whole payload taken").isEqualTo(data.length);
    }

    private static byte[] read(CacheHarness h, long offset, int length) throws IOException {
        byte[] b = new byte[length];
        h.read(offset, MemorySegment.ofArray(b));
        return b;
    }

    /**
     * Restarts, crashes and power cuts never damage the medium: whatever replay and writeback found must
     * have been whole. (A key counted as corrupt after a cut is a key the engine mistook, e.g. a
     * stale key whose segment was reused, checked as if it were live.)
     */
    private static void assertNoDamageReported(CacheHarness h, String where) {
        CacheStatus s = h.cache().status();
        assertThat(s.corruptKeysSkipped()).as("%s: keys skipped as corrupt", where).isZero();
        assertThat(s.dataCrcErrors()).as("%s: data CRC errors", where).isZero();
        assertThat(s.ksetsDamaged()).as("%s: ksets found damaged", where).isZero();
    }

    private static void verifyEverything(CacheHarness h, DiskModel model, String where) throws IOException {
        assertNoDamageReported(h, where);
        int chunk = (int) (4 * MIB);
        for (int off = 0; off < model.size(); off += chunk) {
            int n = Math.min(chunk, model.size() - off);
            byte[] got = read(h, off, n);
            int bad = java.util.Arrays.mismatch(got, 0, n, model.current, off, off + n);
            assertThat(bad).as("%s: first wrong byte at %d; %s", where, bad < 0 ? -1 : off + bad,
                    bad < 0 ? "" : model.describe((off + bad) / SECTOR, got, bad - bad % SECTOR)).isEqualTo(-1);
        }
    }

    private static void verifyAfterCut(CacheHarness h, DiskModel model, String where) throws IOException {
        assertNoDamageReported(h, where);
        model.verifyAfterCut(h, where);
    }
}
