package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.format.Layout;
import io.pmcache.media.PowerCutMedium;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Writeback leaves a dirty key's bytes to a newer key that overwrote them when no FLUSH or FUA
 * write lies between the two, even when the newer key is beyond the batch; across a flush it writes
 * them. The backing device alone then stays what a disk that lost power could hold: at the end of
 * every batch, each block holds the version it had at the last flush before some moment of the
 * client's history, or one written after that flush and before that moment
 * ({@link #theBackingDeviceAloneIsAlwaysACrashImageOfTheClientsWrites}).
 *
 * <p>Each test steps a {@link SteppedCache}: ksets are sealed only where the test says (flushes,
 * or {@link KeyLog#sealAll} without a flush), and a writeback step given a limit of one block takes
 * exactly one kset.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class OverwrittenBeyondBatchTest {
    private static final int SEGMENTS = 16;
    private static final int BLOCK = 4096;
    private static final int BLOCKS = 8;
    private static final long DEVICE = 1L << 20;

    private PowerCutBackingDevice disk;
    private PowerCutMedium medium;
    private SteppedCache c;

    private void open() throws IOException {
        disk = new PowerCutBackingDevice(DEVICE);
        medium = PowerCutMedium.create(Layout.segmentAreaOffset(SEGMENTS) + SEGMENTS * Rig.MIB);
        Cache.format(medium, disk, new FormatOptions(Rig.MIB, false));
        c = SteppedCache.open(medium, disk);
    }

    /** Closes the cache and frees its medium. */
    private void closeAll() throws IOException {
        try {
            c.close();
        } finally {
            medium.close();
        }
    }

    /** Block {@code b}'s content for version {@code v} (v > 0): every long says both. */
    private static byte[] content(int b, int v) {
        byte[] a = new byte[BLOCK];
        MemorySegment s = MemorySegment.ofArray(a);
        for (int i = 0; i < BLOCK; i += 8) {
            s.set(ValueLayout.JAVA_LONG_UNALIGNED, i, ((long) b << 32) | v);
        }
        return a;
    }

    /** The version block {@code b} of {@code image} holds: 0 for zeros, -1 for anything else. */
    private static int version(MemorySegment image, int b) {
        long first = image.get(ValueLayout.JAVA_LONG_UNALIGNED, (long) b * BLOCK);
        int v = (int) first;
        byte[] want = v == 0 && first == 0 ? new byte[BLOCK] : content(b, v);
        if ((first >>> 32) != b && first != 0) {
            return -1;
        }
        return Arrays.equals(image.asSlice((long) b * BLOCK, BLOCK).toArray(ValueLayout.JAVA_BYTE), want) ? v : -1;
    }

    private void write(int b, int v, boolean fua) throws IOException {
        c.cache.write((long) b * BLOCK, MemorySegment.ofArray(content(b, v)), fua);
    }

    /** Seals the open ksets without a flush: the next keys go to a new kset. */
    private void seal() {
        c.engine().keyLog.sealAll();
    }

    /** One writeback step that takes the oldest sealed kset not yet written. */
    private void stepOneKset() {
        assertThat(c.writeback.step(BLOCK)).isEqualTo(Writeback.Step.PROGRESS);
    }

    @Test
    void aKeyOverwrittenInALaterBatchWithNoFlushBetweenIsNotWrittenBack() throws IOException {
        open();
        try {
            write(0, 1, false);
            seal();
            write(1, 1, false);
            seal();
            write(0, 2, false);
            seal();
            stepOneKset(); // the batch of block 0 version 1 only: version 2 overwrote it
            assertThat(version(disk.contents(), 0)).as("block 0 after the first batch").isEqualTo(0);
            c.writebackSteps(-1, "the rest");
            assertThat(version(disk.contents(), 0)).isEqualTo(2);
            assertThat(version(disk.contents(), 1)).isEqualTo(1);
            assertThat(c.engine().stats.writebackWrittenBytes.sum()).as("bytes written back").isEqualTo(2L * BLOCK);
            assertThat(c.cache.status().writebackLeftToNewerBytes()).as("left to the newer key").isEqualTo(BLOCK);
            assertThat(c.engine().stats.dirtyBytes.sum()).isZero();
        } finally {
            closeAll();
        }
    }

    @Test
    void aKeyOverwrittenAfterAFlushIsWrittenBack() throws IOException {
        open();
        try {
            write(0, 1, false);
            c.cache.flush();
            write(1, 1, false);
            write(0, 2, false);
            seal();
            stepOneKset();
            assertThat(version(disk.contents(), 0)).as("block 0 after the flushed batch").isEqualTo(1);
            c.writebackSteps(-1, "the rest");
            assertThat(version(disk.contents(), 0)).isEqualTo(2);
            assertThat(c.engine().stats.writebackWrittenBytes.sum()).isEqualTo(3L * BLOCK);
            assertThat(c.cache.status().writebackLeftToNewerBytes()).as("a flush between: nothing left").isZero();
        } finally {
            closeAll();
        }
    }

    @Test
    void aFuaWriteOverwrittenLaterIsWrittenBack() throws IOException {
        open();
        try {
            write(0, 1, true);
            seal();
            write(0, 2, false);
            seal();
            stepOneKset();
            assertThat(version(disk.contents(), 0)).as("block 0 after the FUA write's batch").isEqualTo(1);
        } finally {
            closeAll();
        }
    }

    @Test
    void keysReplayedAfterARestartCountAsFlushed() throws IOException {
        open();
        write(0, 1, false);
        seal();
        write(0, 2, false);
        c.close();
        c = SteppedCache.open(medium, disk);
        try {
            stepOneKset();
            assertThat(version(disk.contents(), 0)).as("block 0 after the first batch of the new run").isEqualTo(1);
        } finally {
            closeAll();
        }
    }

    @Test
    void theNewerKeyIsDurableBeforeTheDirtyTailPassesWhatItOverwrote() throws IOException {
        open();
        write(0, 1, false);
        seal();
        write(0, 2, false); // in an open kset: in the mapped medium, not yet persisted
        stepOneKset(); // leaves block 0 to version 2
        assertThat(c.writeback.step(0)).isEqualTo(Writeback.Step.PROGRESS); // sync: the dirty tail passes version 1
        assertThat(version(disk.contents(), 0)).isEqualTo(0);
        PowerCutMedium cut = medium.cut(1); // power lost: only what was persisted survives
        c.crash();
        medium.close();
        medium = cut;
        c = SteppedCache.open(cut, disk.cutKeeping(false));
        try {
            byte[] got = new byte[BLOCK];
            c.cache.read(0, MemorySegment.ofArray(got));
            assertThat(version(MemorySegment.ofArray(got), 0)).as("block 0 after the power cut").isEqualTo(2);
        } finally {
            closeAll();
        }
    }

    /**
     * Random writes (some FUA), flushes and seals over a few blocks, with writeback steps of one to
     * three ksets in between. After every step the backing device alone must be a crash image of
     * the client's history: for some moment t, every block holds either its newest version written
     * before the last flush or FUA write that completed before t, or a version written after that
     * and before t. (A FUA write counts as a flush here: stricter than the device contract, which
     * only makes the FUA write itself durable, and what writeback keeps to.)
     */
    @Test
    void theBackingDeviceAloneIsAlwaysACrashImageOfTheClientsWrites(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        for (int run = Integer.getInteger("pmcache.overwrite.runs", 4); run > 0; run--) {
            crashImageRun(seed, r);
        }
    }

    private void crashImageRun(Seed seed, SplittableRandom r) throws IOException {
        open();
        try {
            // history: for each op index, what it was; versions[b] = list of (op index, version)
            List<int[]> writes = new ArrayList<>(); // {op, block, version}
            List<Integer> barriers = new ArrayList<>(); // op indexes of completed flushes and FUA writes
            int[] next = new int[BLOCKS];
            int steps = 0;
            for (int op = 0; op < 600; op++) {
                int what = r.nextInt(100);
                if (what < 60) {
                    int b = r.nextInt(BLOCKS);
                    boolean fua = r.nextInt(12) == 0;
                    int v = ++next[b];
                    write(b, v, fua);
                    writes.add(new int[] {op, b, v});
                    if (fua) {
                        barriers.add(op);
                    }
                } else if (what < 66) {
                    c.cache.flush();
                    barriers.add(op);
                } else if (what < 80) {
                    seal();
                } else {
                    if (c.writeback.step((long) (1 + r.nextInt(3)) * BLOCK) == Writeback.Step.PROGRESS) {
                        steps++;
                    }
                    assertThat(crashImageMoment(disk.contents(), writes, barriers, op))
                            .as("%s: after op %d, the backing device alone is a crash image of some moment", seed, op)
                            .isGreaterThanOrEqualTo(0);
                }
            }
            assertThat(steps).as("writeback steps").isGreaterThan(20);
            seal();
            c.writebackSteps(-1, "final drain");
            for (int b = 0; b < BLOCKS; b++) {
                assertThat(version(disk.contents(), b)).as("%s: block %d drained", seed, b).isEqualTo(next[b]);
            }
        } finally {
            closeAll();
        }
    }

    /**
     * A moment t (an op index, 0..now+1) of which {@code image} is a crash image, or -1: for every
     * block, the version is the newest written before the last barrier before t, or one written
     * after that barrier and before t.
     */
    private static int crashImageMoment(MemorySegment image, List<int[]> writes, List<Integer> barriers, int now) {
        int[] have = new int[BLOCKS];
        for (int b = 0; b < BLOCKS; b++) {
            have[b] = version(image, b);
            if (have[b] < 0) {
                return -1;
            }
        }
        for (int t = 0; t <= now + 1; t++) {
            int barrier = -1; // the last barrier op before t
            for (int x : barriers) {
                if (x < t) {
                    barrier = x;
                }
            }
            boolean ok = true;
            for (int b = 0; b < BLOCKS && ok; b++) {
                int flushed = 0; // newest version of b written at or before the barrier
                List<Integer> allowed = new ArrayList<>();
                for (int[] w : writes) {
                    if (w[1] != b || w[0] >= t) {
                        continue;
                    }
                    if (w[0] <= barrier) {
                        flushed = w[2];
                    } else {
                        allowed.add(w[2]);
                    }
                }
                ok = have[b] == flushed || allowed.contains(have[b]);
            }
            if (ok) {
                return t;
            }
        }
        return -1;
    }
}
