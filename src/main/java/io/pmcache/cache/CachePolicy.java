package io.pmcache.cache;

import java.util.concurrent.atomic.LongAdder;

/**
 * The one authority on how an I/O uses the cache: the {@link CacheMode} and the sequential cutoff.
 * The read and write paths ask it; it knows nothing of how a route is carried out
 * ({@link DirectPath} does that, and keeps the cache and the backing device in agreement).
 *
 * <p>Writes: {@link Route#CACHE} in writeback, {@link Route#THROUGH} in writethrough,
 * {@link Route#AROUND} in writearound and none. The <em>sequential cutoff</em> (bcache's
 * {@code sequential_cutoff}; 0 = off): a write that makes its stream of sequential writes longer
 * than the cutoff goes {@link Route#AROUND} in writeback and writethrough too, and a read that
 * makes its stream of sequential reads longer than the cutoff is not filled into the cache, so a
 * backup or a copy does not push the hot data out. Zeroing and trimming follow the mode alone.
 */
final class CachePolicy {
    /** What a write does. */
    enum Route {
        /** Into the cache (dirty); written back later. */
        CACHE,
        /** To the backing device, then into the cache as clean data. */
        THROUGH,
        /** To the backing device; the cached data of its range dropped. */
        AROUND
    }

    private volatile CacheMode mode;
    private volatile long cutoff;
    private final SequentialDetector readStreams = new SequentialDetector();
    private final SequentialDetector writeStreams = new SequentialDetector();
    final LongAdder sequentialWrites = new LongAdder();
    final LongAdder sequentialWriteBytes = new LongAdder();
    final LongAdder sequentialReads = new LongAdder();
    final LongAdder sequentialReadBytes = new LongAdder();

    CachePolicy(CacheMode mode, long cutoff) {
        this.mode = java.util.Objects.requireNonNull(mode, "mode");
        setCutoff(cutoff);
    }

    CacheMode mode() {
        return mode;
    }

    void setMode(CacheMode m) {
        mode = java.util.Objects.requireNonNull(m, "mode");
    }

    long cutoff() {
        return cutoff;
    }

    void setCutoff(long bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("sequential cutoff " + bytes + " bytes: must be 0 (off) or more");
        }
        cutoff = bytes;
    }

    /** The route of a write of {@code [offset, offset + length)}. */
    Route write(long offset, long length) {
        CacheMode m = mode;
        if (m == CacheMode.WRITEAROUND || m == CacheMode.NONE) {
            return Route.AROUND;
        }
        long c = cutoff;
        if (c > 0 && writeStreams.record(offset, length) > c) {
            sequentialWrites.increment();
            sequentialWriteBytes.add(length);
            return Route.AROUND;
        }
        return m == CacheMode.WRITEBACK ? Route.CACHE : Route.THROUGH;
    }

    /** The route of a zeroing or a trim: the mode alone (they carry no data to keep out of the cache). */
    Route zero() {
        return switch (mode) {
            case WRITEBACK -> Route.CACHE;
            case WRITETHROUGH, WRITEAROUND, NONE -> Route.AROUND;
        };
    }

    /** Whether a read of {@code [offset, offset + length)} fills its misses into the cache. */
    boolean fillRead(long offset, long length) {
        if (!mode.fillsReads()) {
            return false;
        }
        long c = cutoff;
        if (c > 0 && readStreams.record(offset, length) > c) {
            sequentialReads.increment();
            sequentialReadBytes.add(length);
            return false;
        }
        return true;
    }
}
