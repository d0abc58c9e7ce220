package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.pmcache.cache.WritebackPolicy.Decision;
import io.pmcache.cache.WritebackPolicy.Inputs;
import io.pmcache.cache.WritebackPolicy.LastBatch;
import io.pmcache.cache.WritebackPolicy.Reason;
import org.junit.jupiter.api.Test;

/** The pacing rule and the controller alone, driven with a fake clock and synthetic figures. */
class WritebackPolicyTest {
    static final long MIB = 1L << 20;
    static final long SEC = 1_000_000_000L;
    /** A 1 GiB cache of 64 segments of 16 MiB, gc at 70 % (44 segments). */
    static final int SEGS = 64;
    static final long SEG = 16 * MIB;
    static final long CACHE = SEGS * SEG;
    static final long TARGET = CACHE / 100 * 10;

    /** Figures with no space pressure: a third of the segments used, gc not caught up. */
    static Inputs calm(long dirty, long ops) {
        return new Inputs(dirty, SEGS, SEG, 20, 44, false, false, ops, 0, 0);
    }

    @Test
    void belowTheTargetTheRateIsTheMinimum() {
        WritebackPolicy p = new WritebackPolicy(WritebackSettings.DEFAULTS);
        Decision d = p.decide(0, calm(TARGET / 2, 1), LastBatch.NONE);
        assertThat(d.reason()).isEqualTo(Reason.CONTROLLER);
        assertThat(d.targetBytes()).isEqualTo(TARGET);
        assertThat(d.rate()).isEqualTo(WritebackSettings.MIN_RATE_DEFAULT);
        assertThat(p.decide(SEC, calm(TARGET / 2, 2), LastBatch.NONE).rate()).isEqualTo(WritebackSettings.MIN_RATE_DEFAULT);
    }

    @Test
    void theProportionalRateGrowsWithTheExcess() {
        long excess = 200 * MIB;
        long small = new WritebackPolicy(WritebackSettings.DEFAULTS).decide(0, calm(TARGET + excess / 2, 1), LastBatch.NONE).rate();
        long large = new WritebackPolicy(WritebackSettings.DEFAULTS).decide(0, calm(TARGET + excess, 1), LastBatch.NONE).rate();
        assertThat(large).as("first update: the proportional term alone, excess / P")
                .isEqualTo((long) (excess / WritebackPolicy.P_INVERSE_SECONDS));
        assertThat(small).isEqualTo(large / 2);
    }

    @Test
    void theIntegralRaisesTheRateWhileTheExcessPersists() {
        WritebackPolicy p = new WritebackPolicy(WritebackSettings.DEFAULTS);
        long first = p.decide(0, calm(TARGET + 100 * MIB, 1), LastBatch.NONE).rate();
        long later = 0;
        for (int s = 1; s <= 60; s++) {
            later = p.decide(s * SEC, calm(TARGET + 100 * MIB, 1 + s), LastBatch.NONE).rate();
        }
        assertThat(later).isGreaterThan(first * 3 / 2);
    }

    @Test
    void theMaximumRateCapsTheControllerAndTheIntegralDoesNotWindUp() {
        WritebackPolicy p = new WritebackPolicy(WritebackSettings.DEFAULTS.withMaxRate(MIB));
        for (int s = 0; s < 600; s++) {
            assertThat(p.decide(s * SEC, calm(TARGET + 500 * MIB, s), LastBatch.NONE).rate()).isEqualTo(MIB);
        }
        // Back below the target: the rate drops to the minimum within a few updates, not after
        // ten minutes of unwinding an integral that grew while capped.
        long t = 600 * SEC;
        long rate = 0;
        for (int s = 0; s < 3; s++) {
            rate = p.decide(t + s * SEC, calm(TARGET / 2, 1000 + s), LastBatch.NONE).rate();
        }
        assertThat(rate).isEqualTo(WritebackSettings.MIN_RATE_DEFAULT);
    }

    /**
     * A steady inflow of dirty data: the closed loop (dirty grows by the inflow and shrinks by the
     * rate) settles at the target, with the rate equal to the inflow.
     */
    @Test
    void aSteadyTrickleSettlesAtTheTarget() {
        WritebackPolicy p = new WritebackPolicy(WritebackSettings.DEFAULTS);
        double inflow = 8 * MIB; // bytes per second
        double dirty = 0;
        double dt = 0.1;
        long rate = 0;
        double worst = 0;
        for (int i = 0; i < 6000; i++) { // 600 simulated seconds
            Decision d = p.decide((long) (i * dt * SEC), calm((long) dirty, i), LastBatch.NONE);
            assertThat(d.reason()).isEqualTo(Reason.CONTROLLER);
            rate = d.rate();
            dirty = Math.max(0, dirty + (inflow - rate) * dt);
            if (i * dt >= 300) {
                worst = Math.max(worst, Math.abs(dirty - TARGET));
            }
        }
        assertThat(worst).as("largest distance from the target after 300 s").isLessThan(TARGET * 0.05);
        assertThat((double) rate).isCloseTo(inflow, org.assertj.core.data.Percentage.withPercentage(5));
        // and it never overshoots into a full cache on the way: checked by the bound above
    }

    @Test
    void noForegroundIoForTheIdleDelayDrainsAtFullSpeed() {
        WritebackPolicy p = new WritebackPolicy(WritebackSettings.DEFAULTS.withIdleDelayMillis(2000));
        assertThat(p.decide(0, calm(TARGET / 2, 5), LastBatch.NONE).reason()).isEqualTo(Reason.CONTROLLER);
        assertThat(p.decide(1999_000_000L, calm(TARGET / 2, 5), LastBatch.NONE).reason()).isEqualTo(Reason.CONTROLLER);
        Decision idle = p.decide(2 * SEC, calm(TARGET / 2, 5), LastBatch.NONE);
        assertThat(idle.reason()).isEqualTo(Reason.IDLE);
        assertThat(idle.fullSpeed()).isTrue();
        assertThat(p.decide(3 * SEC, calm(TARGET / 2, 6), LastBatch.NONE).reason()).as("I/O again").isEqualTo(Reason.CONTROLLER);
        assertThat(p.decide(4 * SEC, calm(TARGET / 2, 6), LastBatch.NONE).reason()).isEqualTo(Reason.CONTROLLER);
        assertThat(p.decide(5 * SEC, calm(TARGET / 2, 6), LastBatch.NONE).reason()).isEqualTo(Reason.IDLE);
    }

    /**
     * A full-speed batch spans the watermarks (space short down to the low watermark), so one batch
     * takes a pressure episode; once a full-speed batch absorbed a tenth of its keys' bytes, it
     * reaches down to the target, so that it absorbs more; the base batch (an eighth of the cache)
     * when a writer waits, so the dirty tail moves soon, and when the last batch left a tenth of its
     * bytes to newer keys beyond it (and more than it absorbed), so it stays at the tail, where
     * the overwritten keys are.
     */
    @Test
    void aFullSpeedBatchSpansTheWatermarksReachesTheTargetWhenItAbsorbsAndStaysAtTheTailWhenNewerKeysOverwrite() {
        int near = 44 - SEGS / 16;                          // 40 segments: space short from 640 MiB dirty
        Inputs calm = new Inputs(near * SEG, SEGS, SEG, 50, 44, false, false, 0, 0, 0);
        long low = WritebackPolicy.lowWatermark(calm, TARGET);
        assertThat(low).isEqualTo(TARGET + (near * SEG - TARGET) / 2);
        assertThat(WritebackPolicy.fullSpeedBatch(calm, TARGET, LastBatch.NONE)).isEqualTo(near * SEG - low)
                .isGreaterThan(CACHE / 8);
        assertThat(WritebackPolicy.fullSpeedBatch(calm, TARGET, absorbed(0.099))).isEqualTo(near * SEG - low);
        assertThat(WritebackPolicy.fullSpeedBatch(calm, TARGET, absorbed(0.10))).as("the last batch absorbed a tenth")
                .isEqualTo(near * SEG - TARGET);
        // overwrites beyond the batch: the base batch, from the tail
        assertThat(WritebackPolicy.fullSpeedBatch(calm, TARGET, new LastBatch(0, 0.10))).isEqualTo(CACHE / 8);
        assertThat(WritebackPolicy.fullSpeedBatch(calm, TARGET, new LastBatch(0.3, 0.6))).isEqualTo(CACHE / 8);
        assertThat(WritebackPolicy.fullSpeedBatch(calm, TARGET, new LastBatch(0, 0.099)))
                .as("too little left to newer keys").isEqualTo(near * SEG - low);
        assertThat(WritebackPolicy.fullSpeedBatch(calm, TARGET, new LastBatch(0.4, 0.2)))
                .as("the batch absorbed more itself").isEqualTo(near * SEG - TARGET);
        Inputs waiting = new Inputs(near * SEG, SEGS, SEG, 50, 44, true, false, 0, 0, 0);
        assertThat(WritebackPolicy.fullSpeedBatch(waiting, TARGET, LastBatch.NONE)).isEqualTo(CACHE / 8);
        assertThat(WritebackPolicy.fullSpeedBatch(waiting, TARGET, absorbed(0.5))).isEqualTo(CACHE / 8);
        // a target at or above where space gets short: nothing between the watermarks, the base batch
        assertThat(WritebackPolicy.fullSpeedBatch(calm, CACHE / 100 * 90, LastBatch.NONE)).isEqualTo(CACHE / 8);
        assertThat(WritebackPolicy.fullSpeedBatch(calm, CACHE / 100 * 90, absorbed(0.5))).isEqualTo(CACHE / 8);
        assertThat(WritebackPolicy.baseBatch(16 * MIB)).as("at least 4 MiB").isEqualTo(4 * MIB);
        assertThat(WritebackPolicy.baseBatch(1L << 40)).as("at most 256 MiB").isEqualTo(256 * MIB);
    }

    private static LastBatch absorbed(double share) {
        return new LastBatch(share, 0);
    }

    @Test
    void spaceIsShortWhenAWriterWaitsOrOnlyWritebackCanMakeRoom() {
        int near = 44 - SEGS / 16;
        // a writer waits
        assertThat(WritebackPolicy.spaceShort(new Inputs(0, SEGS, SEG, 10, 44, true, false, 0, 0, 0))).isTrue();
        // near the gc threshold, and gc has nothing left to reclaim before the dirty tail
        assertThat(WritebackPolicy.spaceShort(new Inputs(0, SEGS, SEG, near, 44, false, true, 0, 0, 0))).isTrue();
        assertThat(WritebackPolicy.spaceShort(new Inputs(0, SEGS, SEG, near - 1, 44, false, true, 0, 0, 0))).isFalse();
        // near the threshold but gc can still reclaim written-back segments
        assertThat(WritebackPolicy.spaceShort(new Inputs(0, SEGS, SEG, 50, 44, false, false, 0, 0, 0))).isFalse();
        // the dirty bytes alone fill the segments up to near the threshold
        assertThat(WritebackPolicy.spaceShort(new Inputs(near * SEG, SEGS, SEG, 10, 44, false, false, 0, 0, 0))).isTrue();
        assertThat(WritebackPolicy.spaceShort(new Inputs(near * SEG - 1, SEGS, SEG, 10, 44, false, false, 0, 0, 0)))
                .isFalse();
        // gc_percent 0: always short (the eager writeback of tiny caches)
        assertThat(WritebackPolicy.spaceShort(new Inputs(0, SEGS, SEG, 1, 0, false, false, 0, 0, 0))).isTrue();
    }

    @Test
    void pressureLastsUntilTheLowWatermark() {
        WritebackPolicy p = new WritebackPolicy(WritebackSettings.DEFAULTS);
        long high = (44L - SEGS / 16) * SEG;
        long low = WritebackPolicy.lowWatermark(calm(0, 0), TARGET);
        assertThat(low).isEqualTo(TARGET + (high - TARGET) / 2);
        assertThat(p.decide(0, calm(high - 1, 1), LastBatch.NONE).reason()).isEqualTo(Reason.CONTROLLER);
        assertThat(p.decide(SEC, calm(high, 2), LastBatch.NONE).reason()).isEqualTo(Reason.PRESSURE);
        assertThat(p.decide(2 * SEC, calm(high - 1, 3), LastBatch.NONE).reason()).as("not yet low").isEqualTo(Reason.PRESSURE);
        assertThat(p.decide(3 * SEC, calm(low + 1, 4), LastBatch.NONE).reason()).isEqualTo(Reason.PRESSURE);
        assertThat(p.decide(4 * SEC, calm(low, 5), LastBatch.NONE).reason()).isEqualTo(Reason.CONTROLLER);
        assertThat(p.decide(5 * SEC, calm(low + 1, 6), LastBatch.NONE).reason()).as("below the high mark again").isEqualTo(
                Reason.CONTROLLER);
    }

    /**
     * A load that made a writer wait for space within the last second outruns writeback: pressure
     * holds past the low watermark until a second without a wait, whether the wait was seen as it
     * happened or only as a grown wait count.
     */
    @Test
    void pressureHoldsWhileWritersWaitedForSpaceWithinTheLastSecond() {
        long low = WritebackPolicy.lowWatermark(calm(0, 0), TARGET);
        long recent = WritebackPolicy.RECENT_WAIT_NANOS;
        WritebackPolicy p = new WritebackPolicy(WritebackSettings.DEFAULTS);
        assertThat(p.decide(0, waits(low, true, 7, 1), LastBatch.NONE).reason()).isEqualTo(Reason.PRESSURE);
        assertThat(p.decide(recent - 1, waits(low, false, 7, 2), LastBatch.NONE).reason())
                .as("low, but a writer waited less than a second ago").isEqualTo(Reason.PRESSURE);
        assertThat(p.decide(recent, waits(low, false, 7, 3), LastBatch.NONE).reason())
                .as("a second without a wait").isEqualTo(Reason.CONTROLLER);

        WritebackPolicy q = new WritebackPolicy(WritebackSettings.DEFAULTS);
        long high = (44L - SEGS / 16) * SEG;
        assertThat(q.decide(0, waits(high, false, 3, 1), LastBatch.NONE).reason())
                .as("waits counted before the policy's first look are not recent").isEqualTo(Reason.PRESSURE);
        assertThat(q.decide(SEC / 2, waits(low, false, 4, 2), LastBatch.NONE).reason())
                .as("a wait between two looks, seen as a grown count").isEqualTo(Reason.PRESSURE);
        assertThat(q.decide(SEC / 2 + recent, waits(low, false, 4, 3), LastBatch.NONE).reason())
                .isEqualTo(Reason.CONTROLLER);

        WritebackPolicy r = new WritebackPolicy(WritebackSettings.DEFAULTS);
        assertThat(r.decide(0, waits(high, false, 3, 1), LastBatch.NONE).reason()).isEqualTo(Reason.PRESSURE);
        assertThat(r.decide(1, waits(low, false, 3, 2), LastBatch.NONE).reason())
                .as("no writer waited since the first look").isEqualTo(Reason.CONTROLLER);
    }

    private static Inputs waits(long dirty, boolean waiting, long spaceWaits, long ops) {
        return new Inputs(dirty, SEGS, SEG, 20, 44, waiting, false, ops, 0, spaceWaits);
    }

    /**
     * When the last full-speed batch left bytes to newer keys, pressure ends on the dirty bytes no
     * batch has taken yet: the batch in flight (written, its sync pending) is as good as done.
     * Counting it, one more batch followed the one that already crossed the low watermark, and the
     * dirty bytes fell up to two batches below it — keys younger than a pass over the working set,
     * written back only to be overwritten (docs/benchmarks.md, "Session 12"). A load that
     * overwrites nothing beyond the batch keeps counting the batch in flight: ending sooner only
     * puts a paced stretch between its pressure episodes.
     */
    @Test
    void pressureEndsOnTheBytesNotYetTakenWhenTheLoadOverwritesBeyondTheBatch() {
        long low = WritebackPolicy.lowWatermark(calm(0, 0), TARGET);
        long high = (44L - SEGS / 16) * SEG;
        long inFlight = CACHE / 8;
        LastBatch beyond = new LastBatch(0.05, 0.5);
        assertThat(beyond.overwrittenBeyond()).isTrue();
        WritebackPolicy p = new WritebackPolicy(WritebackSettings.DEFAULTS);
        assertThat(p.decide(0, calm(high, 1), beyond).reason()).isEqualTo(Reason.PRESSURE);
        assertThat(p.decide(SEC, inFlight(low + inFlight + 1, inFlight, 2), beyond).reason())
                .as("one byte not yet taken above").isEqualTo(Reason.PRESSURE);
        assertThat(p.decide(2 * SEC, inFlight(low + inFlight, inFlight, 3), beyond).reason())
                .as("above the low watermark only by the batch in flight").isEqualTo(Reason.CONTROLLER);

        for (LastBatch other : new LastBatch[] {LastBatch.NONE, new LastBatch(0.5, 0.2), new LastBatch(0, 0.099)}) {
            assertThat(other.overwrittenBeyond()).isFalse();
            WritebackPolicy q = new WritebackPolicy(WritebackSettings.DEFAULTS);
            assertThat(q.decide(0, calm(high, 1), other).reason()).isEqualTo(Reason.PRESSURE);
            assertThat(q.decide(SEC, inFlight(low + inFlight, inFlight, 2), other).reason())
                    .as("%s: the batch in flight still counts", other).isEqualTo(Reason.PRESSURE);
            assertThat(q.decide(2 * SEC, inFlight(low, inFlight, 3), other).reason()).isEqualTo(Reason.CONTROLLER);
        }
    }

    private static Inputs inFlight(long dirty, long written, long ops) {
        return new Inputs(dirty, SEGS, SEG, 20, 44, false, false, ops, written, 0);
    }

    @Test
    void pressureGoesFullSpeedAndDrainWinsOverEverything() {
        WritebackPolicy p = new WritebackPolicy(WritebackSettings.DEFAULTS);
        Inputs waiting = new Inputs(TARGET / 2, SEGS, SEG, 60, 44, true, false, 1, 0, 0);
        Decision d = p.decide(0, waiting, LastBatch.NONE);
        assertThat(d.reason()).isEqualTo(Reason.PRESSURE);
        assertThat(d.fullSpeed()).isTrue();
        p.beginDrain();
        assertThat(p.decide(SEC, waiting, LastBatch.NONE).reason()).isEqualTo(Reason.DRAIN);
        p.endDrain();
        assertThat(p.decide(2 * SEC, waiting, LastBatch.NONE).reason()).isEqualTo(Reason.PRESSURE);
        p.settings(p.settings().withFullSpeed(true));
        Decision op = p.decide(3 * SEC, calm(0, 2), LastBatch.NONE);
        assertThat(op.reason()).as("the operator asked").isEqualTo(Reason.DRAIN);
        assertThat(op.fullSpeed()).isTrue();
        p.settings(p.settings().withFullSpeed(false));
        assertThat(p.decide(4 * SEC, calm(0, 3), LastBatch.NONE).reason()).isEqualTo(Reason.CONTROLLER);
        assertThat(p.last().reason()).isEqualTo(Reason.CONTROLLER);
    }

    @Test
    void settingsAreValidated() {
        WritebackSettings d = WritebackSettings.DEFAULTS;
        assertThatThrownBy(() -> d.withTargetPercent(91)).hasMessageContaining("0..90");
        assertThatThrownBy(() -> d.withTargetPercent(-1)).hasMessageContaining("0..90");
        assertThatThrownBy(() -> d.withMinRate(-1)).hasMessageContaining("minimum rate");
        assertThatThrownBy(() -> d.withMaxRate(-5)).hasMessageContaining("maximum rate");
        assertThatThrownBy(() -> d.withMinRate(10 * MIB).withMaxRate(MIB)).hasMessageContaining("below the minimum");
        assertThatThrownBy(() -> d.withIdleDelayMillis(-1)).hasMessageContaining("idle delay");
        assertThat(d.withMaxRate(0).maxRate()).as("0: no limit").isZero();
        assertThat(d.withTargetPercent(0).targetPercent()).isZero();
    }
}
