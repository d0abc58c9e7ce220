package io.pmcache.nbd;

import java.util.ArrayDeque;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BooleanSupplier;

/**
 * The server-wide bound on direct memory lent to request payloads (READ data, WRITE payloads), in
 * whole pool buffers ({@link BufferPool#capacityFor}). Each connection is bounded too
 * ({@link InFlightLimiter}), but 64 connections × 64 MiB is more than a JVM has: this is what keeps
 * clients that send large requests and never read the replies from exhausting direct memory.
 *
 * <p>A connection's reader takes budget before it takes a buffer; when there is none it waits (its
 * socket is not read meanwhile, so its client is slowed down, not failed). Waiters are served first
 * come, first served, so a large request is not starved by small ones. A wait ends with the budget,
 * or without it when the server stops ({@link #close}: the request is answered ESHUTDOWN) or when the
 * waiter's own reason to give up holds (its connection was closed), re-checked on {@link #wake}.
 * The capacity is at least {@link NbdConstants#MAX_PAYLOAD_SIZE}, so any one request fits.
 */
final class PayloadBudget {
    private final long capacity;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final ArrayDeque<Object> waiters = new ArrayDeque<>();
    private long used;
    private boolean closed;

    PayloadBudget(long capacity) {
        if (capacity < NbdConstants.MAX_PAYLOAD_SIZE) {
            throw new IllegalArgumentException("a payload budget of " + capacity + " bytes cannot hold one "
                    + NbdConstants.MAX_PAYLOAD_SIZE + "-byte request");
        }
        this.capacity = capacity;
    }

    /** Takes {@code n} bytes if they are free now and nobody waits; never waits. */
    boolean tryAcquire(long n) {
        lock.lock();
        try {
            if (closed || !waiters.isEmpty() || used + n > capacity) {
                return false;
            }
            used += n;
            return true;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Waits for {@code n} bytes, in arrival order; false if the budget was closed or {@code giveUp}
     * became true (checked on every wake-up) first.
     */
    boolean acquire(long n, BooleanSupplier giveUp) throws InterruptedException {
        Object me = new Object();
        lock.lock();
        try {
            waiters.addLast(me);
            try {
                while (true) {
                    if (closed || giveUp.getAsBoolean()) {
                        return false;
                    }
                    if (waiters.peekFirst() == me && used + n <= capacity) {
                        used += n;
                        return true;
                    }
                    changed.await();
                }
            } finally {
                waiters.remove(me);
                changed.signalAll(); // the next in line may fit now
            }
        } finally {
            lock.unlock();
        }
    }

    void release(long n) {
        lock.lock();
        try {
            used -= n;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Makes every wait, and every later acquire, fail (the server is stopping). */
    void close() {
        lock.lock();
        try {
            closed = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Makes waiters re-check their reason to give up. */
    void wake() {
        lock.lock();
        try {
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    long used() {
        lock.lock();
        try {
            return used;
        } finally {
            lock.unlock();
        }
    }

    long capacity() {
        return capacity;
    }
}
