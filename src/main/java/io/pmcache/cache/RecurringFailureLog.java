package io.pmcache.cache;

import java.util.function.LongSupplier;
import org.slf4j.Logger;

/**
 * Logs a failure that a worker retries, without a line per retry: a flaky backing device can fail
 * ten times a second for hours. Every failure still counts in the status; the log gets
 *
 * <ul>
 *   <li>a WARN for the first failure, and then at most one WARN per {@link #INTERVAL_MILLIS},
 *       saying how many failures it stands for (the others go to DEBUG);
 *   <li>an INFO when the work succeeds after a failure that was logged at WARN, so every WARN
 *       line is answered by at most one recovery line.
 * </ul>
 *
 * <p>Used by one worker thread at a time (the caller's lock); not thread-safe by itself.
 */
final class RecurringFailureLog {
    /** At most one WARN line per this many milliseconds. */
    static final long INTERVAL_MILLIS = 30_000;

    private final Logger log;
    private final LongSupplier nanoClock;
    private long lastWarnNanos;
    private boolean warned;          // a WARN was logged and no recovery line yet
    private long notLogged;          // failures since the last WARN line
    private long failuresInEpisode;  // failures since the last success

    RecurringFailureLog(Logger log) {
        this(log, System::nanoTime);
    }

    RecurringFailureLog(Logger log, LongSupplier nanoClock) {
        this.log = log;
        this.nanoClock = nanoClock;
        this.lastWarnNanos = nanoClock.getAsLong() - INTERVAL_MILLIS * 1_000_000;
    }

    /** A failed attempt: {@code what} says what failed ("writeback of 32 keys from …"), {@code cause} why. */
    void failed(String what, Throwable cause) {
        failuresInEpisode++;
        long now = nanoClock.getAsLong();
        if (now - lastWarnNanos >= INTERVAL_MILLIS * 1_000_000) {
            if (notLogged == 0) {
                log.warn("{} failed, will retry: {}", what, cause.toString());
            } else {
                log.warn("{} failed, will retry: {} ({} more failures not logged in the last {} s)", what,
                        cause.toString(), notLogged, (now - lastWarnNanos) / 1_000_000_000);
            }
            lastWarnNanos = now;
            notLogged = 0;
            warned = true;
        } else {
            notLogged++;
            log.debug("{} failed, will retry: {}", what, cause.toString());
        }
    }

    /** A successful attempt: logs the recovery if a WARN line is still unanswered. */
    void succeeded(String what) {
        if (failuresInEpisode == 0) {
            return;
        }
        if (warned) {
            log.info("{} works again after {} failures", what, failuresInEpisode);
            warned = false;
        }
        failuresInEpisode = 0;
    }
}
