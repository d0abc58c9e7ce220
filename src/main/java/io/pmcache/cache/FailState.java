package io.pmcache.cache;

import io.pmcache.device.DeviceFailedException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Whether the cache has failed: the one place that decides it.
 *
 * <p>A persist of the medium that fails (msync EIO, a DAX write-back fault) leaves it unknown which
 * of the stores it covered are durable, and retrying cannot tell either: after a failed msync the
 * kernel may have marked the pages clean (the PostgreSQL fsync lesson). So the first failure puts
 * the cache into a failed state for the rest of the process: every later write, trim, zero and
 * flush fails with {@link DeviceFailedException} (EIO to NBD clients), no flush can report success
 * for data that may not be durable, and the background workers stop changing the medium. Reads
 * still work (the data is in the mapped medium). The state is in {@code status}, the metrics and
 * one ERROR log line; an operator restarts the cache (replay then trusts only what is on the
 * medium) or replaces the medium.
 */
final class FailState {
    private static final Logger log = LoggerFactory.getLogger(FailState.class);
    private volatile String reason;
    private volatile Throwable cause;
    /** Called once, when the cache fails: waits that only the workers could end must end now. */
    private volatile Runnable onFail = () -> { };

    void onFail(Runnable r) {
        this.onFail = r;
    }

    /** Enters the failed state (the first call wins and is logged). */
    void fail(String what, Throwable why) {
        synchronized (this) {
            if (reason != null) {
                return;
            }
            cause = why;
            reason = what + ": " + why.getMessage();
        }
        log.error("cache FAILED: {}; from now on every write and flush fails with EIO (reads still work); "
                + "restart pmcache to recover what the medium holds", reason, why);
        onFail.run();
    }

    boolean failed() {
        return reason != null;
    }

    /** Why the cache failed, or null. */
    String reason() {
        return reason;
    }

    /** Throws when the cache has failed. */
    void check() throws DeviceFailedException {
        if (reason != null) {
            throw exception();
        }
    }

    DeviceFailedException exception() {
        return new DeviceFailedException("cache failed: " + reason, cause);
    }
}
