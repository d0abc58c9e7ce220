package io.pmcache.nbd;

import java.util.Set;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Watches requests that run inline on a connection's reader (see {@link Connection}) and lets a new
 * reader take over from one that runs too long. The server's timer is armed only while requests
 * run inline: it stays armed through a tick that saw a request start since the last one, and
 * disarms after a tick that saw none and no run in progress, so an idle server has no periodic
 * wake-ups. (Disarming whenever a tick finds no run in progress — at queue depth 1 the reader is
 * mostly waiting for the next request — made the next request re-arm it: a timer task scheduled
 * and the timer thread woken from the request path, about every millisecond.)
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
    /** Some request started inline since the last tick (set by requests, cleared by the tick). */
    private volatile boolean started;

    InlineWatch(ScheduledExecutorService timer, Set<Connection> connections, long periodNanos) {
        this.timer = timer;
        this.connections = connections;
        this.periodNanos = periodNanos;
    }

    /** A request has started running inline (its run is already visible to {@link #check}). */
    void inlineStarted() {
        if (!started) { // written about once per tick, not once per request
            started = true;
        }
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
        if (busy || started) {
            started = false;
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
