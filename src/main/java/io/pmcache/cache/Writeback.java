package io.pmcache.cache;

import io.pmcache.format.KeyRecord;
import io.pmcache.format.LogPosition;
import io.pmcache.index.Extent;
import io.pmcache.index.ExtentMap;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes dirty data to the backing device in log order.
 *
 * <h2>One step</h2>
 * <ol>
 *   <li>From the dirty tail, take sealed ksets (up to {@link #MAX_KEYS} keys or
 *       {@link #MAX_BYTES} bytes); stop at the first kset not yet sealed.</li>
 *   <li>Lay their dirty keys over each other in log order (the newest wins inside the batch), and
 *       with the data-CRC option drop keys whose data fails its CRC.</li>
 *   <li>Write the resulting extents to the backing device concurrently (zero extents as
 *       write-zeroes), then flush the backing device once.</li>
 *   <li>Only then advance and persist the dirty tail.</li>
 * </ol>
 * A failure anywhere leaves the dirty tail where it was: the data stays dirty and readable in the
 * cache and the step is retried with backoff. Because every write acknowledged before a FLUSH sits
 * in a kset before every write after it, the backing device only ever moves through states that
 * respect the client's flush order.
 */
final class Writeback {
    private static final Logger log = LoggerFactory.getLogger(Writeback.class);
    static final int MAX_KEYS = 4096;
    static final long MAX_BYTES = 64L << 20;
    private static final int MAX_IN_FLIGHT = 16;

    private final Engine e;
    private final ReentrantLock lock = new ReentrantLock();
    private final ExecutorService io = Executors.newVirtualThreadPerTaskExecutor();
    private volatile int lastBatchKeys;

    Writeback(Engine e) {
        this.e = e;
    }

    /** Outcome of one step. */
    enum Step { IDLE, PROGRESS, FAILED }

    /** True when every kset reserved so far has been written back. */
    boolean caughtUp() {
        return e.info.current().dirtyTail().ksetSeq() >= e.keyLog.nextSeq();
    }

    Step step() {
        lock.lock();
        try {
            return stepLocked();
        } finally {
            lock.unlock();
        }
    }

    private Step stepLocked() {
        LogPosition tail = e.info.current().dirtyTail();
        List<KeyRecord> batch = new ArrayList<>();
        long bytes = 0;
        LogPosition pos = tail;
        while (batch.size() < MAX_KEYS && bytes < MAX_BYTES && pos.ksetSeq() < e.keyLog.nextSeq()
                && e.keyLog.isSealed(pos.ksetSeq())) {
            LogReader.KsetAt k = e.reader.read(pos);
            if (k == null) {
                log.error("writeback: no valid kset #{} at {} although the log holds it; the key log is corrupt",
                        pos.ksetSeq(), pos);
                e.stats.backingErrors.increment();
                e.stats.lastBackingError = "key log corrupt at " + pos;
                break;
            }
            for (int slot = 0; slot < k.slots(); slot++) {
                if (e.reader.slotEmpty(k, slot)) {
                    continue;
                }
                KeyRecord key = e.reader.key(k, slot);
                if (key == null) {
                    e.stats.corruptKeysSkipped.increment();
                    log.warn("writeback: kset #{} slot {} fails its CRC; skipped", k.at().ksetSeq(), slot);
                    continue;
                }
                if (key.dirty()) {
                    batch.add(key);
                    bytes += key.length();
                }
            }
            pos = k.next();
        }
        if (pos.equals(tail)) {
            return Step.IDLE;
        }
        try {
            writeBatch(batch);
        } catch (IOException | RuntimeException ex) {
            e.stats.backingErrors.increment();
            e.stats.lastBackingError = String.valueOf(ex.getMessage());
            log.warn("writeback of {} keys from {} failed, will retry: {}", batch.size(), tail, ex.toString());
            return Step.FAILED;
        }
        LogPosition resolved = e.reader.resolve(pos);
        e.info.setDirtyTail(resolved != null ? resolved : pos);
        e.stats.dirtyBytes.addAndGet(-bytes);
        e.stats.writebackBytes.add(bytes);
        e.stats.writebackKeys.add(batch.size());
        e.stats.writebackBatches.increment();
        lastBatchKeys = batch.size();
        return Step.PROGRESS;
    }

    /** Keys in the last batch written back (the worker pauses to gather after small ones). */
    int lastBatchKeys() {
        return lastBatchKeys;
    }

    private void writeBatch(List<KeyRecord> batch) throws IOException {
        ExtentMap latest = new ExtentMap();
        for (KeyRecord key : batch) {
            if (key.zero()) {
                latest.insert(Extent.zero(key.offset(), key.length(), true), null);
            } else if (e.superblock.dataCrc() && !e.reader.dataMatches(key)) {
                e.stats.dataCrcErrors.increment();
                log.error("writeback: data CRC mismatch for [{}, +{}) in segment {}; not written back",
                        key.offset(), key.length(), key.segment());
            } else {
                latest.insert(Extent.data(key.offset(), key.length(), key.segment(), key.segmentOffset(),
                        key.generation(), true), null);
            }
        }
        Semaphore slots = new Semaphore(MAX_IN_FLIGHT);
        List<Future<?>> inFlight = new ArrayList<>();
        try {
            for (Extent x : latest.snapshot()) {
                slots.acquireUninterruptibly();
                inFlight.add(io.submit(() -> {
                    try {
                        writeExtent(x);
                        return null;
                    } finally {
                        slots.release();
                    }
                }));
            }
            for (Future<?> f : inFlight) {
                f.get();
            }
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("writeback interrupted");
        } catch (java.util.concurrent.ExecutionException ex) {
            for (Future<?> f : inFlight) {
                f.cancel(false);
            }
            throw ex.getCause() instanceof IOException io ? io : new IOException(ex.getCause());
        }
        e.backing.flush();
    }

    private void writeExtent(Extent x) throws IOException {
        if (x.kind() == Extent.Kind.ZERO) {
            e.backing.writeZeroes(x.start(), x.length(), false);
        } else {
            e.backing.write(x.start(), e.medium.segment().asSlice(e.address(x.segment(), x.segmentOffset()),
                    x.length()), false);
        }
    }

    /**
     * Writes back until every kset reserved before the call is on the backing device. Retries
     * failures with backoff; gives up with an IOException after {@code 20} failures in a row.
     */
    void drain(LongConsumer progress, Workers workers) throws IOException {
        long target = e.keyLog.nextSeq();
        int failures = 0;
        long backoff = 50;
        while (e.info.current().dirtyTail().ksetSeq() < target) {
            e.keyLog.sealAll();
            Step s = step();
            progress.accept(e.stats.dirtyBytes.get());
            if (s == Step.FAILED || (s == Step.IDLE && e.info.current().dirtyTail().ksetSeq() < target)) {
                if (++failures >= 20) {
                    throw new IOException("writeback keeps failing (" + e.stats.lastBackingError
                            + "); dirty data stays in the cache");
                }
                e.stats.backingRetries.increment();
                sleep(backoff);
                backoff = Math.min(backoff * 2, 2000);
            } else {
                failures = 0;
                backoff = 50;
            }
        }
        progress.accept(e.stats.dirtyBytes.get());
    }

    static void sleep(long ms) throws java.io.InterruptedIOException {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted");
        }
    }

    void close() {
        io.shutdown();
    }
}
