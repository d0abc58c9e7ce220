package io.pmcache.cache;

import io.pmcache.format.Kset;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/** Counters kept by the engine. Cheap to bump from any thread; read through {@link CacheStatus}. */
final class CacheStats {
    final LongAdder reads = new LongAdder();
    final LongAdder readBytes = new LongAdder();
    final LongAdder writes = new LongAdder();
    final LongAdder writeBytes = new LongAdder();
    final LongAdder flushes = new LongAdder();
    final LongAdder trims = new LongAdder();
    final LongAdder readHits = new LongAdder();
    final LongAdder readPartialHits = new LongAdder();
    final LongAdder readMisses = new LongAdder();
    final LongAdder fillBytes = new LongAdder();
    final LongAdder fillsSkipped = new LongAdder();
    /** Read misses not filled on purpose: cache mode none, or a sequential stream past the cutoff. */
    final LongAdder fillsBypassed = new LongAdder();
    /** Bytes of clean cached extents dropped by {@code Cache.invalidate} (also when switching to mode none). */
    final LongAdder invalidatedBytes = new LongAdder();
    final LongAdder spaceWaits = new LongAdder();
    final LongAdder spaceWaitNanos = new LongAdder();
    final LongAdder ksetsSealed = new LongAdder();
    /** Ksets reserved while the front end was idle, ahead of the stream's next writer ({@code KeyLog.reserveAhead}). */
    final LongAdder ksetsReservedAhead = new LongAdder();
    /** Bytes of data written back (zeroed and trimmed ranges not included). */
    final LongAdder writebackBytes = new LongAdder();
    /** Bytes of zeroed or trimmed ranges written back (as zeroing, not as data). */
    final LongAdder writebackZeroBytes = new LongAdder();
    /**
     * Bytes of data writeback wrote to the backing device, after each batch's newest-wins merge:
     * below {@link #writebackBytes} by the overwrites the batches absorbed. Counted when written
     * (the others when the batch's sync succeeded, and again if a failed batch is retried).
     */
    final LongAdder writebackWrittenBytes = new LongAdder();
    /**
     * Of {@link #writebackBytes}, the key bytes writeback left to newer keys of the same flush
     * interval ({@link OwnParts}) instead of writing them. Counted when the batch is written.
     */
    final LongAdder writebackLeftToNewerBytes = new LongAdder();
    final LongAdder writebackKeys = new LongAdder();
    final LongAdder writebackBatches = new LongAdder();
    final LongAdder backingErrors = new LongAdder();
    final LongAdder backingRetries = new LongAdder();
    final LongAdder gcPasses = new LongAdder();
    final LongAdder gcKsets = new LongAdder();
    final LongAdder segmentsReclaimed = new LongAdder();
    final LongAdder corruptKeysSkipped = new LongAdder();
    final LongAdder dataCrcErrors = new LongAdder();
    /** Ksets of the key log found damaged (header, seal or slots), recovered in part or lost. */
    final LongAdder ksetsDamaged = new LongAdder();
    /**
     * Bytes of dirty keys appended to the log and not yet written back. Striped: every write adds
     * to it, so one shared atomic would be a cache line all writing threads fight over; its
     * {@code sum()} is exact whenever no write or writeback is changing it.
     */
    final LongAdder dirtyBytes = new LongAdder();
    volatile long replayNanos;
    volatile long replayKsets;
    volatile long replayKeys;
    volatile String lastBackingError = "";

    /**
     * Key slots, as (kset sequence, slot), already counted in {@link #corruptKeysSkipped} or
     * {@link #dataCrcErrors}. Replay checks every key of the log at open and writeback checks the
     * dirty ones again before writing them (and again on every retry of a failed batch), so
     * without this one damaged key would be counted two or more times. Holds only damaged slots:
     * a handful, so it is never pruned.
     */
    private final Set<Long> countedDamage = ConcurrentHashMap.newKeySet();

    /** True the first time the key in {@code slot} of kset {@code ksetSeq} is reported damaged. */
    boolean firstDamageReport(long ksetSeq, int slot) {
        return countedDamage.add(ksetSeq * Kset.MAX_KEYS + slot);
    }
}
