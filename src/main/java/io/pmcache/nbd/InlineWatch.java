package io.pmcache.nbd;

import java.util.Set;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Watches requests that run inline on a connection's reader (see {@link Connection}) and lets a new
 * reader take over from one that runs too long. The server's timer is armed only while some
 * request runs inline, so an idle server has no periodic wake-ups.
 *
 * <p>No lost wake-up: a connection publishes its inline run, then calls {@link #inlineStarted};
 * the check clears {@link #armed}, then looks at every connection again. With volatile accesses on
 * both sides, either the connection sees the timer disarmed and arms it, or the check sees the run.
 */
final class InlineWatch {
    private final ScheduledExecutorService timer;
    private final Set<Connection> connections;
    private final long periodNanos;
    private final AtomicBoolean armed = new AtomicBoolean();

    InlineWatch(ScheduledExecutorService timer, Set<Connection> connections, long periodNanos) {
        this.timer = timer;
        this.connections = connections;
        this.periodNanos = periodNanos;
    }

    /** A request has started running inline (its run is already visible to {@link #check}). */
    void inlineStarted() {
        if (!armed.get() && armed.compareAndSet(false, true)) {
            schedule();
        }
    }

    private void schedule() {
        try {
            timer.schedule(this::check, periodNanos, TimeUnit.NANOSECONDS);
        } catch (RejectedExecutionException shutDown) {
            armed.set(false);
        }
    }

    private void check() {
        long now = System.nanoTime();
        boolean busy = false;
        for (Connection c : connections) {
            busy |= c.takeOverSlowInline(now);
        }
        if (busy) {
            schedule();
            return;
        }
        armed.set(false);
        for (Connection c : connections) {
            if (c.runsInline()) {
                inlineStarted();
                return;
            }
        }
    }
}
