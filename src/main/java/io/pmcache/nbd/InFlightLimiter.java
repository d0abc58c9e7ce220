package io.pmcache.nbd;

import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Back-pressure for one connection: bounds the requests and payload bytes in flight (read from the
 * socket, not yet answered). The connection's reader calls {@link #acquire} before it reads a
 * request's payload, so when the bound is reached it stops reading the socket and the client's
 * sends block. A request larger than the byte bound is let through alone. {@link #cancel} (the
 * server is stopping) makes waiting and later acquires fail, so that no request starts after it;
 * {@link #awaitIdle} is for the server's stop only, always with a deadline: nothing else waits for
 * a connection's requests (the last one to finish ends the connection, see {@link Connection}).
 */
final class InFlightLimiter {
    private final int maxRequests;
    private final long maxBytes;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private int requests;
    private long bytes;
    private boolean cancelled;

    InFlightLimiter(int maxRequests, long maxBytes) {
        if (maxRequests < 1 || maxBytes < 1) {
            throw new IllegalArgumentException("limits must be positive: " + maxRequests + " requests, " + maxBytes + " bytes");
        }
        this.maxRequests = maxRequests;
        this.maxBytes = maxBytes;
    }

    /** Takes room for one request of {@code n} bytes if there is some now; never waits. */
    boolean tryAcquire(long n) {
        lock.lock();
        try {
            if (cancelled || !hasRoom(n)) {
                return false;
            }
            requests++;
            bytes += n;
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** Waits for room for one request of {@code n} bytes; false if cancelled meanwhile. */
    boolean acquire(long n) throws InterruptedException {
        lock.lock();
        try {
            while (!cancelled && !hasRoom(n)) {
                changed.await();
            }
            if (cancelled) {
                return false;
            }
            requests++;
            bytes += n;
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** Room for one more request of {@code n} bytes (a lone request always fits); under the lock. */
    private boolean hasRoom(long n) {
        return requests == 0 || (requests < maxRequests && bytes + n <= maxBytes);
    }

    void release(long n) {
        lock.lock();
        try {
            requests--;
            bytes -= n;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Makes waiting and later {@link #acquire} calls return false. */
    void cancel() {
        lock.lock();
        try {
            cancelled = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Waits until nothing is in flight; false if {@code timeoutNanos} passed first. */
    boolean awaitIdle(long timeoutNanos) throws InterruptedException {
        lock.lock();
        try {
            long left = timeoutNanos;
            while (requests > 0) {
                if (left <= 0) {
                    return false;
                }
                left = changed.awaitNanos(left);
            }
            return true;
        } finally {
            lock.unlock();
        }
    }

    int inFlight() {
        lock.lock();
        try {
            return requests;
        } finally {
            lock.unlock();
        }
    }
}
