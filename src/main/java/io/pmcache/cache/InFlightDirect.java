package io.pmcache.cache;

import io.pmcache.index.Extent;
import io.pmcache.index.ExtentMap;
import java.io.InterruptedIOException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * The direct writes in flight ({@link DirectPath}): each is a placeholder in the index whose id is
 * registered here with a latch released once the placeholder is gone. Cached writes, zeroings and
 * reads that meet one wait for it ({@link #await}).
 */
final class InFlightDirect {
    private final ConcurrentHashMap<Long, CountDownLatch> byId = new ConcurrentHashMap<>();
    /** Raised under the range lock before a direct placeholder goes in: 0 means none anywhere. */
    private final AtomicInteger active = new AtomicInteger();
    /** Waits of cached writes, zeroings and reads for a direct write to the same bytes. */
    final LongAdder waits = new LongAdder();

    /** Registers the direct write {@code id}. Caller holds the range's lock and then inserts the placeholder. */
    CountDownLatch begin(long id) {
        CountDownLatch l = new CountDownLatch(1);
        active.incrementAndGet();
        byId.put(id, l);
        return l;
    }

    /** After its placeholder was removed. */
    void end(long id, CountDownLatch l) {
        byId.remove(id);
        active.decrementAndGet();
        l.countDown();
    }

    /** The latch of a direct write in flight over {@code [from, to)}, or null. Caller holds the range's lock. */
    CountDownLatch overlapping(ExtentMap map, long from, long to) {
        if (active.get() == 0) {
            return null;
        }
        CountDownLatch[] found = {null};
        map.forEachOverlapping(from, to, x -> {
            if (found[0] == null && x.kind() == Extent.Kind.PLACEHOLDER) {
                found[0] = byId.get(x.fillId());
            }
        });
        return found[0];
    }

    /** The latch of the direct write whose placeholder has {@code fillId}, or null (a read's placeholder). */
    CountDownLatch of(long fillId) {
        return active.get() == 0 ? null : byId.get(fillId);
    }

    /**
     * Waits until the direct write behind {@code latch} is done. Bounded by that write: one
     * backing-device call, which a stop waits for anyway; gives up when the cache has failed.
     */
    void await(CountDownLatch latch, FailState failure) throws InterruptedIOException {
        waits.increment();
        try {
            while (!latch.await(1, TimeUnit.SECONDS)) {
                if (failure.failed()) {
                    return; // the caller's next step fails with the cache's error
                }
            }
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted waiting for a write to the backing device");
        }
    }
}
