package io.pmcache.cache;

import java.io.IOException;
import java.util.concurrent.atomic.LongAdder;

/**
 * Admits I/O until the cache closes, then waits for the I/O in flight to finish.
 *
 * <p>Cheaper than a read-write lock on the hot path: entering is one striped-counter increment and
 * one volatile read. Correct by the Dekker pattern: an I/O increments, then reads {@code closed};
 * close writes {@code closed}, then reads the counter; so either the I/O sees the close and backs
 * out, or close sees the I/O and waits for it.
 */
final class IoGate {
    private final LongAdder inFlight = new LongAdder();
    private volatile boolean closed;

    /** Admits one I/O, or throws when closed. Pair with {@link #exit()}. */
    void enter(String what) throws IOException {
        inFlight.increment();
        if (closed) {
            inFlight.decrement();
            throw new IOException(what + " is closed");
        }
    }

    void exit() {
        inFlight.decrement();
    }

    boolean isClosed() {
        return closed;
    }

    /** Refuses new I/O and waits for the I/O in flight; returns false if it was already closed. */
    synchronized boolean closeAndDrain() {
        if (closed) {
            return false;
        }
        closed = true;
        while (inFlight.sum() > 0) {
            try {
                Thread.sleep(1);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        return true;
    }
}
