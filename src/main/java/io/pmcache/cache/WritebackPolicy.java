package io.pmcache.cache;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * Decides how fast writeback runs: the one authority on writeback pacing. Pure: the caller passes
 * the time and the engine's figures ({@link Inputs}), so tests drive it with a fake clock.
 *
 * <h2>The rule, first match wins</h2>
 * <ol>
 *   <li><b>drain</b>: a flush-all, detach or stop-with-drain is running, or the operator asked for
 *       full speed ({@link WritebackSettings#fullSpeed}) → full speed;</li>
 *   <li><b>pressure</b>: space is short → full speed. Space is short when a writer waits for a
 *       segment, or when used segments are within {@code margin} of the gc threshold and gc has
 *       nothing left to reclaim before the dirty tail (only writeback can make room), or when the
 *       dirty bytes alone would fill the segments up to that point. {@code margin} is a sixteenth
 *       of the segments (at least 1), so writeback is at full speed before writers must wait.
 *       Like dm-writecache's high and low watermarks, pressure then lasts until space is no
 *       longer short and the dirty bytes are down to halfway between the target and that point,
 *       so writeback does not flap between full speed and paced at the edge — and, past that, until
 *       no writer has waited for space for {@link #RECENT_WAIT_NANOS}: a load that made writers
 *       wait that recently outruns writeback, and a paced stretch would only leave the backing
 *       device idle until the next writer waits (in a writeback-bound run such stretches left the
 *       disk idle 2.6 s of 35, docs/benchmarks.md "Session 16"). When the last
 *       full-speed batch left bytes to newer keys ({@link LastBatch#overwrittenBeyond}), the dirty
 *       bytes that end it are those no batch has taken yet ({@link Inputs#unwrittenBytes}): the
 *       batch in flight counts as done, so pressure stops once a batch crosses the low watermark
 *       instead of taking another behind it, whose keys, younger, are the ones newer keys have not
 *       overwritten yet. Otherwise the batch in flight counts too: a load that overwrites nothing
 *       beyond the batch loses nothing to that extra batch, and would only leave pressure sooner
 *       for a paced stretch that the next writer waiting ends;</li>
 *   <li><b>idle</b>: no foreground I/O (reads, writes, flushes, trims) for the idle delay → full
 *       speed, so an idle cache drains;</li>
 *   <li><b>controller</b>: otherwise the rate of a PI controller on the dirty bytes above the
 *       target (bcache's {@code __update_writeback_rate}), clamped to [min rate, max rate].</li>
 * </ol>
 *
 * <h2>The controller</h2>
 * With {@code e = dirty − target} (bytes): {@code rate = e / P + I / Iinv}, where
 * {@code I = ∫ e dt} (byte·seconds), {@code P} = {@value #P_INVERSE_SECONDS} s (the excess would be
 * written back in that long at the proportional rate alone) and {@code Iinv} =
 * {@value #I_INVERSE_SECONDS2} s² (the integral removes the steady-state error a constant inflow
 * leaves: with it the loop is critically damped, settling in about a minute). Anti-windup: the
 * integral grows only while the rate is below the maximum, shrinks only while positive, is capped
 * so that its term never exceeds the proportional term of a full cache, and is never negative (a cache below its target runs at the minimum rate, not slower for having been
 * below for long).
 */
final class WritebackPolicy {
    static final double P_INVERSE_SECONDS = 20;
    static final double I_INVERSE_SECONDS2 = 1600;
    /** Longest step of the controller's integration, so one late update cannot jolt the integral. */
    static final double MAX_DT_SECONDS = 5;
    /** The rate that means "as fast as the backing device goes". */
    static final long FULL_SPEED = Long.MAX_VALUE;

    /** Why writeback runs at the rate it does. */
    enum Reason {
        CONTROLLER, IDLE, PRESSURE, DRAIN;

        String label() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    /**
     * The engine's figures at one instant.
     *
     * @param dirtyBytes      dirty bytes not yet written back
     * @param segmentCount    segments of the cache
     * @param segmentSize     bytes per segment
     * @param usedSegments    segments in use
     * @param gcThreshold     used segments at or above which gc runs
     * @param writersWaiting  some writer waits for a free segment
     * @param gcCaughtUp      gc's key tail has reached the dirty tail: gc can free nothing more
     *                        until writeback moves on
     * @param foregroundOps   a count that grows with every foreground request (only its changes matter)
     * @param writtenBytes    of {@code dirtyBytes}, those already written to the backing device and
     *                        awaiting its sync (the batch in flight)
     * @param spaceWaits      a count that grows each time a writer waits for a free segment (only its
     *                        changes matter)
     */
    record Inputs(long dirtyBytes, int segmentCount, long segmentSize, int usedSegments, int gcThreshold,
                  boolean writersWaiting, boolean gcCaughtUp, long foregroundOps, long writtenBytes,
                  long spaceWaits) {
        long cacheBytes() {
            return segmentCount * segmentSize;
        }

        /** Dirty bytes no batch has taken yet. */
        long unwrittenBytes() {
            return dirtyBytes - writtenBytes;
        }
    }

    /**
     * What writeback should do now.
     *
     * @param rate        bytes per second, or {@link #FULL_SPEED}
     * @param targetBytes the dirty target in bytes
     */
    record Decision(Reason reason, long rate, long targetBytes) {
        boolean fullSpeed() {
            return rate == FULL_SPEED;
        }
    }

    private volatile WritebackSettings settings;
    private final AtomicInteger drains = new AtomicInteger();
    /** Guarded by this: the controller's state. */
    private long lastUpdate;
    private boolean started;
    private double integral;
    private long controllerRate;
    private long lastOps = Long.MIN_VALUE;
    private long lastActive;
    /** Pressure began and has not yet ended at the low watermark. */
    private boolean underPressure;
    private long lastSpaceWaits;
    /** When a writer was last seen waiting for space, or the wait count last grew; MIN_VALUE: never. */
    private long lastSpaceWait = Long.MIN_VALUE;
    private volatile Decision last;

    WritebackPolicy(WritebackSettings settings) {
        this.settings = settings;
        this.last = new Decision(Reason.CONTROLLER, settings.minRate(), 0);
    }

    WritebackSettings settings() {
        return settings;
    }

    void settings(WritebackSettings s) {
        settings = s;
    }

    /** A flush-all, detach or stop-with-drain begins: full speed until {@link #endDrain}. */
    void beginDrain() {
        drains.incrementAndGet();
    }

    void endDrain() {
        drains.decrementAndGet();
    }

    /** The latest decision (for status). */
    Decision last() {
        return last;
    }

    /**
     * Decides at {@code now} (nanoseconds, any origin, monotonic) and updates the controller;
     * {@code lastBatch} is what the last full-speed batch did.
     */
    synchronized Decision decide(long now, Inputs in, LastBatch lastBatch) {
        WritebackSettings s = settings;
        long target = in.cacheBytes() / 100 * s.targetPercent();
        long rate = control(now, in.dirtyBytes() - target, in.cacheBytes(), s);
        if (!started || in.foregroundOps() != lastOps) {
            lastOps = in.foregroundOps();
            lastActive = now;
        }
        if (in.writersWaiting() || (started && in.spaceWaits() != lastSpaceWaits)) {
            lastSpaceWait = now;
        }
        lastSpaceWaits = in.spaceWaits();
        started = true;
        Reason reason;
        if (drains.get() > 0 || s.fullSpeed()) {
            reason = Reason.DRAIN;
        } else if (pressure(now, in, target, lastBatch)) {
            reason = Reason.PRESSURE;
        } else if (now - lastActive >= s.idleDelayMillis() * 1_000_000) {
            reason = Reason.IDLE;
        } else {
            reason = Reason.CONTROLLER;
        }
        Decision d = new Decision(reason, reason == Reason.CONTROLLER ? rate : FULL_SPEED, target);
        last = d;
        return d;
    }

    /**
     * Rule 2 with its hysteresis: space is short, or was and the dirty bytes are not yet low or a
     * writer waited for space recently.
     */
    private boolean pressure(long now, Inputs in, long target, LastBatch last) {
        long dirty = last.overwrittenBeyond() ? in.unwrittenBytes() : in.dirtyBytes();
        if (spaceShort(in)) {
            underPressure = true;
        } else if (underPressure && dirty <= lowWatermark(in, target)
                && (lastSpaceWait == Long.MIN_VALUE || now - lastSpaceWait >= RECENT_WAIT_NANOS)) {
            underPressure = false;
        }
        return underPressure;
    }

    /** Pressure lasts at least this long after a writer last waited for space (rule 2). */
    static final long RECENT_WAIT_NANOS = 1_000_000_000L;

    /**
     * What a batch did with its keys' bytes (shares 0..1).
     *
     * @param absorbed    overwritten by newer keys of the same batch (flushed keys: the newest of
     *                    the batch wins), so not written; a larger batch absorbs more of these
     * @param leftToNewer overwritten by newer keys anywhere in the same flush interval
     *                    ({@link OwnParts}), so not written; the oldest keys, at the dirty tail, are
     *                    the likeliest to have such an overwriter
     */
    record LastBatch(double absorbed, double leftToNewer) {
        static final LastBatch NONE = new LastBatch(0, 0);

        /**
         * The load overwrites beyond the batch: it left at least {@link #ABSORBING} of its bytes to
         * newer keys, and more than it absorbed itself.
         */
        boolean overwrittenBeyond() {
            return leftToNewer >= ABSORBING && leftToNewer > absorbed;
        }
    }

    /**
     * The batch of a full-speed step, in bytes of keys, first match wins:
     * <ol>
     *   <li>a writer waits for space: the base batch ({@link #baseBatch}: an eighth of the cache,
     *       4..256 MiB), so the dirty tail moves soon;</li>
     *   <li>the last full-speed batch left at least {@link #ABSORBING} of its bytes to newer keys,
     *       and more than it absorbed itself: the base batch too. Such a load's overwrites reach
     *       across the whole dirty span, so keys are skipped however small the batch; the further
     *       a batch reaches from the tail toward the head, the more of its keys have not been
     *       overwritten <em>yet</em> and are written only to be overwritten soon after;</li>
     *   <li>the last full-speed batch absorbed at least {@link #ABSORBING}: from where space counts
     *       as short down to the target, since a larger batch absorbs more of such a load (one
     *       whose overwrites the flushes between them keep inside the batch);</li>
     *   <li>otherwise from where space counts as short down to the low watermark: one batch takes
     *       a pressure episode from where it starts to where it ends. A load that overwrites
     *       little gains nothing from a larger batch and would wait longer for the dirty tail to
     *       move.</li>
     * </ol>
     * Never below the base batch. ({@link Writeback} caps every batch at what it may hold in memory.)
     */
    static long fullSpeedBatch(Inputs in, long target, LastBatch last) {
        long base = baseBatch(in.cacheBytes());
        if (in.writersWaiting() || last.overwrittenBeyond()) {
            return base;
        }
        long high = (long) nearSegments(in) * in.segmentSize();
        long floor = last.absorbed() >= ABSORBING ? target : lowWatermark(in, target);
        return Math.max(base, high - floor);
    }

    /**
     * The share of a full-speed batch's key bytes it must absorb for the next one to reach down to
     * the target: a tenth. Measured (docs/benchmarks.md, "Session 9"): fio's random overwrites of a
     * 256 MiB working set absorb 12..17 % in the watermarks' batch of a 1 GiB cache and 35 % in
     * half the cache; random writes over four times the cache absorb nothing, so a larger batch
     * there would only move the dirty tail later.
     */
    static final double ABSORBING = 0.10;

    /** An eighth of the cache, 4..256 MiB: the batch when space must be made soon. */
    static long baseBatch(long cacheBytes) {
        return Math.clamp(cacheBytes / 8, 4L << 20, 256L << 20);
    }

    /** Where pressure ends: halfway between the target and the dirty bytes that make space short. */
    static long lowWatermark(Inputs in, long target) {
        long high = (long) nearSegments(in) * in.segmentSize();
        return Math.max(0, target + (high - target) / 2);
    }

    /** Used segments at which space counts as short: {@code margin} below the gc threshold. */
    private static int nearSegments(Inputs in) {
        return in.gcThreshold() - Math.max(1, in.segmentCount() / 16);
    }

    /** Space is short (rule 2 of the class comment). */
    static boolean spaceShort(Inputs in) {
        if (in.writersWaiting()) {
            return true;
        }
        int near = nearSegments(in);
        if (in.usedSegments() >= near && in.gcCaughtUp()) {
            return true;
        }
        return in.dirtyBytes() >= (long) near * in.segmentSize();
    }

    /** One controller update with error {@code error} bytes; returns the clamped rate. */
    private long control(long now, long error, long cacheBytes, WritebackSettings s) {
        double dt = started ? Math.clamp((now - lastUpdate) / 1e9, 0, MAX_DT_SECONDS) : 0;
        lastUpdate = now;
        long max = s.maxRate() == 0 ? FULL_SPEED : s.maxRate();
        boolean atMax = controllerRate >= max;
        if ((error > 0 && !atMax) || (error < 0 && integral > 0)) {
            // Capped: the integral term never asks for more than the proportional term of a full cache.
            integral = Math.clamp(integral + error * dt, 0, cacheBytes * I_INVERSE_SECONDS2 / P_INVERSE_SECONDS);
        }
        double r = error / P_INVERSE_SECONDS + integral / I_INVERSE_SECONDS2;
        controllerRate = r >= max ? max : Math.max(s.minRate(), (long) r);
        return controllerRate;
    }
}
