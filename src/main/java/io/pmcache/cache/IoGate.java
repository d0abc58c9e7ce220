package io.pmcache.cache;

import io.pmcache.device.DeviceClosedException;
import java.io.IOException;
import java.util.concurrent.atomic.LongAdder;

/**
 * Admits I/O until the cache closes; then close waits, for a bounded time, for the I/O in flight.
 *
 * <p>Cheaper than a read-write lock on the hot path: entering is one striped-counter increment and
 * one volatile read. Correct by the Dekker pattern: an I/O increments, then reads {@code closed};
 * close writes {@code closed}, then reads the counter; so either the I/O sees the close and backs
 * out, or close sees the I/O and waits for it.
 */
final class IoGate {
    private final LongAdder inFlight = new LongAdder();
    private volatile boolean closed;

    /**
     * Admits one I/O, or throws {@link DeviceClosedException} when closed, naming {@code what}
     * (asked only then: the hot path builds no message). Pair with {@link #exit()}.
     */
    void enter(java.util.function.Supplier<String> what) throws IOException {
        inFlight.increment();
        if (closed) {
            inFlight.decrement();
            throw new DeviceClosedException(what.get() + " is stopping or closed");
        }
    }

    void exit() {
        inFlight.decrement();
    }

    boolean isClosed() {
        return closed;
    }

    /** Refuses new I/O from now on; returns false if it was already closed. */
    synchronized boolean close() {
        if (closed) {
            return false;
        }
        closed = true;
        return true;
    }

    /**
     * Waits up to {@code millis} for the I/O in flight to finish (call after {@link #close}); returns
     * how many are still in flight (0 when all finished).
     */
    long awaitIdle(long millis) {
        long deadline = System.nanoTime() + millis * 1_000_000;
        long n;
        while ((n = inFlight.sum()) > 0 && System.nanoTime() < deadline) {
            try {
                Thread.sleep(1);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return inFlight.sum();
            }
        }
        return n;
    }
}
