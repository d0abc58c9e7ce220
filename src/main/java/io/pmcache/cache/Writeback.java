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
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes dirty data to the backing device in log order.
 *
 * <h2>One step</h2>
 * <ol>
 *   <li>In the syncer thread, flush the backing device, which makes the previous step's writes (all
 *       completed before the flush began) durable; the rest of the step runs meanwhile, so the flush
 *       of one batch overlaps the gathering and the writes of the next, and a writeback-bound cache
 *       keeps its backing device busy from one flush to the next.</li>
 *   <li>From the dirty tail, take sealed ksets (up to the step's byte limit, which
 *       {@link WritebackPolicy} sets, and at most {@link #maxKeys} keys or {@link #maxBytes} bytes:
 *       half the cache, 4 MiB..1 GiB); stop at the first kset not yet sealed. Larger batches mean
 *       fewer backing-device syncs, and more keys overwritten inside a batch that need not be
 *       written at all.</li>
 *   <li>Lay their dirty keys over each other in log order (the newest wins inside the batch);
 *       drop keys whose segment generation moved on (possible only after metadata damage, when
 *       replay dropped them too) and, with the data-CRC option, keys whose data fails its CRC. A key
 *       that no flush has covered yet ({@link FlushBarriers}) gives up the bytes a newer key
 *       overwrote ({@link OwnParts}), wherever that key is: within one flush interval a disk may
 *       lose any write, so the backing device stays a crash image. The open ksets are then handed
 *       over to the sealer, and sealed at the latest just before the dirty tail passes the batch,
 *       so that those newer keys are durable by then (when a stream is busy and cannot be handed
 *       over without waiting, the batch's keys are written whole).</li>
 *   <li>Write the resulting extents to the backing device in offset order (zero extents as
 *       write-zeroes) from the stepping thread.</li>
 *   <li>Once the flush succeeded, advance and persist the dirty tail over the previous batch.</li>
 * </ol>
 * Invariant: dirty tail ≤ {@code written} (the end of what was written to the backing device); the
 * dirty tail only ever moves to a position whose writes all completed before a successful flush.
 * A failure anywhere leaves the dirty tail where it was: the data stays dirty and readable in the
 * cache and the step is retried with backoff. Because every write acknowledged before a FLUSH sits
 * in a kset before every write after it, the backing device only ever moves through states that
 * respect the client's flush order.
 */
final class Writeback {
    private static final Logger log = LoggerFactory.getLogger(Writeback.class);
    /** Failed steps are retried forever: one WARN per interval, not per retry. */
    private final RecurringFailureLog failureLog = new RecurringFailureLog(log);
    private final int maxKeys;
    private final long maxBytes;

    private final Engine e;
    private final ReentrantLock lock = new ReentrantLock();
    /** Flushes the backing device while the stepping thread writes the next batch. */
    private final ExecutorService syncer = Executors.newSingleThreadExecutor(
            r -> Thread.ofPlatform().daemon().name("pmcache-writeback-sync").unstarted(Workers.background(r)));
    /** End of the ksets whose data was written to the backing device (not necessarily flushed). */
    private LogPosition written;
    /**
     * Every kset below this (0: none) must be sealed before the dirty tail passes {@link #written}:
     * it holds newer keys the batches since the tail left bytes to.
     */
    private long writtenSealBelow;
    /** Asks the sealer to seal what was handed over soon (set by {@link Workers}). */
    private volatile Runnable sealWanted = () -> { };

    void onSealWanted(Runnable r) {
        sealWanted = r;
    }

    /**
     * Dirty bytes between the dirty tail and {@link #written}: written to the backing device, not
     * yet synced (written under {@link #lock}, read by the policy's inputs without it).
     */
    private volatile long writtenBytes;
    /** Of {@code writtenBytes}, the bytes of zero keys (zeroed or trimmed ranges): no data written. */
    private long writtenZeroBytes;
    /**
     * Drains running: while one runs, no step starts that leaves bytes to newer keys. A drain counts
     * itself before it takes its target, so when it returns every key before the target is on the
     * backing device, itself or a newer version from before the target (a step that began before
     * the drain saw only keys appended before it).
     */
    private final java.util.concurrent.atomic.AtomicInteger drains = new java.util.concurrent.atomic.AtomicInteger();
    /** Keys in the last batch written back (the worker pauses to gather after small ones). */
    private volatile int lastBatchKeys;
    /** Dirty bytes of the keys in the last batch written back (0 after a step that only synced). */
    private volatile long lastBatchBytes;
    /** What the last batch with key bytes absorbed, and what it left to newer keys. */
    private volatile WritebackPolicy.LastBatch lastBatch = WritebackPolicy.LastBatch.NONE;
    /** When the backing-device writes of the step in progress began; 0 when none is in progress. */
    private volatile long writesSince;
    /** When the backing-device flush in progress began (syncer); 0 when none is in progress. */
    private volatile long syncSince;
    /** The stall already logged (its start), so each stall is logged once. */
    private long stallLogged;
    /**
     * Failed steps since a flush of the backing device last succeeded. Only a flush resets it: a
     * step that only wrote proves nothing where writes fail after returning (a remote's
     * write-behind), and would otherwise reset every retry's backoff and a drain's give-up count.
     */
    private volatile int failuresInARow;

    Writeback(Engine e) {
        this.e = e;
        long cacheBytes = e.segments.count() * e.segments.segmentSize();
        this.maxBytes = Math.clamp(cacheBytes / 2, 4L << 20, MAX_BATCH_BYTES);
        this.maxKeys = (int) Math.max(1024, maxBytes / 4096);
    }

    /**
     * The largest batch of any cache, in bytes of keys: a batch's keys and extents are held on the
     * heap while it is written (a {@code KeyRecord} and an extent per key: tens of MB for 1 GiB of
     * 4 KiB keys).
     */
    static final long MAX_BATCH_BYTES = 1L << 30;

    /** Outcome of one step. */
    enum Step { IDLE, PROGRESS, FAILED }

    Step step() {
        return step(Long.MAX_VALUE);
    }

    /**
     * One step whose new batch holds about {@code byteLimit} bytes of keys at most (whole ksets:
     * at least one kset when any is sealed, unless the limit is 0); a limit of 0 only syncs the
     * batch written by the previous step and advances the dirty tail over it.
     */
    Step step(long byteLimit) {
        lock.lock();
        try {
            return stepLocked(Math.min(maxBytes, byteLimit));
        } finally {
            lock.unlock();
        }
    }

    private Step stepLocked(long byteLimit) {
        LogPosition tail = e.info.current().dirtyTail();
        if (written == null || written.ksetSeq() < tail.ksetSeq()) {
            written = tail;
            writtenBytes = 0;
            writtenZeroBytes = 0;
        }
        // Flush the previous batch (in the syncer) while this one is gathered and written (here): the
        // flushes then follow each other with no pause for gathering a batch, and they are what keeps
        // a busy backing device busy.
        Future<?> sync = written.ksetSeq() > tail.ksetSeq() ? syncer.submit(this::flushBacking) : null;
        try {
            return gatherAndWrite(tail, byteLimit, sync);
        } catch (RuntimeException | Error ex) {
            if (sync != null) {
                awaitQuietly(sync); // a step never leaves its flush behind: one flush at a time
            }
            throw ex;
        }
    }

    private Void flushBacking() throws IOException {
        e.hook.at(StepHook.Point.WRITEBACK_BEFORE_SYNC);
        syncSince = System.nanoTime();
        try {
            e.backing.flush();
        } finally {
            syncSince = 0;
        }
        return null;
    }

    /** The rest of a step, with the flush of the previous batch ({@code sync}, null if none) under way. */
    private Step gatherAndWrite(LogPosition tail, long byteLimit, Future<?> sync) {
        List<KeyRecord> batch = new ArrayList<>();
        // Overwritten beyond the batch: for the keys no flush has covered yet, their own parts.
        boolean absorb = drains.get() == 0;
        long flushedBefore = e.barriers.latest();
        List<List<Extent>> own = new ArrayList<>();
        List<long[]> ksetStarts = new ArrayList<>(); // {kset sequence, index of its first key in batch}
        long bytes = 0;
        long zeroBytes = 0;
        LogPosition pos = written;
        while (batch.size() < maxKeys && bytes < byteLimit && pos.ksetSeq() < e.keyLog.nextSeq()
                && e.keyLog.isSealed(pos.ksetSeq())) {
            LogReader.KsetAt k = e.reader.read(pos);
            if (k == null) {
                log.error("writeback: no valid kset #{} at {} although the log holds it; the key log is corrupt",
                        pos.ksetSeq(), pos);
                e.stats.lastBackingError = "key log corrupt at " + pos; // the reason before the count
                e.stats.backingErrors.increment();
                break;
            }
            long seq = k.at().ksetSeq();
            boolean unflushed = absorb && seq >= flushedBefore;
            ksetStarts.add(new long[] {seq, batch.size()});
            for (int slot = 0; slot < k.slots(); slot++) {
                KeyLiveness.Slot s = e.liveness.judge(k, slot);
                KeyRecord key = s.key();
                if (s.damaged()) {
                    // Counted once: replay (or an earlier try of this batch) may have counted it.
                    if (e.stats.firstDamageReport(k.at().ksetSeq(), slot)) {
                        e.stats.corruptKeysSkipped.increment();
                        log.error("writeback: kset #{} slot {} is damaged ({}); skipped", k.at().ksetSeq(), slot,
                                s.state());
                    }
                    continue;
                }
                if (s.state() != KeyLiveness.State.LIVE || !key.dirty()) {
                    continue; // empty, or history (the segment was reclaimed after a write-back), or clean
                }
                if (!key.zero() && e.superblock.dataCrc() && !e.reader.dataMatches(key)) {
                    // Counted once: replay tombstoned the keys it found damaged; a first report here
                    // is damage since the open, of a key that was counted dirty and now never will
                    // be written back.
                    if (e.stats.firstDamageReport(k.at().ksetSeq(), slot)) {
                        e.stats.dataCrcErrors.increment();
                        e.stats.dirtyBytes.add(-key.length());
                        log.error("writeback: data CRC mismatch for [{}, +{}) in segment {}; not written back",
                                key.offset(), key.length(), key.segment());
                    }
                    continue;
                }
                batch.add(key);
                own.add(unflushed ? OwnParts.of(e.index, key) : null);
                bytes += key.length();
                if (key.zero()) {
                    zeroBytes += key.length();
                }
            }
            pos = k.next();
        }
        boolean newBatch = !pos.equals(written);
        if (!newBatch && sync == null) {
            return Step.IDLE;
        }
        // Read after the index: a FLUSH or FUA write that returned meanwhile covered the keys below it.
        long flushedAfter = e.barriers.latest();
        int unflushedFrom = batch.size();
        for (int i = ksetStarts.size() - 1; i >= 0 && ksetStarts.get(i)[0] >= flushedAfter; i--) {
            unflushedFrom = (int) ksetStarts.get(i)[1];
        }
        if (!absorb) {
            unflushedFrom = batch.size();
        }
        List<Extent> extents = newBatch ? newestWins(batch, own, unflushedFrom) : List.of();
        long leftToNewer = bytesLeftToNewer(batch, own, unflushedFrom);
        long sealBelow = 0;
        if (leftToNewer > 0) {
            // The newer keys the batch leaves bytes to (in ksets below this) must be durable before
            // the dirty tail passes what they overwrote: hand their ksets over to be sealed now, and
            // check before the tail moves (advanceTail). A busy stream (its writer may wait for
            // space, which only writeback makes) cannot be handed over: the keys are written whole.
            sealBelow = e.keyLog.nextSeq();
            if (e.keyLog.tryHandOverAll()) {
                sealWanted.run(); // the sealer, at the requests' priority, seals them meanwhile
            } else {
                extents = newestWins(batch, own, batch.size());
                leftToNewer = 0;
                sealBelow = 0;
            }
        }
        e.hook.at(StepHook.Point.WRITEBACK_GATHERED);
        try {
            IOException failed = null;
            writesSince = System.nanoTime();
            try {
                writeAll(extents);
            } catch (IOException | RuntimeException ex) {
                failed = ex instanceof IOException io ? io : new IOException(ex);
            } finally {
                writesSince = 0;
            }
            if (sync != null) {
                await(sync); // even after a failed write: one flush at a time
                e.hook.at(StepHook.Point.WRITEBACK_AFTER_SYNC);
                if (writtenSealBelow > 0 && !e.keyLog.sealedBelow(writtenSealBelow)) {
                    e.keyLog.sealPending(); // the sealer has not got to them yet
                }
                advanceTail(written, writtenBytes, writtenZeroBytes);
                writtenBytes = 0;
                writtenZeroBytes = 0;
                writtenSealBelow = 0;
            }
            if (failed != null) {
                throw failed;
            }
        } catch (IOException | RuntimeException ex) {
            failuresInARow++;
            written = e.info.current().dirtyTail();
            writtenBytes = 0;
            writtenZeroBytes = 0;
            writtenSealBelow = 0;
            // The reason before the count: whoever sees the count grow finds the reason in the status.
            e.stats.lastBackingError = String.valueOf(ex.getMessage());
            e.stats.backingErrors.increment();
            failureLog.failed(batch.isEmpty() ? "writeback's flush of the backing device"
                    : "writeback of " + batch.size() + " keys from " + tail, ex);
            return Step.FAILED;
        }
        if (sync != null) { // a flush succeeded: the backing device works again
            failuresInARow = 0;
            failureLog.succeeded("writeback");
            if (!e.stats.lastBackingError.isEmpty()) {
                e.stats.lastBackingError = "";
            }
        }
        if (newBatch) {
            LogPosition resolved = e.reader.resolve(pos);
            written = resolved != null ? resolved : pos;
            writtenBytes += bytes;
            writtenZeroBytes += zeroBytes;
            writtenSealBelow = Math.max(writtenSealBelow, sealBelow);
            e.stats.writebackLeftToNewerBytes.add(leftToNewer);
            e.stats.writebackKeys.add(batch.size());
            e.stats.writebackBatches.increment();
        }
        lastBatchKeys = batch.size();
        lastBatchBytes = newBatch ? bytes : 0;
        if (newBatch && bytes > 0) {
            long kept = 0;
            for (Extent x : extents) {
                kept += x.length();
            }
            lastBatch = new WritebackPolicy.LastBatch(Math.max(0, 1 - (double) (kept + leftToNewer) / bytes),
                    (double) leftToNewer / bytes);
        }
        return Step.PROGRESS;
    }

    /**
     * How long the backing-device call in progress (a write of a batch, or a flush) has been
     * running, when longer than {@link #STALL_MILLIS}; else 0.
     */
    long stalledMillis(long now) {
        long since = oldest(writesSince, syncSince);
        long ms = since == 0 ? 0 : (now - since) / 1_000_000;
        return ms >= stallThresholdMillis ? ms : 0;
    }

    /** A backing-device call running this long counts as a stall (status, metrics, a WARN line). */
    static final long STALL_MILLIS = 30_000;
    /** {@link #STALL_MILLIS}; tests lower it. */
    volatile long stallThresholdMillis = STALL_MILLIS;

    private static long oldest(long a, long b) {
        return a == 0 ? b : b == 0 ? a : Math.min(a, b);
    }

    /** Logs a stall once when it begins (called periodically by a worker that is not stuck in it). */
    void reportStall(long now) {
        long since = oldest(writesSince, syncSince);
        if (since != 0 && since != stallLogged && stalledMillis(now) > 0) {
            stallLogged = since;
            e.stats.lastBackingError = "backing device stalled: a writeback call has not returned for "
                    + (now - since) / 1_000_000 + " ms";
            log.warn("{}; {} dirty bytes wait (they stay readable in the cache)", e.stats.lastBackingError,
                    e.stats.dirtyBytes.sum());
        }
    }

    /** Failed steps since a backing-device flush last succeeded (the retries' backoff and a drain's give-up). */
    int failuresInARow() {
        return failuresInARow;
    }

    /** The wait before retrying after {@code failures} failed steps in a row: 50 ms doubling to {@code maxMillis}. */
    static long backoffMillis(int failures, long maxMillis) {
        return Math.min(50L << Math.clamp(failures - 1, 0, 20), maxMillis);
    }

    /** Dirty bytes written to the backing device and awaiting its sync (the dirty tail has not passed them). */
    long writtenUnsyncedBytes() {
        return writtenBytes;
    }

    /** Dirty bytes of the keys in the last batch written back (0 after a step that only synced). */
    long lastBatchBytes() {
        return lastBatchBytes;
    }

    /** Of the key bytes of the last batch that had any: what it absorbed and what it left to newer keys. */
    WritebackPolicy.LastBatch lastBatch() {
        return lastBatch;
    }

    /** Keys in the last batch written back (the worker pauses to gather after small ones). */
    int lastBatchKeys() {
        return lastBatchKeys;
    }

    /** {@code bytes} of dirty keys are written back, {@code zeroBytes} of them zeroed ranges. */
    private void advanceTail(LogPosition to, long bytes, long zeroBytes) {
        e.info.setDirtyTail(to);
        e.hook.at(StepHook.Point.WRITEBACK_AFTER_TAIL);
        e.stats.dirtyBytes.add(-bytes);
        e.stats.writebackBytes.add(bytes - zeroBytes);
        e.stats.writebackZeroBytes.add(zeroBytes);
    }

    /** The bytes the keys from {@code unflushedFrom} on leave to newer keys (not their own any more). */
    private static long bytesLeftToNewer(List<KeyRecord> batch, List<List<Extent>> own, int unflushedFrom) {
        long left = 0;
        for (int i = unflushedFrom; i < batch.size(); i++) {
            left += batch.get(i).length();
            for (Extent x : own.get(i)) {
                left -= x.length();
            }
        }
        return left;
    }

    /**
     * Lays the batch over itself in log order (the newest wins): the extents to write, by offset.
     * The keys from {@code unflushedFrom} on contribute only their own parts ({@code own}): what a
     * newer key overwrote in the same flush interval is left to that key.
     */
    private static List<Extent> newestWins(List<KeyRecord> batch, List<List<Extent>> own, int unflushedFrom) {
        ExtentMap latest = new ExtentMap();
        for (int i = 0; i < batch.size(); i++) {
            KeyRecord key = batch.get(i);
            if (i >= unflushedFrom) {
                for (Extent x : own.get(i)) {
                    latest.insert(x, null);
                }
            } else if (key.zero()) {
                latest.insert(Extent.zero(key.offset(), key.length(), true), null);
            } else {
                latest.insert(Extent.data(key.offset(), key.length(), key.segment(), key.segmentOffset(),
                        key.generation(), true), null);
            }
        }
        return latest.snapshot();
    }

    /**
     * Writes the extents in offset order from this one thread, behind: the device keeps many in
     * flight (a remote's round trips, a file's direct writes), so more writers would only add
     * hand-offs. The medium's data they are written from stays put until the flush that follows
     * (a segment is reused only after the dirty tail passed its data), as writeBehind requires.
     */
    private void writeAll(List<Extent> extents) throws IOException {
        for (Extent x : extents) {
            writeExtent(x);
        }
    }

    /** Waits for {@code f} and ignores how it ended (the step is failing for another reason). */
    private static void awaitQuietly(Future<?> f) {
        try {
            await(f);
        } catch (IOException | RuntimeException ignored) {
            // the step's own failure is the one reported
        }
    }

    private static void await(Future<?> f) throws IOException {
        try {
            io.pmcache.os.Uninterruptibly.get(f); // the flush is in flight: never abandon it half-way
        } catch (java.util.concurrent.ExecutionException ex) {
            throw ex.getCause() instanceof IOException io ? io : new IOException(ex.getCause());
        }
    }

    private void writeExtent(Extent x) throws IOException {
        if (x.kind() == Extent.Kind.ZERO) {
            e.backing.writeZeroes(x.start(), x.length(), false);
        } else {
            // Behind: a remote keeps many in flight; the flush that follows reports what failed.
            e.backing.writeBehind(x.start(), e.medium.segment().asSlice(e.address(x.segment(), x.segmentOffset()),
                    x.length()));
            e.stats.writebackWrittenBytes.add(x.length());
        }
        e.hook.at(StepHook.Point.WRITEBACK_BETWEEN_WRITES);
    }

    /**
     * Writes back until every kset reserved before the call is on the backing device, in base
     * batches ({@link WritebackPolicy#baseBatch}), so that the progress it reports after each step
     * moves at least that often on a slow backing device. Retries failures with backoff; gives up
     * with an IOException after {@code 20} failures in a row.
     */
    void drain(LongConsumer progress, Workers workers) throws IOException {
        drains.incrementAndGet();
        try {
            drainAll(progress);
        } finally {
            drains.decrementAndGet();
        }
    }

    private void drainAll(LongConsumer progress) throws IOException {
        long target = e.keyLog.nextSeq();
        long batch = WritebackPolicy.baseBatch(e.segments.count() * e.segments.segmentSize());
        int idleMisses = 0; // steps that found nothing to write although the target is not reached
        while (e.info.current().dirtyTail().ksetSeq() < target) {
            e.keyLog.sealAll();
            Step s = step(batch);
            progress.accept(e.stats.dirtyBytes.sum());
            if (s == Step.FAILED || (s == Step.IDLE && e.info.current().dirtyTail().ksetSeq() < target)) {
                int failures = s == Step.FAILED ? failuresInARow : ++idleMisses;
                if (failures >= 20) {
                    throw new IOException("writeback keeps failing (" + e.stats.lastBackingError
                            + "); dirty data stays in the cache");
                }
                e.stats.backingRetries.increment();
                sleep(backoffMillis(failures, 2000));
            } else {
                idleMisses = 0;
            }
        }
        progress.accept(e.stats.dirtyBytes.sum());
    }

    static void sleep(long ms) throws java.io.InterruptedIOException {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted");
        }
    }

    /**
     * Stops the syncer. A step always awaits the flush it submitted, so once the stepping thread
     * stopped the syncer is idle and this returns at once; a flush still running means the stepping
     * thread was left behind waiting for it (see {@link Workers#stop}), and is not waited for again.
     */
    void close() {
        syncer.shutdown();
        try {
            if (!syncer.awaitTermination(1, java.util.concurrent.TimeUnit.SECONDS)) {
                log.error("stop: a backing-device flush has not returned; left running");
            }
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
        }
    }
}
