package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.pmcache.backing.FaultyBackingDevice;
import io.pmcache.backing.FaultyBackingDevice.Op;
import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.time.Duration;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * A failing or slow backing device: dirty data stays in the cache and readable, errors and retries
 * show in the status, writeback resumes when the device heals, and writers facing a full cache
 * wait instead of failing.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class WritebackFailureTest {
    private static final long MIB = Rig.MIB;
    private static final int DEVICE = (int) (32 * MIB);

    @Test
    void failingWritesAndFlushesLoseNothingAndWritebackResumesWhenHealed(Seed seed) throws Exception {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory(DEVICE);
        MemoryBackingDevice disk = new MemoryBackingDevice(DEVICE, 7);
        FaultyBackingDevice faulty = new FaultyBackingDevice(disk);
        try (Rig rig = Rig.format(24, faulty, false)) {
            rig.open(new CacheOptions(2, 50, true, true));
            CorruptMediaTest.writeSome(rig, model, r, 50, true);
            rig.cache.flushAll(left -> { }); // a healthy start

            faulty.failAlways(Op.WRITE);
            smallWrites(rig, model, r, 100); // at most 3.2 MiB: the cache can hold it all while nothing drains
            waitFor(() -> rig.cache.status().backingErrors() >= 2 && rig.cache.status().backingRetries() >= 2);
            CacheStatus st = rig.cache.status();
            assertThat(st.lastBackingError()).contains("injected EIO").contains("WRITE");
            assertThat(st.dirtyBytes()).isPositive();

            faulty.heal(Op.WRITE).failAlways(Op.FLUSH);
            long errors = st.backingErrors();
            smallWrites(rig, model, r, 100);
            waitFor(() -> rig.cache.status().backingErrors() > errors + 1);
            assertThat(rig.cache.status().lastBackingError()).contains("FLUSH");
            assertThat(rig.cache.status().dirtyBytes()).as("no flush, no progress").isPositive();
            // Verified only now: its read-miss fills take cache space that nothing can free while
            // the dirty tail is stuck (writes after it would wait until the device heals).
            CorruptMediaTest.verifyCurrent(rig, model, seed + " while the backing device fails");

            // A restart while the device still fails loses nothing either.
            rig.closeCache();
            rig.open(new CacheOptions(2, 50, true, true));
            CorruptMediaTest.verifyCurrent(rig, model, seed + " after reopen while failing");

            faulty.heal();
            rig.cache.flushAll(left -> { });
            assertThat(rig.cache.status().dirtyBytes()).isZero();
            assertThat(rig.cache.status().lastBackingError()).as("cleared once writeback works again").isEmpty();
            assertThat(disk.toByteArray()).as("%s: the backing device after healing", seed).isEqualTo(model.current);
            assertThat(faulty.injectedFailures()).isPositive();
        }
    }

    @Test
    void aWriterFillingASlowedCacheFourTimesOverWaitsAndCompletes(Seed seed) throws Exception {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory((int) (64 * MIB));
        MemoryBackingDevice disk = new MemoryBackingDevice(64 * MIB, 7);
        FaultyBackingDevice faulty = new FaultyBackingDevice(disk);
        try (Rig rig = Rig.format(16, faulty, false)) {
            rig.open(new CacheOptions(2, 30, true, true));
            faulty.stall(Duration.ofMillis(15));
            long written = 0;
            while (written < 64 * MIB) { // four times the cache
                int len = (int) (64 * 1024 * (1 + r.nextInt(8)));
                long off = r.nextLong((64 * MIB - len) / 4096 + 1) * 4096;
                rig.write(model, off, len);
                written += len;
            }
            CacheStatus st = rig.cache.status();
            assertThat(st.spaceWaits()).as("the writer waited for space").isPositive();
            assertThat(st.spaceWaitNanos()).isPositive();
            assertThat(st.segmentsReclaimed()).isPositive();
            faulty.stall(Duration.ZERO);
            CorruptMediaTest.verifyCurrent(rig, model, seed + " after the slow fill");
            rig.cache.flushAll(left -> { });
            assertThat(disk.toByteArray()).isEqualTo(model.current);
        }
    }

    @Test
    void aFailingReadMissFailsThatReadOnly() throws Exception {
        MemoryBackingDevice disk = new MemoryBackingDevice(DEVICE, 7);
        byte[] pattern = new byte[8192];
        new SplittableRandom(5).nextBytes(pattern);
        disk.write(MIB, java.lang.foreign.MemorySegment.ofArray(pattern), false);
        FaultyBackingDevice faulty = new FaultyBackingDevice(disk);
        try (Rig rig = Rig.format(16, faulty, false)) {
            rig.open(CacheOptions.defaults());
            faulty.failNext(Op.READ, 1);
            assertThatThrownBy(() -> rig.read(MIB, 8192)).isInstanceOf(IOException.class)
                    .hasMessageContaining("injected EIO");
            assertThat(rig.read(MIB, 8192)).as("the next read works").isEqualTo(pattern);
            assertThat(rig.read(MIB, 8192)).as("and now hits the cache").isEqualTo(pattern);
            assertThat(rig.cache.status().readHits()).isPositive();
            // A write over a range whose miss failed is not disturbed by it.
            faulty.failNext(Op.READ, 1);
            assertThatThrownBy(() -> rig.read(2 * MIB, 4096)).isInstanceOf(IOException.class);
            WriteHistory model = new WriteHistory(DEVICE);
            rig.write(model, 2 * MIB, 4096);
            assertThat(rig.read(2 * MIB, 4096))
                    .isEqualTo(java.util.Arrays.copyOfRange(model.current, (int) (2 * MIB), (int) (2 * MIB) + 4096));
        }
    }

    /**
     * A backing device failing every other flush while writes keep coming: writeback alternates
     * between failure and progress hundreds of times. Every failure counts in the status, but the
     * log gets one WARN per episode and then at most one summary per interval, not a line per retry.
     */
    @Test
    void anIntermittentlyFailingBackingDeviceDoesNotFloodTheLog(Seed seed) throws Exception {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory(DEVICE);
        MemoryBackingDevice disk = new MemoryBackingDevice(DEVICE, 7);
        FaultyBackingDevice faulty = new FaultyBackingDevice(disk);
        ch.qos.logback.classic.Logger wbLog =
                (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger(Writeback.class);
        ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> events =
                new ch.qos.logback.core.read.ListAppender<>();
        events.start();
        ch.qos.logback.classic.Level level = wbLog.getLevel();
        wbLog.setLevel(ch.qos.logback.classic.Level.INFO); // the recovery lines are INFO
        wbLog.addAppender(events);
        try (Rig rig = Rig.format(24, faulty, false)) {
            rig.open(new CacheOptions(2, 50, true, true));
            long started = System.nanoTime();
            faulty.failEvery(Op.FLUSH, 2);
            long deadline = started + TimeUnit.SECONDS.toNanos(60);
            while (rig.cache.status().backingErrors() < 20 && System.nanoTime() < deadline) {
                smallWrites(rig, model, r, 8);
            }
            assertThat(rig.cache.status().backingErrors()).as("%s: failures within 60 s; %s", seed,
                    rig.cache.status()).isGreaterThanOrEqualTo(20);
            long elapsedNanos = System.nanoTime() - started;
            faulty.heal();
            rig.cache.flushAll(left -> { });
            assertThat(disk.toByteArray()).as("%s: nothing lost", seed).isEqualTo(model.current);

            long errors = rig.cache.status().backingErrors();
            long warns = events.list.stream().filter(ev -> ev.getLevel() == ch.qos.logback.classic.Level.WARN)
                    .count();
            long recoveries = events.list.stream().filter(ev -> ev.getFormattedMessage().contains("works again"))
                    .count();
            long intervals = 1 + elapsedNanos / TimeUnit.MILLISECONDS.toNanos(RecurringFailureLog.INTERVAL_MILLIS);
            assertThat(errors).as("every failure is counted").isGreaterThanOrEqualTo(20);
            assertThat(warns).as("%s: WARN lines for %d failures in %d ms", seed, errors, elapsedNanos / 1_000_000)
                    .isPositive().isLessThanOrEqualTo(intervals);
            assertThat(recoveries).as("recovery lines").isPositive().isLessThanOrEqualTo(warns);
            assertThat(events.list.stream().filter(ev -> ev.getLevel() == ch.qos.logback.classic.Level.WARN)
                    .skip(1).allMatch(ev -> ev.getFormattedMessage().contains("not logged")))
                    .as("later WARN lines say how many failures they stand for").isTrue();
        } finally {
            wbLog.detachAppender(events);
            wbLog.setLevel(level);
        }
    }

    private static void smallWrites(Rig rig, WriteHistory model, SplittableRandom r, int n) throws IOException {
        for (int i = 0; i < n; i++) {
            int len = 4096 * (1 + r.nextInt(8));
            rig.write(model, r.nextLong((model.size() - len) / 4096 + 1) * 4096, len);
        }
        rig.cache.flush();
    }

    /** Waits for a condition the background workers bring about; the class timeout turns a hang into a failure. */
    private static void waitFor(BooleanSupplier condition) throws InterruptedException {
        while (!condition.getAsBoolean()) {
            Thread.sleep(20);
        }
    }

    @Test
    void aStalledBackingDeviceShowsInTheStatus(Seed seed) throws Exception {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory(DEVICE);
        FaultyBackingDevice faulty = new FaultyBackingDevice(new MemoryBackingDevice(DEVICE, 7));
        try (Rig rig = Rig.format(24, faulty, false)) {
            rig.open(new CacheOptions(2, 50, true, true));
            rig.cache.writebackForTests().stallThresholdMillis = 50;
            faulty.stall(Duration.ofMillis(400)); // every backing call hangs for a while
            smallWrites(rig, model, r, 20);
            rig.cache.flush();
            waitFor(() -> rig.cache.status().backingStalledMillis() > 0);
            waitFor(() -> rig.cache.status().lastBackingError().contains("stalled"));
            faulty.heal();
            rig.cache.flushAll(left -> { });
            assertThat(rig.cache.status().backingStalledMillis()).isZero();
            assertThat(rig.cache.status().lastBackingError()).isEmpty();
            CorruptMediaTest.verifyCurrent(rig, model, seed + " after the stall");
        }
    }
}
