package io.pmcache.cache;

/**
 * The knobs of writeback pacing ({@link WritebackPolicy}). Run-time settings: not stored on the
 * medium (give them to {@code serve} at every start; {@code pmcache set} changes them until the
 * next start).
 *
 * @param targetPercent   dirty data the controller aims at, in percent of the cache, 0..90
 *                        (bcache's {@code writeback_percent}); above it writeback speeds up with
 *                        the excess, below it runs at {@code minRate}
 * @param minRate         bytes per second the controller never goes below (also below the
 *                        target), ≥ 0
 * @param maxRate         bytes per second the controller never goes above; 0 means no limit. Full
 *                        speed (pressure, idle, drain) ignores it
 * @param idleDelayMillis after this long without foreground I/O, writeback drains at full speed;
 *                        0..86,400,000
 * @param fullSpeed       the operator asks for full-speed writeback (until turned off)
 */
public record WritebackSettings(int targetPercent, long minRate, long maxRate, long idleDelayMillis,
                                boolean fullSpeed) {
    public static final int TARGET_PERCENT_MAX = 90;
    /** bcache's {@code writeback_percent} default. */
    public static final int TARGET_PERCENT_DEFAULT = 10;
    /** bcache's {@code writeback_rate_minimum} (8 sectors/s). */
    public static final long MIN_RATE_DEFAULT = 4096;
    public static final long IDLE_DELAY_MILLIS_DEFAULT = 2000;
    public static final long IDLE_DELAY_MILLIS_MAX = 86_400_000;

    public static final WritebackSettings DEFAULTS = new WritebackSettings(TARGET_PERCENT_DEFAULT, MIN_RATE_DEFAULT, 0,
            IDLE_DELAY_MILLIS_DEFAULT, false);

    public WritebackSettings {
        if (targetPercent < 0 || targetPercent > TARGET_PERCENT_MAX) {
            throw new IllegalArgumentException("writeback target must be 0.." + TARGET_PERCENT_MAX
                    + " percent of the cache, got " + targetPercent);
        }
        if (minRate < 0) {
            throw new IllegalArgumentException("writeback minimum rate must be ≥ 0 bytes/s, got " + minRate);
        }
        if (maxRate < 0) {
            throw new IllegalArgumentException("writeback maximum rate must be ≥ 0 bytes/s (0: no limit), got "
                    + maxRate);
        }
        if (maxRate != 0 && maxRate < minRate) {
            throw new IllegalArgumentException("writeback maximum rate " + maxRate
                    + " bytes/s is below the minimum rate " + minRate + " bytes/s");
        }
        if (idleDelayMillis < 0 || idleDelayMillis > IDLE_DELAY_MILLIS_MAX) {
            throw new IllegalArgumentException("writeback idle delay must be 0.." + IDLE_DELAY_MILLIS_MAX
                    + " ms, got " + idleDelayMillis);
        }
    }

    public WritebackSettings withTargetPercent(int p) {
        return new WritebackSettings(p, minRate, maxRate, idleDelayMillis, fullSpeed);
    }

    public WritebackSettings withMinRate(long r) {
        return new WritebackSettings(targetPercent, r, maxRate, idleDelayMillis, fullSpeed);
    }

    public WritebackSettings withMaxRate(long r) {
        return new WritebackSettings(targetPercent, minRate, r, idleDelayMillis, fullSpeed);
    }

    public WritebackSettings withIdleDelayMillis(long ms) {
        return new WritebackSettings(targetPercent, minRate, maxRate, ms, fullSpeed);
    }

    public WritebackSettings withFullSpeed(boolean on) {
        return new WritebackSettings(targetPercent, minRate, maxRate, idleDelayMillis, on);
    }
}
