package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.format.Kset;
import io.pmcache.format.Layout;
import io.pmcache.format.LogPosition;
import io.pmcache.media.PowerCutMedium;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The persisted key or dirty tail at the end of a key-log segment (fewer than
 * {@link Kset#MIN_BYTES} left: the kset it names starts at offset 0 of the linked segment), the
 * state of the one CacheModelTest failure after a crash (issue 9, seed 732414717567209567: the key
 * tail at the end of a segment, the dirty tail at the head; see the first test).
 *
 * <p>The randomized model test crosses key-log segment ends rarely (1 MiB segments, 64 B a key).
 * Here the key log crosses segment ends many times: a {@link SteppedCache} (workers off, every
 * persist in the test thread) of few segments takes one-sector writes, flushed after most of them
 * so that ksets are small (the log moves about 200 B a key) and of varying size (so a segment ends
 * at its very end or up to 63 B before it), with writeback and gc stepped at seeded points in
 * varying amounts; when the head reaches a segment end, writeback and gc mostly catch up with it
 * there (in a seeded order), which is how a tail comes to name a segment end. Whenever a persisted
 * tail sits at a segment end with tails not checked yet (at most {@value #MAX_CHECKS} states, spread
 * over the crossings), the medium is imaged as a kill -9 or as a seeded power cut leaves it; the image is opened
 * and must report no damaged kset ({@link LogTails} saying the cache info is damaged counts as one)
 * and must read back every acknowledged write (crash) or, per sector, a version at least as new as
 * the last flush and no newer than the last write (power cut). Some of those states are not only
 * imaged: the run itself crashes or loses power there and goes on with the reopened cache, so that
 * a reopen with the tails at a segment end is followed by more log wraps, reuse of the freed
 * segments and further crashes.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TailAtSegmentEndTest {
    private static final int SEGMENTS = 12;
    private static final int SECTOR = 512;
    private static final long DEVICE = 2L << 20;
    private static final int SECTORS = (int) (DEVICE / SECTOR);
    /** Key-log segment ends the run crosses (gc frees a log segment at each). */
    private static final int CROSSINGS = 12;
    /** Images opened at most (about 50 ms each on a busy machine): a bound on the test's time. */
    private static final int MAX_CHECKS = 120;

    @Test
    void everyTailAtASegmentEndSurvivesACrashAndAPowerCut(Seed seed) throws IOException {
        new Run(seed.random()).go();
    }

    /**
     * The key tail at the end of a segment (gc passed its last kset before the head moved on), the
     * dirty tail further on at the head (everything after it written back), then a write that goes
     * directly to the backing device (allowed: its range holds nothing dirty past the persisted
     * dirty tail), then kill -9. The walk from the key tail reaches the dirty tail through the link,
     * so the tails agree with the log; replay once took the empty log at the head for an empty log
     * at the key tail, found the key tail's own kset at offset 0 of the linked segment, reported
     * the cache info as damaged and replayed the written-back ksets as dirty again — over the direct
     * write (CacheModelTest, seed 732414717567209567).
     */
    @Test
    void aKeyTailAtASegmentEndBehindAWrittenBackLogIsNotDamage() throws IOException {
        PowerCutBackingDevice disk = new PowerCutBackingDevice(DEVICE);
        PowerCutMedium medium = SteppedCache.formatted(SEGMENTS, disk);
        SteppedCache c = SteppedCache.open(medium, disk);
        try {
            Engine e = c.engine();
            for (int i = 0; !Run.atSegmentEnd(e.keyLog.head()); i++) {
                c.cache.write((long) (i % SECTORS) * SECTOR, MemorySegment.ofArray(Run.content(i % SECTORS, 1)), false);
                c.cache.flush();
                assertThat(i).as("writes to fill a key-log segment").isLessThan(100_000);
            }
            c.writebackSteps(-1, "to the head at the segment end");
            c.gcSteps(-1, "to the head at the segment end");
            LogPosition keyTail = e.info.current().keyTail();
            assertThat(Run.atSegmentEnd(keyTail)).as("key tail %s at a segment end", keyTail).isTrue();

            c.cache.write(0, MemorySegment.ofArray(Run.content(0, 2)), false); // a kset at offset 0 of a new segment
            c.cache.flush();
            c.writebackSteps(-1, "past the segment end");
            LogPosition dirtyTail = e.info.current().dirtyTail();
            assertThat(e.info.current().keyTail()).isEqualTo(keyTail);
            assertThat(dirtyTail.segment()).as("dirty tail %s", dirtyTail).isNotEqualTo(keyTail.segment());

            c.cache.setSequentialCutoff(1); // the next write goes around the cache, to the backing device
            c.cache.write(0, MemorySegment.ofArray(Run.content(0, 3)), false);
            c.cache.setSequentialCutoff(0);
            assertThat(e.policy.sequentialWrites.sum()).as("direct writes").isEqualTo(1);

            c.crash();
            c = null;
            try (PowerCutMedium image = medium.crash()) {
                Checker.Report report = Checker.check(image, disk, true, null);
                assertThat(report.errors()).as("errors pmcache check finds: %s", report).isZero();
            }
            try (PowerCutMedium image = medium.crash(); Cache after = Cache.open(image, disk, SteppedCache.OPTIONS)) {
                assertThat(after.status().ksetsDamaged()).as("damaged ksets after the crash (key tail %s, dirty tail %s)",
                        keyTail, dirtyTail).isZero();
                byte[] got = new byte[SECTOR];
                after.read(0, MemorySegment.ofArray(got));
                assertThat(java.util.Arrays.mismatch(got, Run.content(0, 3)))
                        .as("first wrong byte of the direct write at 0 after the crash").isEqualTo(-1);
            }
        } finally {
            if (c != null) {
                c.crash();
            }
            medium.close();
        }
    }

    private static final class Run {
        final SplittableRandom random;
        PowerCutMedium medium;
        PowerCutBackingDevice disk = new PowerCutBackingDevice(DEVICE);
        SteppedCache cache;
        /** Per sector: the version of its last acknowledged write, and of its last one before a flush. */
        final int[] current = new int[SECTORS];
        final int[] stable = new int[SECTORS];
        String lastChecked = "";
        int checked;
        int crossings;
        int restarts;
        long op;
        int drainedAt = -1;
        /** States checked since the head entered its segment (spreads the checks over the crossings). */
        int checkedHere;

        Run(SplittableRandom random) throws IOException {
            this.random = random;
            medium = PowerCutMedium.create(Layout.segmentAreaOffset(SEGMENTS) + SEGMENTS * Rig.MIB);
            Cache.format(medium, disk, new FormatOptions(Rig.MIB, random.nextBoolean()));
            cache = SteppedCache.open(medium, disk);
        }

        void go() throws IOException {
            try {
                int lastLogSegment = cache.engine().keyLog.head().segment();
                // Phases: how often a write is followed by a flush (small ksets, or full ones of 128 keys).
                double flushP = 0.9;
                while (crossings < CROSSINGS && checked < MAX_CHECKS) {
                    op++;
                    if (op % 4096 == 0) {
                        flushP = random.nextInt(4) == 0 ? 0.02 : 0.5 + random.nextDouble() / 2;
                    }
                    write(random.nextInt(SECTORS));
                    if (random.nextDouble() < flushP) {
                        cache.cache.flush();
                        System.arraycopy(current, 0, stable, 0, SECTORS);
                    }
                    if (random.nextInt(64) == 0) {
                        cache.writebackSteps(1 + random.nextInt(3), "op " + op);
                        checkIfAtEnd();
                    }
                    if (random.nextInt(16) == 0) {
                        int steps = 1 + random.nextInt(random.nextBoolean() ? 4 : 200);
                        for (int s = 0; s < steps && cache.gc.step(); s++) {
                            checkIfAtEnd(); // every gc step: the key tail passes each segment end
                        }
                    }
                    if (cache.freeSegments() < 5) {
                        cache.cache.flush();
                        System.arraycopy(current, 0, stable, 0, SECTORS);
                        cache.writebackSteps(-1, "op " + op + " (space)");
                        checkIfAtEnd();
                        while (cache.gc.step()) {
                            checkIfAtEnd();
                        }
                    }
                    LogPosition headAt = cache.engine().keyLog.head();
                    if (atSegmentEnd(headAt) && drainedAt != headAt.segment()) {
                        drainedAt = headAt.segment();
                        catchUpAtSegmentEnd();
                    }
                    int head = cache.engine().keyLog.head().segment();
                    if (head != lastLogSegment) {
                        crossings++;
                        checkedHere = 0;
                        lastLogSegment = head;
                    }
                }
                assertThat(checked).as("tail-at-segment-end states checked").isGreaterThanOrEqualTo(CROSSINGS);
            } finally {
                if (cache != null) {
                    cache.crash();
                }
                medium.close();
            }
        }

        /**
         * The head is at a segment end (the next kset goes to a new segment): writeback and gc
         * catch up with it, in a seeded order and amount, so the tails reach the segment end too
         * while it has no link yet; the writes after it link the next segment with the tails there.
         */
        void catchUpAtSegmentEnd() throws IOException {
            if (random.nextInt(4) == 0) {
                return;
            }
            cache.cache.flush();
            System.arraycopy(current, 0, stable, 0, SECTORS);
            boolean gcFirst = random.nextBoolean();
            for (int round = 0; round < 2; round++) {
                if (gcFirst == (round == 0)) {
                    while (cache.gc.step()) {
                        checkIfAtEnd();
                    }
                } else {
                    for (int s = 0; s < 50 && cache.writeback.step() == Writeback.Step.PROGRESS; s++) {
                        checkIfAtEnd();
                    }
                }
            }
            checkIfAtEnd();
        }

        void write(int sector) throws IOException {
            int v = ++current[sector];
            cache.cache.write((long) sector * SECTOR, MemorySegment.ofArray(content(sector, v)), false);
        }

        static byte[] content(int sector, int version) {
            byte[] b = new byte[SECTOR];
            if (version == 0) {
                return b; // the backing disk starts zeroed
            }
            ByteBuffer bb = ByteBuffer.wrap(b);
            long x = sector * 0x9e3779b97f4a7c15L ^ version * 0xbf58476d1ce4e5b9L;
            for (int i = 0; i < SECTOR / 8; i++) {
                x ^= x << 13;
                x ^= x >>> 7;
                x ^= x << 17;
                bb.putLong(x);
            }
            bb.putInt(0, sector);
            bb.putInt(4, version);
            return b;
        }

        static boolean atSegmentEnd(LogPosition p) {
            return Rig.MIB - p.offset() < Kset.MIN_BYTES;
        }

        /** Images and checks the state when a persisted tail sits at a segment end and this state is new. */
        void checkIfAtEnd() throws IOException {
            Engine e = cache.engine();
            LogPosition key = e.info.current().keyTail();
            LogPosition dirty = e.info.current().dirtyTail();
            if (!atSegmentEnd(key) && !atSegmentEnd(dirty)) {
                return;
            }
            String tails = key + " / " + dirty;
            if (tails.equals(lastChecked) || checked >= MAX_CHECKS || checkedHere >= MAX_CHECKS / CROSSINGS) {
                return;
            }
            lastChecked = tails;
            checkedHere++;
            String state = "op " + op + ": key tail " + key + ", dirty tail " + dirty + ", head " + e.keyLog.head()
                    + ", link " + key.segment() + " -> " + e.segments.next(key.segment());
            checked++;
            long cutSeed = random.nextLong();
            if (random.nextBoolean()) {
                try (PowerCutMedium crashed = medium.crash()) {
                    verify(crashed, disk.cutKeeping(true), false, state + " (kill -9 image)");
                }
            } else {
                try (PowerCutMedium cut = medium.cut(cutSeed)) {
                    verify(cut, disk.cut(cutSeed), true, state + " (power cut " + cutSeed + ")");
                }
            }
            int r = random.nextInt(8);
            if (r == 0) {
                restart(false, state);
            } else if (r == 1) {
                restart(true, state);
            }
        }

        /** Opens an image with the workers off, checks it, and closes it (the run's own cache is untouched). */
        void verify(PowerCutMedium image, PowerCutBackingDevice imageDisk, boolean cut, String where)
                throws IOException {
            try (Cache c = Cache.open(image, imageDisk, SteppedCache.OPTIONS)) {
                checkOpened(c, cut, where, false);
            }
        }

        /**
         * What an open after a crash or cut must show: no damage, and every sector its expected
         * version. With {@code adopt} (the run goes on with this cache), the versions read become
         * the model.
         */
        void checkOpened(Cache c, boolean cut, String where, boolean adopt) throws IOException {
            CacheStatus s = c.status();
            assertThat(s.ksetsDamaged()).as("%s: damaged ksets after the open", where).isZero();
            assertThat(s.corruptKeysSkipped()).as("%s: skipped keys", where).isZero();
            assertThat(s.dataCrcErrors()).as("%s: data CRC errors", where).isZero();
            byte[] all = new byte[(int) DEVICE];
            c.read(0, MemorySegment.ofArray(all));
            for (int sector = 0; sector < SECTORS; sector++) {
                int got = ByteBuffer.wrap(all, sector * SECTOR + 4, 4).getInt();
                int lo = cut ? stable[sector] : current[sector];
                int hi = current[sector];
                int v = got >= lo && got <= hi ? got : lo;
                byte[] want = content(sector, v);
                int bad = java.util.Arrays.mismatch(all, sector * SECTOR, (sector + 1) * SECTOR, want, 0, SECTOR);
                assertThat(bad).as("%s: sector %d (versions %d..%d acceptable, read says %d): first wrong byte",
                        where, sector, lo, hi, got).isEqualTo(-1);
                if (adopt) {
                    current[sector] = v;
                    stable[sector] = v;
                }
            }
        }

        /** The run itself crashes (or loses power) here and goes on with the reopened cache. */
        void restart(boolean cut, String state) throws IOException {
            restarts++;
            cache.crash();
            cache = null;
            long cutSeed = random.nextLong();
            PowerCutMedium image = cut ? medium.cut(cutSeed) : medium.crash();
            PowerCutBackingDevice imageDisk = cut ? disk.cut(cutSeed) : disk;
            medium.close();
            medium = image;
            disk = imageDisk;
            cache = SteppedCache.open(medium, disk);
            String where = state + (cut ? " (the run lost power, " + cutSeed + ")" : " (the run crashed)");
            checkOpened(cache.cache, cut, where, true);
            if (cut) {
                cache.cache.flush(); // what was read is durable from here on
            }
        }
    }
}
