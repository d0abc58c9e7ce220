package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.format.LogPosition;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A writeback step starts the backing-device flush of the previous batch before it gathers its
 * own batch (session 16, issue 11): a writeback-bound run waits for those flushes back to back, and
 * gathering a batch of ~18,000 keys (2–28 ms) between one flush's end and the next one's start left
 * the backing device idle that long in every step.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class WritebackFlushOverlapTest {
    private static final int SEGMENTS = 12;
    private static final int SECTOR = 512;
    private static final long DEVICE = 2L << 20;

    @Test
    void theFlushOfTheLastBatchIsUnderWayWhileTheNextBatchIsGathered() throws Exception {
        PowerCutBackingDevice disk = new PowerCutBackingDevice(DEVICE);
        SteppedCache c = SteppedCache.open(SteppedCache.formatted(SEGMENTS, disk), disk);
        try {
            CountDownLatch flushBegan = new CountDownLatch(1);
            AtomicBoolean checkAtGathered = new AtomicBoolean();
            AtomicBoolean flushBeganFirst = new AtomicBoolean();
            c.cache.stepHookForTests(p -> {
                if (p == StepHook.Point.WRITEBACK_BEFORE_SYNC) {
                    flushBegan.countDown();
                } else if (p == StepHook.Point.WRITEBACK_GATHERED && checkAtGathered.get()) {
                    try {
                        // The old order submitted the flush only after this point: it never began.
                        flushBeganFirst.set(flushBegan.await(10, TimeUnit.SECONDS));
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            });
            writeAndFlush(c, 0, 1);
            assertThat(c.writeback.step()).as("the first batch").isEqualTo(Writeback.Step.PROGRESS);
            assertThat(flushBegan.getCount()).as("flushes before a batch was written").isEqualTo(1);

            writeAndFlush(c, SECTOR, 2);
            LogPosition tailBefore = c.engine().info.current().dirtyTail();
            checkAtGathered.set(true);
            assertThat(c.writeback.step()).as("the second batch").isEqualTo(Writeback.Step.PROGRESS);
            assertThat(flushBeganFirst).as("the first batch's flush began before the second batch was gathered")
                    .isTrue();
            assertThat(c.engine().info.current().dirtyTail()).as("the dirty tail passed the first batch")
                    .isNotEqualTo(tailBefore);

            c.writebackSteps(-1, "to the head");
            assertThat(c.engine().stats.dirtyBytes.sum()).as("dirty bytes left").isZero();
            byte[] got = new byte[SECTOR];
            disk.read(SECTOR, MemorySegment.ofArray(got));
            assertThat(got).as("the second write on the backing device").isEqualTo(content(2));
        } finally {
            c.close();
        }
    }

    private static void writeAndFlush(SteppedCache c, long offset, int version) throws IOException {
        c.cache.write(offset, MemorySegment.ofArray(content(version)), false);
        c.cache.flush();
    }

    private static byte[] content(int version) {
        byte[] b = new byte[SECTOR];
        java.util.Arrays.fill(b, (byte) version);
        return b;
    }
}
