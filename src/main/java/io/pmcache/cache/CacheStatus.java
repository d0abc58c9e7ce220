package io.pmcache.cache;

/**
 * A snapshot of the engine's figures. Byte counts are bytes; times are nanoseconds unless named
 * otherwise. {@code writebackLagKsets} is how many ksets lie between the dirty tail and the key
 * head: the log writeback has still to walk.
 *
 * <p>{@code spaceWaitNanos} includes the waits still in progress. {@code lastBackingError} is empty
 * once writeback succeeded after the error. {@code backingStalledMillis} is how long the writeback
 * call to the backing device in progress has been running, once that exceeds
 * 30 s (0 otherwise). {@code failure} is null, or why the cache
 * failed (writes and flushes then fail with EIO). {@code ksetsDamaged} counts ksets of the key log
 * found damaged (recovered or lost) since the open. {@code writebackBytes} counts data written back;
 * {@code writebackZeroBytes} the zeroed or trimmed ranges written back (as zeroing, no data).
 */
public record CacheStatus(
        long deviceSize, long segmentSize, int segmentsTotal, int segmentsUsed, int gcPercent, boolean dataCrc,
        long reads, long readBytes, long writes, long writeBytes, long flushes, long trims,
        long readHits, long readPartialHits, long readMisses, long fillBytes, long fillsSkipped,
        long dirtyBytes, long spaceWaits, long spaceWaitNanos, long ksetsSealed,
        long writebackBytes, long writebackKeys, long writebackBatches, String writebackPosition,
        long backingErrors, long backingRetries, String lastBackingError,
        long gcPasses, long gcKsets, long segmentsReclaimed,
        long corruptKeysSkipped, long dataCrcErrors,
        long replayNanos, long replayKsets, long replayKeys,
        String keyTail, String dirtyTail, String keyHead, long writebackLagKsets,
        long ksetsDamaged, long backingStalledMillis, String failure, long writebackZeroBytes) {
}
