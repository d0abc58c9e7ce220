package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.pmcache.format.Layout;
import io.pmcache.format.SegmentInfo;
import io.pmcache.media.PowerCutMedium;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * A systematic crash-point sweep, as pyocf's surprise-shutdown tests and CrashMonkey do it: the
 * power is cut right before <em>each</em> persist of a deterministic workload (not at random
 * instants), and the guarantees are checked on what each cut leaves.
 *
 * <h2>Algorithm</h2>
 * <ol>
 *   <li><b>Workload</b> ({@link Workload}): a fixed-seed sequence of writes (one sector to 2 MiB:
 *       overwrites of hot ranges, pieces that cross a 1 MiB segment or the 4 MiB range boundary),
 *       FUA writes, write-zeroes (some FUA), trims, reads, flushes, writeback steps, gc steps, one
 *       clean restart and one process crash (kill -9, then an open that replays and seals); nine
 *       in ten operations write or zero one sector, so that the key log moves through several
 *       segments (new log segments linked, old ones freed and reused); on a
 *       cache of {@value #SEGMENTS} segments of 1 MiB in front of an 8 MiB
 *       {@link PowerCutBackingDevice}. Before a write that might find too little free space, the
 *       workload itself flushes, writes back and gc's everything, so the log wraps and segments
 *       are reclaimed and reused many times.</li>
 *   <li><b>Determinism</b> ({@link SteppedCache}). The writeback and gc workers are off; the test
 *       thread runs their steps at fixed points of the workload, through its own
 *       {@link Writeback} and {@link GarbageCollector} on the cache's engine. The sealer, which
 *       always runs, is held at its step boundary. Writeback's syncer flushes the backing disk
 *       only once the stepping thread has written its whole batch. The cache is formatted with a
 *       fixed id ({@link DeterministicFormat}). So every persist happens in the test thread, in
 *       the same order with the same bytes on every run; the sweep checks that it does.</li>
 *   <li><b>Reference run</b>: the workload once, recording each persist (its medium range and the
 *       operation it is part of). N persists give the cut points 0..N: point i is right before
 *       persist #i (= right after #i-1); point N is after the last operation.</li>
 *   <li><b>Sweep run</b>: the workload again from scratch. A
 *       {@link PowerCutMedium.PersistObserver} compares each persist with the reference and, right
 *       before each chosen persist #i, takes three images of the medium and the backing disk:
 *       nothing unpersisted (the persisted image; the disk's flushed sectors), a seeded random
 *       subset of the unpersisted 8-byte words (and of the unflushed sectors), and everything
 *       stored (the live images). Each image is checked at once (below) and the run goes on.
 *       Taking an image does not disturb the run, so this is exactly what a rerun from scratch
 *       per point, stopped at #i, would see — at O(N) instead of O(N²) cost.</li>
 *   <li><b>Model</b>: the {@link DiskModel} as of the start of the operation in flight, plus that
 *       operation, if it changes data, as a write not acknowledged (so neither flushed nor FUA).</li>
 *   <li><b>Check</b> each image: {@link Checker#check} finds no error (as {@code pmcache check}
 *       exit 0 would); {@link Cache#open} succeeds; status counts no skipped key and no data CRC
 *       error; every sector reads its stable value (written before the last completed flush, or
 *       by a FUA write) or that of a later unflushed write newer than its last FUA write — never
 *       anything else ({@link DiskModel#checkAfterCut}); {@code flushAll} leaves the backing disk
 *       equal to what the reads returned and counts no damage; after a clean close the checker
 *       again finds no error.</li>
 * </ol>
 * Failures are collected, each naming the point, the persist (offset, length, which record), the
 * operation in flight, the image, the cut seed and what was wrong; the test fails at the end with
 * all of them.
 *
 * <h2>Bounds</h2>
 * CI checks every k-th point, from an offset the seed picks, with k such that about
 * {@code -Dpmcache.sweep.points} (default {@value #CI_POINTS}) points are checked per test.
 * {@code -Dpmcache.sweep.all=true} checks every point ({@code bin/crash-sweep});
 * {@code -Dpmcache.sweep.point=i -Dpmcache.seed=S} repeats one point exactly. The whole sweep is
 * bounded by {@code -Dpmcache.sweep.minutes} (default 20); running out names the point it was at.
 * {@code -Dpmcache.sweep.ops} (default {@value #DEFAULT_OPS}) sets the workload's length,
 * {@code -Dpmcache.sweep.workload} its seed.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 12, unit = TimeUnit.HOURS) // the sweep has its own bound, which names the point
class CrashPointSweepTest {
    private static final long MIB = 1L << 20;
    private static final int SECTOR = DiskModel.SECTOR;
    private static final int SEGMENTS = 16;
    private static final int DEVICE = (int) (8 * MIB);
    /** Writeback and gc workers off: the checks drain in the test thread. */
    private static final CacheOptions OPTIONS = SteppedCache.OPTIONS;
    static final int DEFAULT_OPS = 24_000;
    static final int CI_POINTS = 60;
    /** Free segments a data-changing operation needs (3 for a 2 MiB write, plus the reserve). */
    private static final int MIN_FREE = 7;

    @Test
    void everyPersistOfTheWorkloadWithoutDataCrc(Seed seed) {
        sweep(seed, false);
    }

    @Test
    void everyPersistOfTheWorkloadWithDataCrc(Seed seed) {
        sweep(seed, true);
    }

    // ------------------------------------------------------------------ the sweep

    private void sweep(Seed seed, boolean dataCrc) {
        String[] at = {"setting up"};
        long minutes = Long.getLong("pmcache.sweep.minutes", 20);
        assertTimeoutPreemptively(Duration.ofMinutes(minutes), () -> sweep(seed, dataCrc, at),
                () -> seed + ": the sweep did not finish within " + minutes + " minutes (a hang?); it was at "
                        + at[0]);
    }

    private void sweep(Seed seed, boolean dataCrc, String[] at) throws IOException {
        long t0 = System.nanoTime();
        int ops = Integer.getInteger("pmcache.sweep.ops", DEFAULT_OPS);
        String what = "data CRC " + (dataCrc ? "on" : "off");
        byte[] template = DeterministicFormat.image(SEGMENTS, new PowerCutBackingDevice(DEVICE), dataCrc);

        at[0] = "the reference run";
        List<Persist> reference = new ArrayList<>();
        try (Run ref = new Run(template, (run, i, offset, length) ->
                reference.add(new Persist(offset, length, run.inFlight)))) {
            ref.run(ops);
            assertThat(ref.foreignPersists).as("persists from another thread than the workload's").isEmpty();
            System.err.println("crash-point sweep (" + what + "): the key log's head was in segments "
                    + ref.logSegments);
            assertThat(ref.logSegments.cardinality()).as("segments the key log moved through").isGreaterThan(2);
        }
        int n = reference.size();
        // The sweep is only as good as the workload: it must persist in every kind of step.
        java.util.Map<Kind, Long> byKind = reference.stream().collect(Collectors.groupingBy(p -> p.op().kind(),
                () -> new java.util.EnumMap<>(Kind.class), Collectors.counting()));
        java.util.Map<String, Long> byRecord = reference.stream().collect(Collectors.groupingBy(
                p -> recordKind(p.offset()), java.util.TreeMap::new, Collectors.counting()));
        System.err.println("crash-point sweep (" + what + "): persists by operation " + byKind + ", by record "
                + byRecord);
        assertThat(byKind).as("operations that persist").containsKeys(Kind.FUA_WRITE, Kind.FLUSH, Kind.WRITEBACK,
                Kind.GC, Kind.CLOSE, Kind.OPEN);
        assertThat(byRecord).as("records persisted").containsKeys("cache info", "segment info", "key log or data");
        TreeSet<Integer> points = choosePoints(seed, n);

        Sweep s = new Sweep(seed, what, reference, points, at);
        try (Run run = new Run(template, s::beforePersist)) {
            run.stopAfter = points.last();
            run.run(ops);
            if (points.contains(n) && !s.diverged()) {
                s.check(run, n, null);
            }
            assertThat(run.foreignPersists).as("persists from another thread than the workload's").isEmpty();
        }
        System.err.printf("crash-point sweep (%s): %d ops, %d persists; checked %d of %d points x 3 images in %d s; "
                        + "%d images failed%n", what, ops, n, s.checked, n + 1,
                (System.nanoTime() - t0) / 1_000_000_000L, s.failures.size());
        assertThat(s.divergence).as("%s: the workload must persist the same way on every run", seed).isNull();
        if (!s.failures.isEmpty()) {
            StringBuilder sb = new StringBuilder(seed + " (" + what + "): " + s.failures.size()
                    + " cut images of " + s.checked + " points failed; repeat one with -Dpmcache.seed="
                    + seed.value() + " -Dpmcache.sweep.point=<point>:");
            s.failures.stream().limit(25).forEach(f -> sb.append("\n  ").append(f));
            if (s.failures.size() > 25) {
                sb.append("\n  ... ").append(s.failures.size() - 25).append(" more");
            }
            throw new AssertionError(sb.toString());
        }
    }

    /** The cut points to check: one, all, or every k-th from a seeded offset; always the end (point n). */
    private static TreeSet<Integer> choosePoints(Seed seed, int n) {
        TreeSet<Integer> points = new TreeSet<>();
        Integer one = Integer.getInteger("pmcache.sweep.point");
        if (one != null) {
            points.add(Math.min(one, n));
            return points;
        }
        int stride = Boolean.getBoolean("pmcache.sweep.all") ? 1
                : Math.max(1, (n + 1 + CI_POINTS - 1) / Integer.getInteger("pmcache.sweep.points", CI_POINTS));
        for (int i = (int) Math.floorMod(seed.value(), (long) stride); i <= n; i += stride) {
            points.add(i);
        }
        points.add(n);
        return points;
    }

    /** A persist of the reference run: its medium range and the operation it was part of. */
    private record Persist(long offset, long length, Op op) {
        boolean sameAs(long offset, long length, Op op) {
            return this.offset == offset && this.length == length && java.util.Objects.equals(this.op, op);
        }

        @Override
        public String toString() {
            return "persist " + region(offset, length) + " in " + op;
        }
    }

    /** What the sweep run does at each persist: compare with the reference, cut at the chosen ones. */
    private final class Sweep {
        final Seed seed;
        final String what;
        final List<Persist> reference;
        final TreeSet<Integer> points;
        final String[] at;
        final List<String> failures = new ArrayList<>();
        String divergence;
        int checked;

        Sweep(Seed seed, String what, List<Persist> reference, TreeSet<Integer> points, String[] at) {
            this.seed = seed;
            this.what = what;
            this.reference = reference;
            this.points = points;
            this.at = at;
        }

        boolean diverged() {
            return divergence != null;
        }

        void beforePersist(Run run, long index, long offset, long length) {
            if (diverged()) {
                return;
            }
            int i = (int) index;
            if (i >= reference.size() || !reference.get(i).sameAs(offset, length, run.inFlight)) {
                divergence = "persist #" + i + " is " + region(offset, length) + " in " + run.inFlight
                        + ", but in the reference run " + (i < reference.size() ? reference.get(i) : "there was none");
                run.stopAfter = -1;
                return;
            }
            if (points.contains(i)) {
                check(run, i, reference.get(i));
            }
        }

        /** Cuts the power right before persist #i ({@code p}; null: after the last operation) and checks the images. */
        void check(Run run, int i, Persist p) {
            checked++;
            String where = "point " + i + " of " + reference.size() + " ("
                    + (p != null ? "right before " + p : "after the last operation") + ")";
            at[0] = where;
            DiskModel model = run.model.copy();
            Op op = run.inFlight;
            if (op != null && op.kind().changesData()) {
                model.write(op.offset(), op.length(), op.kind().zero(), false); // not acknowledged
            }
            long cutSeed = new SplittableRandom(seed.value() ^ (i * 0x9E3779B97F4A7C15L)).nextLong();
            record Image(String name, PowerCutMedium medium, PowerCutBackingDevice disk) {
            }
            List<Image> images = List.of(
                    new Image("nothing unpersisted", PowerCutMedium.of(run.medium.persistedImage()),
                            run.disk.cutKeeping(false)),
                    new Image("a random subset of the unpersisted words (cut seed " + cutSeed + ")",
                            run.medium.cut(cutSeed), run.disk.cut(cutSeed ^ 0x5eed)),
                    new Image("everything stored", run.medium.crash(), run.disk.cutKeeping(true)));
            for (Image img : images) {
                at[0] = where + ", " + img.name();
                List<String> problems;
                try (PowerCutMedium m = img.medium()) {
                    problems = checkImage(m, img.disk(), model);
                }
                if (!problems.isEmpty()) {
                    String f = where + ", " + img.name() + ": " + String.join("; ", problems);
                    failures.add(f);
                    System.err.println("crash-point sweep (" + what + ", " + seed + ") FAILED at " + f);
                }
            }
        }
    }

    /** Everything a power cut must leave true, on one image; the problems found (empty: none). */
    private static List<String> checkImage(PowerCutMedium medium, PowerCutBackingDevice disk, DiskModel model) {
        List<String> problems = new ArrayList<>();
        try {
            Checker.Report before = Checker.check(medium, disk, true, null);
            if (!before.clean()) {
                problems.add("check of the cut image finds " + errors(before));
            }
            Cache c;
            try {
                c = Cache.open(medium, disk, OPTIONS);
            } catch (IOException ex) {
                problems.add("open fails: " + ex);
                return problems;
            }
            byte[] seen = new byte[DEVICE];
            try {
                for (int off = 0; off < DEVICE; off += (int) MIB) {
                    c.read(off, MemorySegment.ofArray(seen).asSlice(off, MIB));
                }
                int wrong = 0;
                StringBuilder first = new StringBuilder();
                for (int s = 0; s < DEVICE / SECTOR; s++) {
                    String p = model.checkAfterCut(s, seen, s * SECTOR);
                    if (p != null && ++wrong <= 2) {
                        int cut = p.indexOf("; flushes at ids");
                        first.append(wrong == 1 ? "" : " | ").append(cut < 0 ? p : p.substring(0, cut));
                    }
                }
                if (wrong > 0) {
                    problems.add(wrong + " sectors read wrong after the cut (" + lostFlushed(model, seen)
                            + "); first: " + first);
                }
                c.flushAll(left -> { });
                CacheStatus st = c.status();
                if (st.corruptKeysSkipped() != 0 || st.dataCrcErrors() != 0) {
                    problems.add("the cache reports damage after a mere power cut: corruptKeysSkipped "
                            + st.corruptKeysSkipped() + ", dataCrcErrors " + st.dataCrcErrors());
                }
                byte[] onDisk = new byte[DEVICE];
                MemorySegment.copy(disk.contents(), ValueLayout.JAVA_BYTE, 0, onDisk, 0, DEVICE);
                int bad = Arrays.mismatch(onDisk, seen);
                if (bad >= 0) {
                    problems.add("after flushAll the backing disk differs from what reads returned, first at byte "
                            + bad);
                }
            } finally {
                c.close();
            }
            Checker.Report after = Checker.check(medium, disk, true, null);
            if (!after.clean()) {
                problems.add("check after open, drain and close finds " + errors(after));
            }
        } catch (IOException | RuntimeException ex) {
            StringBuilder sb = new StringBuilder("threw " + ex);
            for (StackTraceElement e : ex.getStackTrace()) {
                if (e.getClassName().startsWith("io.pmcache")) {
                    sb.append(" at ").append(e);
                    break;
                }
            }
            problems.add(sb.toString());
        }
        return problems;
    }

    /** How many sectors that must survive (stable in the model) read something else. */
    private static String lostFlushed(DiskModel model, byte[] seen) {
        int lost = 0;
        for (int s = 0; s < DEVICE / SECTOR; s++) {
            int at = s * SECTOR;
            if (!Arrays.equals(seen, at, at + SECTOR, model.stable, at, at + SECTOR)
                    && Arrays.equals(model.stable, at, at + SECTOR, model.current, at, at + SECTOR)) {
                lost++;
            }
        }
        return lost + " of them flushed or FUA-written and not overwritten since";
    }

    private static String errors(Checker.Report r) {
        return r.errors() + " error(s): " + r.findings().stream()
                .filter(f -> f.severity() == Checker.Severity.ERROR).limit(3).map(Checker.Finding::message)
                .collect(Collectors.joining(" | "));
    }

    private static String recordKind(long offset) {
        if (offset < Layout.CACHE_INFO_SLOT0) {
            return "superblock";
        }
        return offset < Layout.SEGMENT_TABLE ? "cache info"
                : offset < Layout.segmentAreaOffset(SEGMENTS) ? "segment info" : "key log or data";
    }

    /** Names the record a medium range belongs to. */
    static String region(long offset, long length) {
        long area = Layout.segmentAreaOffset(SEGMENTS);
        String r;
        if (offset < Layout.CACHE_INFO_SLOT0) {
            r = "superblock";
        } else if (offset < Layout.CACHE_INFO_SLOT1) {
            r = "cache info slot 0";
        } else if (offset < Layout.SEGMENT_TABLE) {
            r = "cache info slot 1";
        } else if (offset < area) {
            long rel = offset - Layout.SEGMENT_TABLE;
            r = "segment " + rel / Layout.SEGMENT_TABLE_ENTRY + " info slot "
                    + (rel % Layout.SEGMENT_TABLE_ENTRY) / SegmentInfo.SLOT_SIZE;
        } else {
            r = "segment " + (offset - area) / MIB + " +" + (offset - area) % MIB;
        }
        return "[" + offset + ", +" + length + ") (" + r + ")";
    }

    // ------------------------------------------------------------------ the workload

    enum Kind {
        WRITE, FUA_WRITE, ZEROES, FUA_ZEROES, TRIM, READ, FLUSH, WRITEBACK, GC, CLOSE, CRASH, OPEN;

        boolean changesData() {
            return ordinal() <= TRIM.ordinal();
        }

        boolean zero() {
            return this == ZEROES || this == FUA_ZEROES || this == TRIM;
        }

        boolean fua() {
            return this == FUA_WRITE || this == FUA_ZEROES;
        }
    }

    /** One operation; {@code steps} for WRITEBACK and GC (-1: until there is nothing left to do). */
    record Op(int index, Kind kind, long offset, int length, int steps) {
        @Override
        public String toString() {
            String s = "op " + index + " " + kind;
            if (kind.changesData() || kind == Kind.READ) {
                s += " [" + offset + ", +" + length + ")";
            }
            if (kind == Kind.WRITEBACK || kind == Kind.GC) {
                s += steps < 0 ? " (all)" : " (" + steps + " steps)";
            }
            return s;
        }
    }

    /** The operations: drawn from a fixed seed; the restarts and the space keeping are added by the run. */
    static final class Workload {
        private final SplittableRandom r = new SplittableRandom(Long.getLong("pmcache.sweep.workload", 20261201L));

        Op next() {
            if (r.nextInt(10) != 0) {
                // A one-sector write or zero: keys (not data) are what move the log into its next segment.
                long off = (long) r.nextInt(r.nextBoolean() ? 2048 : DEVICE / SECTOR) * SECTOR;
                return new Op(-1, r.nextBoolean() ? Kind.WRITE : Kind.ZEROES, off, SECTOR, 0);
            }
            double p = r.nextDouble();
            if (p < 0.34) {
                return range(Kind.WRITE);
            } else if (p < 0.42) {
                return range(Kind.FUA_WRITE);
            } else if (p < 0.47) {
                return range(r.nextInt(3) == 0 ? Kind.FUA_ZEROES : Kind.ZEROES);
            } else if (p < 0.51) {
                return range(Kind.TRIM);
            } else if (p < 0.61) {
                return range(Kind.READ);
            } else if (p < 0.75) {
                return new Op(-1, Kind.FLUSH, 0, 0, 0);
            } else if (p < 0.88) {
                return new Op(-1, Kind.WRITEBACK, 0, 0, 1 + r.nextInt(3));
            }
            return new Op(-1, Kind.GC, 0, 0, 1 + r.nextInt(4));
        }

        /** Sizes from a sector to 2 MiB; half the ranges in hot spots (the start; the 4 MiB boundary). */
        private Op range(Kind kind) {
            double q = r.nextDouble();
            int sectors;
            if (q < 0.35) {
                sectors = 1 + r.nextInt(8);
            } else if (q < 0.65) {
                sectors = 8 + r.nextInt(120);
            } else if (q < 0.9) {
                sectors = 128 + r.nextInt(2048 - 128);
            } else {
                sectors = 2048 + r.nextInt(2048); // more than a segment: always crosses one
            }
            int len = sectors * SECTOR;
            long start = switch (r.nextInt(5)) {
                case 0, 1 -> r.nextLong(512 * 1024);
                case 2 -> 4 * MIB - 256 * 1024 + r.nextLong(512 * 1024) - len / 2; // across the range boundary
                default -> r.nextLong(DEVICE - len + 1);
            };
            start = Math.clamp(start, 0, DEVICE - len);
            start -= start % SECTOR;
            return new Op(-1, kind, start, len, 0);
        }
    }

    /**
     * One run of the workload from a freshly formatted image, its persists reported to a sink; the
     * model is updated when an operation completes.
     */
    private static final class Run implements AutoCloseable {
        interface Sink {
            void beforePersist(Run run, long index, long offset, long length);
        }

        private final Thread thread = Thread.currentThread();
        private final Sink sink;
        final PowerCutBackingDevice disk = new PowerCutBackingDevice(DEVICE);
        final DiskModel model = new DiskModel(DEVICE);
        final List<String> foreignPersists = new ArrayList<>();
        /** Segments the key head was in after some operation. */
        final java.util.BitSet logSegments = new java.util.BitSet();
        PowerCutMedium medium;
        private SteppedCache cache;
        private long persists;
        private int ops;
        /** The operation in progress, null between operations. */
        Op inFlight;
        /** Stop once persist #stopAfter happened (-1: stop now). */
        long stopAfter = Long.MAX_VALUE;

        Run(byte[] template, Sink sink) {
            this.sink = sink;
            this.medium = observed(PowerCutMedium.of(template));
        }

        private PowerCutMedium observed(PowerCutMedium m) {
            m.observePersists((medium, index, offset, length) -> {
                if (Thread.currentThread() != thread) {
                    synchronized (foreignPersists) {
                        foreignPersists.add(Thread.currentThread().getName() + " persisted " + region(offset, length));
                    }
                    return;
                }
                sink.beforePersist(this, persists++, offset, length);
            });
            return m;
        }

        private boolean stopped() {
            return persists > stopAfter || stopAfter < 0;
        }

        void run(int count) throws IOException {
            Workload w = new Workload();
            exec(Kind.OPEN, 0);
            for (int i = 0; i < count && !stopped(); i++) {
                if (i == count / 3) {
                    exec(Kind.CLOSE, 0);
                    exec(Kind.OPEN, 0);
                } else if (i == 2 * count / 3) {
                    exec(Kind.CRASH, 0);
                    exec(Kind.OPEN, 0);
                }
                Op op = w.next();
                if (op.kind().changesData() && free() < MIN_FREE) {
                    exec(Kind.FLUSH, 0);
                    exec(Kind.WRITEBACK, -1);
                    exec(Kind.GC, -1);
                    assertThat(free()).as("free segments after writing back and gc'ing everything (op %d)", ops)
                            .isGreaterThanOrEqualTo(MIN_FREE);
                }
                exec(op);
                if (cache != null) {
                    logSegments.set(cache.engine().keyLog.head().segment());
                }
            }
        }

        private int free() {
            return cache.freeSegments();
        }

        private void exec(Kind kind, int steps) throws IOException {
            exec(new Op(-1, kind, 0, 0, steps));
        }

        private void exec(Op drawn) throws IOException {
            Op op = new Op(ops++, drawn.kind(), drawn.offset(), drawn.length(), drawn.steps());
            inFlight = op;
            switch (op.kind()) {
                case WRITE, FUA_WRITE -> {
                    byte[] data = new byte[op.length()];
                    DiskModel.fill(data, 0, model.nextId(), op.offset(), op.length(), false);
                    cache.cache.write(op.offset(), MemorySegment.ofArray(data), op.kind().fua());
                }
                case ZEROES, FUA_ZEROES -> cache.cache.writeZeroes(op.offset(), op.length(), op.kind().fua());
                case TRIM -> cache.cache.trim(op.offset(), op.length());
                case READ -> {
                    byte[] got = new byte[op.length()];
                    cache.cache.read(op.offset(), MemorySegment.ofArray(got));
                    int bad = Arrays.mismatch(got, 0, got.length, model.current, (int) op.offset(),
                            (int) op.offset() + op.length());
                    assertThat(bad).as("%s: first wrong byte (no power cut involved)", op).isEqualTo(-1);
                }
                case FLUSH -> cache.cache.flush();
                case WRITEBACK -> cache.writebackSteps(op.steps(), op.toString());
                case GC -> cache.gcSteps(op.steps(), op.toString());
                case CLOSE -> {
                    cache.close();
                    cache = null;
                }
                case CRASH -> {
                    cache.crash();
                    cache = null;
                    PowerCutMedium image = medium.crash(); // the mapped pages survive a process crash
                    medium.close();
                    medium = observed(image);
                }
                case OPEN -> cache = SteppedCache.open(medium, disk);
            }
            inFlight = null;
            switch (op.kind()) {
                case WRITE, FUA_WRITE, ZEROES, FUA_ZEROES, TRIM ->
                        model.write(op.offset(), op.length(), op.kind().zero(), op.kind().fua());
                case FLUSH, CLOSE -> model.flush(); // a clean close seals (and persists) every kset
                default -> { }
            }
        }

        @Override
        public void close() throws IOException {
            if (cache != null) {
                cache.crash();
            }
            medium.close();
        }
    }
}
