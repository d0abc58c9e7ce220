package io.pmcache.os;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

/**
 * Waits that an interrupt does not cut short: for work already in flight (a backing-device flush, a
 * reply being written) that must not be abandoned half-way. An interrupt received meanwhile is
 * restored on the thread when the wait ends.
 */
public final class Uninterruptibly {
    private Uninterruptibly() {
    }

    /** {@link Future#get()}, waiting through interrupts. */
    public static <T> T get(Future<T> f) throws ExecutionException {
        boolean interrupted = false;
        try {
            while (true) {
                try {
                    return f.get();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** {@link CountDownLatch#await()}, waiting through interrupts. */
    public static void await(CountDownLatch latch) {
        boolean interrupted = false;
        while (true) {
            try {
                latch.await();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
