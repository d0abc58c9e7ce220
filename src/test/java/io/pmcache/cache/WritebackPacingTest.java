package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.cache.WritebackPolicy.Reason;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Writeback pacing with the engine: the cache's own workers are off and the test turns a
 * {@link WritebackDriver} on the cache's engine with a fake clock, as the writeback worker would
 * (turn again at once after progress, else "wait" by advancing the clock). Nothing depends on
 * real time.
 */
class WritebackPacingTest {
    static final long MIB = 1L << 20;
    static final long TICK = 100_000_000L; // 100 ms of fake time
    static final int SEGMENTS = 64;          // of 1 MiB: a 64 MiB cache, target 10 % = 6.4 MiB
    static final int DEVICE = 32 << 20;

    /** The cache and a driver turned by the test. */
    static final class Paced implements AutoCloseable {
        final Rig rig;
        final Cache cache;
        final Engine e;
        final Writeback writeback;
        final GarbageCollector gc;
        final WritebackPolicy policy;
        final WritebackDriver driver;
        final WriteHistory model = new WriteHistory(DEVICE);
        long now = 1_000 * TICK;

        Paced(WritebackSettings settings) throws Exception {
            rig = Rig.format(SEGMENTS, new MemoryBackingDevice(DEVICE, 7), false);
            cache = rig.open(new CacheOptions(1, 70, false, false).withPacing(settings));
            e = cache.engine();
            writeback = new Writeback(e);
            gc = new GarbageCollector(e);
            policy = new WritebackPolicy(settings);
            driver = new WritebackDriver(e, writeback, gc, policy);
        }

        /** What the worker does until it would sleep; returns the last turn. */
        WritebackDriver.Turn work() {
            for (int i = 0; i < 100_000; i++) {
                WritebackDriver.Turn t = driver.turn(now);
                assertThat(t.outcome()).isNotEqualTo(WritebackDriver.Outcome.FAILED);
                if (t.outcome() == WritebackDriver.Outcome.IDLE
                        || t.outcome() == WritebackDriver.Outcome.PACED && t.waitMillis() > 0) {
                    gc.pass();
                    return t;
                }
            }
            throw new AssertionError("the worker never rests");
        }

        void write4k(Random rnd, int n) throws Exception {
            for (int i = 0; i < n; i++) {
                rig.write(model, (long) rnd.nextInt(DEVICE / 4096) * 4096, 4096);
                gc.pass();
            }
            cache.flush(); // seal: writeback passes only sealed ksets
        }

        /**
         * A drain (flush-all, detach, stop-with-drain) until the worker rests: nothing stays dirty
         * and the backing device holds what was written. Returns the last turn.
         */
        WritebackDriver.Turn drainAll(long seed) throws Exception {
            policy.beginDrain();
            WritebackDriver.Turn t = work();
            policy.endDrain();
            assertThat(dirty()).as("seed %d", seed).isZero();
            assertThat(((MemoryBackingDevice) rig.backing).toByteArray()).as("seed %d", seed)
                    .isEqualTo(model.current);
            return t;
        }

        /** Random 4 KiB writes (64 at a time, flushed or only sealed) until space is short. */
        void writeUntilSpaceShort(Random rnd, long seed, boolean flushed) throws Exception {
            int writes = 0;
            while (!WritebackPolicy.spaceShort(driver.inputs())) {
                if (flushed) {
                    write4k(rnd, 64);
                } else {
                    write4kUnflushed(rnd, 64);
                }
                writes += 64;
                assertThat(writes).as("seed %d: space gets short", seed).isLessThan(SEGMENTS * 256);
            }
        }

        /** As {@link #write4k}, sealed without a FLUSH: the keys stay in one flush interval. */
        void write4kUnflushed(Random rnd, int n) throws Exception {
            for (int i = 0; i < n; i++) {
                rig.write(model, (long) rnd.nextInt(DEVICE / 4096) * 4096, 4096);
                gc.pass();
            }
            e.keyLog.sealAll();
        }

        long dirty() {
            return e.stats.dirtyBytes.sum();
        }

        @Override
        public void close() throws Exception {
            writeback.close();
            rig.closeCache();
        }
    }

    /**
     * 512 KiB/s of random 4 KiB writes for 10 simulated minutes: after the controller settles,
     * the dirty data stays near the 6.4 MiB target (not drained to zero, not growing), and
     * writeback is paced, never at full speed. Then no I/O: after the idle delay writeback drains
     * everything at full speed, and the backing device holds exactly what was written.
     */
    @Test
    void aTrickleStaysNearTheTargetAndAnIdleCacheDrains() throws Exception {
        long seed = new Random().nextLong();
        Random rnd = new Random(seed);
        try (Paced p = new Paced(WritebackSettings.DEFAULTS)) {
            long target = SEGMENTS * MIB / 100 * 10;
            List<Long> settled = new ArrayList<>();
            for (int tick = 0; tick < 6000; tick++) {
                p.write4k(rnd, 13); // 13 x 4 KiB per 100 ms: 520 KiB/s
                WritebackDriver.Turn t = p.work();
                assertThat(t.decision().reason()).as("seed %d, tick %d", seed, tick).isEqualTo(Reason.CONTROLLER);
                if (tick >= 3000) {
                    settled.add(p.dirty());
                }
                p.now += TICK;
            }
            long min = settled.stream().mapToLong(Long::longValue).min().orElseThrow();
            long max = settled.stream().mapToLong(Long::longValue).max().orElseThrow();
            System.out.printf("trickle: target %d, dirty after settling %d..%d bytes%n", target, min, max);
            assertThat(min).as("seed %d: dirty never far below the target", seed).isGreaterThan(target * 6 / 10);
            assertThat(max).as("seed %d: dirty never far above the target", seed).isLessThan(target * 14 / 10);
            assertThat(p.e.stats.writebackBytes.sum()).as("writeback kept pace with the writes").isPositive();

            // Idle: no foreground I/O. Before the delay, still paced; after it, a full-speed drain.
            long before = p.dirty();
            for (int i = 0; i < 19; i++) {
                assertThat(p.work().decision().reason()).isEqualTo(Reason.CONTROLLER);
                p.now += TICK;
            }
            assertThat(p.dirty()).as("paced until the idle delay passed").isGreaterThan(before / 2);
            p.now += TICK;
            WritebackDriver.Turn idle = p.work();
            assertThat(idle.decision().reason()).isEqualTo(Reason.IDLE);
            assertThat(idle.decision().fullSpeed()).isTrue();
            assertThat(p.dirty()).as("an idle cache drains").isZero();
            assertThat(((MemoryBackingDevice) p.rig.backing).toByteArray()).as("seed %d", seed)
                    .isEqualTo(p.model.current);
        }
    }

    /**
     * Writes with no writeback until the dirty data nears the gc threshold: the next turn is at
     * full speed for pressure, its batches are the largest (not a paced second's worth): the first
     * spans the watermarks, and since it absorbed overwrites the next reaches down to the target.
     * A drain then writes everything back.
     */
    @Test
    void pressureWritesBackAtFullSpeed() throws Exception {
        long seed = new Random().nextLong();
        Random rnd = new Random(seed);
        try (Paced p = new Paced(WritebackSettings.DEFAULTS.withIdleDelayMillis(WritebackSettings.IDLE_DELAY_MILLIS_MAX))) {
            p.writeUntilSpaceShort(rnd, seed, true);
            WritebackDriver.Turn t = p.driver.turn(p.now);
            assertThat(t.decision().reason()).isEqualTo(Reason.PRESSURE);
            assertThat(t.decision().fullSpeed()).isTrue();
            assertThat(p.writeback.lastBatchBytes()).as("a full-size batch").isGreaterThanOrEqualTo(4 * MIB);
            assertThat(p.driver.inputs().writtenBytes()).as("the batch in flight, written and not yet synced")
                    .isEqualTo(p.writeback.lastBatchBytes());
            long low = WritebackPolicy.lowWatermark(p.driver.inputs(), t.decision().targetBytes());
            // Random 4 KiB writes over a 32 MiB device: a 17 MiB batch finds about a fifth of its
            // keys overwritten by newer ones, so the next full-speed batch reaches for the target.
            assertThat(p.writeback.lastBatch().absorbed()).as("seed %d", seed)
                    .isGreaterThanOrEqualTo(WritebackPolicy.ABSORBING);
            WritebackDriver.Turn rest = p.work();
            assertThat(p.dirty()).as("full speed down to the low watermark").isLessThanOrEqualTo(low);
            assertThat(p.dirty()).as("the load absorbs: down to the target").isLessThanOrEqualTo(t.decision().targetBytes());
            assertThat(rest.decision().reason()).isEqualTo(Reason.CONTROLLER);
            // A drain (flush-all, detach, stop-with-drain) takes the rest at full speed.
            assertThat(p.drainAll(seed).decision().reason()).isEqualTo(Reason.DRAIN);
        }
    }

    /**
     * The same load without FLUSHes: the batch's keys that newer keys anywhere overwrote are left
     * to them (not written), so the next full-speed batch is the base batch from the tail (an
     * eighth of the cache), not one reaching toward the head, where keys are not overwritten yet;
     * and pressure ends on the bytes no batch has taken yet, without one more batch behind the
     * one in flight. The backing device still ends up holding what was written.
     */
    @Test
    void overwritesBeyondTheBatchKeepFullSpeedBatchesAtTheTail() throws Exception {
        long seed = new Random().nextLong();
        Random rnd = new Random(seed);
        try (Paced p = new Paced(WritebackSettings.DEFAULTS.withIdleDelayMillis(WritebackSettings.IDLE_DELAY_MILLIS_MAX))) {
            p.writeUntilSpaceShort(rnd, seed, false);
            WritebackDriver.Turn first = p.driver.turn(p.now);
            assertThat(first.decision().reason()).isEqualTo(Reason.PRESSURE);
            long watermarks = p.writeback.lastBatchBytes();
            // Random 4 KiB writes over a 32 MiB device, about 40 MiB of them: most keys of the
            // oldest 17 MiB have a newer overwriter.
            assertThat(p.writeback.lastBatch().leftToNewer()).as("seed %d", seed)
                    .isGreaterThanOrEqualTo(WritebackPolicy.ABSORBING);
            WritebackDriver.Turn second = p.driver.turn(p.now);
            assertThat(second.decision().reason()).isEqualTo(Reason.PRESSURE);
            long base = WritebackPolicy.baseBatch(SEGMENTS * MIB);
            assertThat(p.writeback.lastBatchBytes()).as("seed %d: the base batch (whole ksets)", seed)
                    .isGreaterThan(base / 2).isLessThanOrEqualTo(base + MIB).isLessThan(watermarks);
            // Writes go on at three quarters of a base batch per turn: pressure goes on, the dirty
            // bytes sink slowly, and it ends once the bytes no batch has taken are low, with the
            // batch in flight still dirty above the low watermark: no further batch behind it.
            WritebackPolicy.Inputs before;
            WritebackDriver.Turn t;
            int turns = 0;
            do {
                p.write4kUnflushed(rnd, (int) (base * 3 / 4 / 4096));
                before = p.driver.inputs();
                t = p.driver.turn(p.now);
                assertThat(++turns).as("seed %d: pressure ends", seed).isLessThan(100);
            } while (t.decision().reason() == Reason.PRESSURE);
            long low = WritebackPolicy.lowWatermark(before, t.decision().targetBytes());
            assertThat(before.unwrittenBytes()).as("seed %d", seed).isLessThanOrEqualTo(low);
            assertThat(before.dirtyBytes()).as("seed %d: the batch in flight counted as done (%s, low watermark %d)",
                    seed, before, low).isGreaterThan(low);
            p.drainAll(seed);
        }
    }

    /**
     * Overwrites inside one batch reach the backing device once: status counts the key bytes
     * written back and, apart, the bytes the backing device received.
     */
    @Test
    void statusCountsTheBytesTheBatchesAbsorbed() throws Exception {
        Rig rig = Rig.format(SEGMENTS, new MemoryBackingDevice(DEVICE, 7), false);
        WriteHistory model = new WriteHistory(DEVICE);
        Cache c = rig.open(CacheOptions.defaults().withParallel(1).withGcPercent(70).withWriteback(false));
        try {
            for (int i = 0; i < 10; i++) {
                rig.write(model, 0, 4096);                  // one block, ten times
            }
            rig.write(model, 8192, 8192);
            c.flushAll(left -> { });
            CacheStatus s = c.status();
            assertThat(s.writebackBytes()).as("the keys' bytes").isEqualTo(12 * 4096);
            assertThat(s.writebackWrittenBytes()).as("what the backing device received").isEqualTo(3 * 4096);
            assertThat(c.writebackForTests().lastBatch().absorbed()).as("the batch's share not written")
                    .isEqualTo(1 - 3.0 / 12);
            assertThat(((MemoryBackingDevice) rig.backing).toByteArray()).isEqualTo(model.current);
        } finally {
            rig.closeCache();
        }
    }

    /**
     * Writeback's and gc's threads run at a lower CPU priority than the threads that serve
     * requests (Linux: nice +{@value Workers#BACKGROUND_NICE}, read back from /proc).
     */
    @Test
    void backgroundWorkersYieldTheCpu() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(System.getProperty("os.name", "").startsWith("Linux"));
        Rig rig = Rig.format(SEGMENTS, new MemoryBackingDevice(DEVICE, 7), false);
        WriteHistory model = new WriteHistory(DEVICE);
        Cache c = rig.open(CacheOptions.defaults().withParallel(1).withGcPercent(70));
        try {
            rig.write(model, 0, 4096);
            c.flushAll(left -> { });                        // the syncer thread exists too now
            java.util.Map<String, Integer> nice = new java.util.HashMap<>();
            try (var tasks = java.nio.file.Files.list(java.nio.file.Path.of("/proc/self/task"))) {
                for (var t : (Iterable<java.nio.file.Path>) tasks::iterator) {
                    String stat = java.nio.file.Files.readString(t.resolve("stat"));
                    String name = stat.substring(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
                    String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
                    nice.put(name, Integer.parseInt(f[16]));
                }
            }
            int base = io.pmcache.os.ThreadNice.currentThreadNice();
            int background = Math.min(19, base + Workers.BACKGROUND_NICE);
            assertThat(nice).containsEntry("pmcache-writeba", background) // names cut at 15 chars
                    .containsEntry("pmcache-gc", background)
                    .containsEntry("pmcache-sealer", base);
        } finally {
            rig.closeCache();
        }
    }

    /** A flush-all runs at full speed while the worker's policy says "drain". */
    @Test
    void theCachesOwnPolicyReportsTheDrainAndTheKnobs() throws Exception {
        Rig rig = Rig.format(SEGMENTS, new MemoryBackingDevice(DEVICE, 7), false);
        WriteHistory model = new WriteHistory(DEVICE);
        Cache c = rig.open(CacheOptions.defaults().withParallel(1).withGcPercent(70));
        try {
            for (int i = 0; i < 256; i++) {
                rig.write(model, i * 4096L, 4096);
            }
            c.setWritebackSettings(c.writebackSettings().withTargetPercent(25));
            assertThat(c.status().writebackTargetPercent()).isEqualTo(25);
            assertThat(c.status().dirtyPercent()).isBetween(0.0, 100.0);
            c.flushAll(left -> { });
            assertThat(c.status().dirtyBytes()).isZero();
            assertThat(((MemoryBackingDevice) rig.backing).toByteArray()).isEqualTo(model.current);
        } finally {
            rig.closeCache();
        }
    }
}
