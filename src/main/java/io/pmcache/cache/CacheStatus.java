package io.pmcache.cache;

/**
 * A snapshot of the engine's figures. Byte counts are bytes; times are nanoseconds unless named
 * otherwise. {@code writebackLagKsets} is how many ksets lie between the dirty tail and the key
 * head: the log writeback has still to walk.
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
        String keyTail, String dirtyTail, String keyHead, long writebackLagKsets) {
}
