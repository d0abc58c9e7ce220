package io.pmcache.cache;

import java.util.BitSet;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Which segments are free. Data allocations wait while no more than {@code reserve} segments are
 * free: the reserve belongs to the key log, so a kset can always be reserved and sealed, so
 * writeback and gc can always make progress (no deadlock when the cache is full).
 */
final class SegmentAllocator {
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition freed = lock.newCondition();
    private final BitSet used;
    private final int count;
    private final int reserve;
    private final CacheStats stats;
    /** Called when space runs short; set by the workers when they start ({@link #onPressure}). */
    private volatile Runnable onPressure = () -> { };
    private int usedCount;
    private int nextHint;
    private volatile boolean closed;
    /** Set when the cache failed: waits end with it (the workers that would make space have stopped). */
    private volatile java.io.IOException failed;
    private int waiters;
    /** Start times of the waits in progress (a waiter may appear once per loop turn). */
    private final java.util.List<Long> waitStarts = new java.util.ArrayList<>();

    SegmentAllocator(int count, int reserve, CacheStats stats) {
        this.count = count;
        this.reserve = reserve;
        this.used = new BitSet(count);
        this.stats = stats;
    }

    /** Sets what to call when space runs short (the workers seal and make space). */
    void onPressure(Runnable r) {
        onPressure = r;
    }

    /** Marks {@code seg} used (replay). */
    void markUsed(int seg) {
        lock.lock();
        try {
            if (!used.get(seg)) {
                used.set(seg);
                usedCount++;
            }
        } finally {
            lock.unlock();
        }
    }

    boolean isUsed(int seg) {
        lock.lock();
        try {
            return used.get(seg);
        } finally {
            lock.unlock();
        }
    }

    int usedCount() {
        lock.lock();
        try {
            return usedCount;
        } finally {
            lock.unlock();
        }
    }

    int count() {
        return count;
    }

    /** True while some writer is waiting for space. */
    boolean hasWaiters() {
        lock.lock();
        try {
            return waiters > 0;
        } finally {
            lock.unlock();
        }
    }

    /** A segment for data; waits for gc and writeback while the cache is full. */
    int allocateData() {
        lock.lock();
        try {
            long waitStart = 0;
            while (count - usedCount <= reserve) {
                if (waitStart == 0) {
                    waitStart = System.nanoTime();
                    stats.spaceWaits.increment();
                }
                awaitFreed(waitStart, "cache space");
            }
            if (waitStart != 0) {
                stats.spaceWaitNanos.add(System.nanoTime() - waitStart);
            }
            return take();
        } finally {
            lock.unlock();
        }
    }

    /**
     * A segment for a read fill: only while fewer than {@code usedBelow} segments are used and one
     * is free beyond the reserve; -1 otherwise (the fill is skipped, it never waits).
     */
    int tryAllocateData(int usedBelow) {
        lock.lock();
        try {
            if (count - usedCount <= reserve) {
                onPressure.run();
                return -1;
            }
            if (usedCount >= usedBelow) {
                return -1; // gc runs at this level anyway: no pressure signal (it would seal ksets early)
            }
            return take();
        } finally {
            lock.unlock();
        }
    }

    /** A segment for the key log; may use the reserve; waits only if none at all is free. */
    int allocateLog() {
        lock.lock();
        try {
            long waitStart = 0;
            while (usedCount == count) {
                if (waitStart == 0) {
                    waitStart = System.nanoTime();
                    stats.spaceWaits.increment();
                }
                awaitFreed(waitStart, "a key-log segment");
            }
            if (waitStart != 0) {
                stats.spaceWaitNanos.add(System.nanoTime() - waitStart);
            }
            return take();
        } finally {
            lock.unlock();
        }
    }

    /**
     * One wait for a freed segment, under the lock: counted as a waiter (gc runs while there are
     * any), with the wait's start visible to {@link #waitingNanos}. Ends in an {@link EngineAbort}
     * when the allocator is closed (the cache stops: {@code DeviceClosedException}) or the thread is
     * interrupted.
     */
    private void awaitFreed(long waitStart, String what) {
        if (closed) {
            throw EngineAbort.closed("cache is stopping; gave up waiting for " + what);
        }
        if (failed != null) {
            throw new EngineAbort(failed);
        }
        waiters++;
        waitStarts.add(waitStart);
        onPressure.run();
        try {
            freed.await(50, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw EngineAbort.interrupted("interrupted while waiting for " + what);
        } finally {
            waiters--;
            waitStarts.remove(Long.valueOf(waitStart));
        }
        if (closed) {
            throw EngineAbort.closed("cache is stopping; gave up waiting for " + what);
        }
        if (failed != null) {
            throw new EngineAbort(failed);
        }
    }

    /** Time spent so far by the waits still in progress (finished waits are in the stats). */
    long waitingNanos(long now) {
        lock.lock();
        try {
            long sum = 0;
            for (long start : waitStarts) {
                sum += now - start;
            }
            return sum;
        } finally {
            lock.unlock();
        }
    }

    private int take() {
        int s = used.nextClearBit(nextHint);
        if (s >= count) {
            s = used.nextClearBit(0);
        }
        used.set(s);
        usedCount++;
        nextHint = s + 1 >= count ? 0 : s + 1;
        return s;
    }

    void free(int seg) {
        lock.lock();
        try {
            if (!used.get(seg)) {
                throw new IllegalStateException("segment " + seg + " freed twice");
            }
            used.clear(seg);
            usedCount--;
            freed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** The cache failed: every waiting and future waiting allocation fails with {@code why}. */
    void fail(java.io.IOException why) {
        failed = why;
        lock.lock();
        try {
            freed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Fails every waiting and future waiting allocation (stop). */
    void close() {
        closed = true;
        lock.lock();
        try {
            freed.signalAll();
        } finally {
            lock.unlock();
        }
    }

}
