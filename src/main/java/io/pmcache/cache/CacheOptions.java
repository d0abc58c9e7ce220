package io.pmcache.cache;

/**
 * Run-time options of an open cache (not stored on the medium, except gc_percent).
 *
 * @param parallel   number of data heads and key-set streams, 1..128; {@code parallel * 4} must not
 *                   exceed the segment count. Or {@link #PARALLEL_AUTO} (the default): see
 *                   {@link #parallelFor}
 * @param gcPercent  start gc when this percentage of segments is used, 0..90, or -1 to keep the
 *                   value stored on the medium (70 on a fresh cache)
 * @param writeback  run the background writeback worker
 * @param gc         run the background garbage collector
 */
public record CacheOptions(int parallel, int gcPercent, boolean writeback, boolean gc) {
    public static final int PARALLEL_MAX = 128;
    /** Choose {@code parallel} from the cache's segment count ({@link #parallelFor}). */
    public static final int PARALLEL_AUTO = 0;
    /** The automatic {@code parallel} on a cache with enough segments. */
    public static final int PARALLEL_DEFAULT = 4;
    public static final int SEGMENTS_PER_HEAD = 4;
    public static final int GC_PERCENT_MIN = 0;
    public static final int GC_PERCENT_MAX = 90;
    public static final int GC_PERCENT_DEFAULT = 70;

    public CacheOptions {
        if (parallel != PARALLEL_AUTO) {
            checkParallel(parallel);
        }
        if (gcPercent != -1) {
            checkGcPercent(gcPercent);
        }
    }

    /** Defaults: automatic parallel (4, fewer on small caches), stored gc_percent, writeback and gc running. */
    public static CacheOptions defaults() {
        return new CacheOptions(PARALLEL_AUTO, -1, true, true);
    }

    /**
     * The number of data heads for a cache of {@code segments} segments: the one given, or
     * automatically {@value #PARALLEL_DEFAULT}, fewer when the cache has fewer than
     * {@code 4 * SEGMENTS_PER_HEAD} segments (at least 1). An explicit value is not lowered: a
     * cache too small for it is refused at open.
     */
    public int parallelFor(int segments) {
        if (parallel != PARALLEL_AUTO) {
            return parallel;
        }
        return Math.max(1, Math.min(PARALLEL_DEFAULT, segments / SEGMENTS_PER_HEAD));
    }

    public static void checkParallel(int p) {
        if (p < 1 || p > PARALLEL_MAX) {
            throw new IllegalArgumentException("parallel must be 1.." + PARALLEL_MAX + ", got " + p);
        }
    }

    public CacheOptions withParallel(int p) {
        return new CacheOptions(p, gcPercent, writeback, gc);
    }

    public CacheOptions withGcPercent(int p) {
        return new CacheOptions(parallel, p, writeback, gc);
    }

    public CacheOptions withWriteback(boolean on) {
        return new CacheOptions(parallel, gcPercent, on, gc);
    }

    public CacheOptions withGc(boolean on) {
        return new CacheOptions(parallel, gcPercent, writeback, on);
    }

    public static void checkGcPercent(int p) {
        if (p < GC_PERCENT_MIN || p > GC_PERCENT_MAX) {
            throw new IllegalArgumentException(
                    "gc_percent must be " + GC_PERCENT_MIN + ".." + GC_PERCENT_MAX + ", got " + p);
        }
    }
}
