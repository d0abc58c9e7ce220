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
 * {@code writebackWrittenBytes}: data bytes writeback wrote to the backing device after each batch's
 * newest-wins merge (overwrites inside a batch are written once) and without the bytes left to newer
 * keys, counted when written. {@code writebackLeftToNewerBytes}: key bytes writeback did not write
 * because a newer key of the same flush interval overwrote them ({@code writebackBytes} minus both
 * is what newest-wins inside the batches absorbed). {@code ksetsReservedAhead}: ksets reserved
 * while the front end was idle ({@link Cache#idle}) for a stream whose kset had filled up, before
 * its next write came (the others were reserved by that write).
 *
 * <p>Writeback pacing ({@link WritebackPolicy}): {@code dirtyPercent} is the dirty bytes in
 * percent of the cache, {@code writebackTargetPercent} the controller's target,
 * {@code writebackRateLimit} the rate writeback was last allowed (bytes per second; -1 for full
 * speed, 0 with writeback off) and {@code writebackReason} why: {@code controller}, {@code idle},
 * {@code pressure}, {@code drain}, or {@code off} when the writeback worker does not run.
 *
 * <p>Cache modes ({@link CacheMode}, {@link CachePolicy}): {@code cacheMode} and
 * {@code sequentialCutoff} (bytes, 0 = off) in force; {@code directWrites}/{@code directWriteBytes}
 * the writes (and zeroings) that went to the backing device directly (writethrough, writearound,
 * none, the cutoff), {@code writethroughWrites} those of them also cached; {@code dirtyRangeWrites}
 * the pieces that went into the cache instead because their range held dirty data not yet written
 * back; {@code sequentialBypassWrites}/{@code sequentialBypassWriteBytes} writes and
 * {@code sequentialBypassReads} reads past the cutoff; {@code fillsBypassed} read misses not filled
 * on purpose (mode none or the cutoff); {@code directWaits} cached writes and reads that waited for
 * a direct write to the same bytes; {@code invalidatedBytes} clean data dropped by invalidate.
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
        long ksetsDamaged, long backingStalledMillis, String failure, long writebackZeroBytes,
        double dirtyPercent, int writebackTargetPercent, long writebackRateLimit, String writebackReason,
        String cacheMode, long sequentialCutoff, long directWrites, long directWriteBytes, long writethroughWrites,
        long dirtyRangeWrites, long sequentialBypassWrites, long sequentialBypassWriteBytes,
        long sequentialBypassReads, long fillsBypassed, long directWaits, long invalidatedBytes,
        long writebackWrittenBytes, long writebackLeftToNewerBytes, long ksetsReservedAhead) {

    /**
     * These figures with {@code earlier}'s counts added to every counter: the figures of a volume
     * served again in one process, whose earlier caches counted {@code earlier} (counters count
     * since the start of the server, and a Prometheus counter never goes backwards). The others —
     * sizes, dirty bytes, log positions, the last error, the replay of this open, the settings in
     * force — are this cache's. The counters are exactly those {@code admin.Metrics} exposes as
     * counters ({@code MetricsCountersTest} holds the two lists together).
     */
    public CacheStatus continuing(CacheStatus earlier) {
        CacheStatus e = earlier;
        return new CacheStatus(deviceSize, segmentSize, segmentsTotal, segmentsUsed, gcPercent, dataCrc,
                e.reads + reads, e.readBytes + readBytes, e.writes + writes, e.writeBytes + writeBytes,
                e.flushes + flushes, e.trims + trims,
                e.readHits + readHits, e.readPartialHits + readPartialHits, e.readMisses + readMisses,
                e.fillBytes + fillBytes, e.fillsSkipped + fillsSkipped,
                dirtyBytes, e.spaceWaits + spaceWaits, e.spaceWaitNanos + spaceWaitNanos, e.ksetsSealed + ksetsSealed,
                e.writebackBytes + writebackBytes, e.writebackKeys + writebackKeys,
                e.writebackBatches + writebackBatches, writebackPosition,
                e.backingErrors + backingErrors, e.backingRetries + backingRetries, lastBackingError,
                e.gcPasses + gcPasses, e.gcKsets + gcKsets, e.segmentsReclaimed + segmentsReclaimed,
                e.corruptKeysSkipped + corruptKeysSkipped, e.dataCrcErrors + dataCrcErrors,
                replayNanos, replayKsets, replayKeys,
                keyTail, dirtyTail, keyHead, writebackLagKsets,
                e.ksetsDamaged + ksetsDamaged, backingStalledMillis, failure, e.writebackZeroBytes + writebackZeroBytes,
                dirtyPercent, writebackTargetPercent, writebackRateLimit, writebackReason,
                cacheMode, sequentialCutoff, e.directWrites + directWrites, e.directWriteBytes + directWriteBytes,
                e.writethroughWrites + writethroughWrites,
                e.dirtyRangeWrites + dirtyRangeWrites, e.sequentialBypassWrites + sequentialBypassWrites,
                e.sequentialBypassWriteBytes + sequentialBypassWriteBytes,
                e.sequentialBypassReads + sequentialBypassReads, e.fillsBypassed + fillsBypassed,
                e.directWaits + directWaits, e.invalidatedBytes + invalidatedBytes,
                e.writebackWrittenBytes + writebackWrittenBytes, e.writebackLeftToNewerBytes + writebackLeftToNewerBytes,
                e.ksetsReservedAhead + ksetsReservedAhead);
    }
}
