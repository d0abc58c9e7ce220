package io.pmcache.cache;

import io.pmcache.backing.BackingDevice;
import io.pmcache.format.Superblock;
import io.pmcache.index.RangeIndex;
import io.pmcache.media.Medium;

/** The parts of an open cache, shared by the read and write paths and the background workers. */
final class Engine {
    final Medium medium;
    final BackingDevice backing;
    final Superblock superblock;
    final SegmentTable segments;
    final SegmentAllocator allocator;
    final RangeIndex index;
    final KeyLog keyLog;
    final LogReader reader;
    /** Whether a key is live and holds a segment reference: the one authority (see {@link KeyLiveness}). */
    final KeyLiveness liveness;
    final CacheInfoStore info;
    final DataHead[] heads;
    final CacheStats stats;
    /** Whether the cache has failed (a persist failed); decides for every path. */
    final FailState failure;
    /** The cache mode and the sequential cutoff: the one authority on how an I/O uses the cache. */
    final CachePolicy policy = new CachePolicy(CacheMode.WRITEBACK, 0);
    /** Direct writes in flight, which cached writes and reads of the same bytes wait for. */
    final InFlightDirect direct = new InFlightDirect();
    /** Where the client's latest FLUSH or FUA write lies in the key log (see {@link FlushBarriers}). */
    final FlushBarriers barriers;
    /** Called at named points of writeback and gc steps; tests install one to cut power there. */
    volatile StepHook hook = StepHook.NONE;

    Engine(Medium medium, BackingDevice backing, Superblock superblock, SegmentTable segments,
           SegmentAllocator allocator, RangeIndex index, KeyLog keyLog, LogReader reader, CacheInfoStore info,
           DataHead[] heads, CacheStats stats, FailState failure) {
        this.medium = medium;
        this.backing = backing;
        this.superblock = superblock;
        this.segments = segments;
        this.allocator = allocator;
        this.index = index;
        this.keyLog = keyLog;
        this.reader = reader;
        this.liveness = new KeyLiveness(reader, segments);
        this.info = info;
        this.heads = heads;
        this.stats = stats;
        this.failure = failure;
        this.barriers = new FlushBarriers(keyLog);
    }

    long cacheId() {
        return superblock.cacheId();
    }

    /** The data head for the calling thread: threads spread over heads, a thread sticks to one. */
    DataHead head() {
        return heads[(int) (Thread.currentThread().threadId() % heads.length)];
    }

    long address(int segment, long offset) {
        return segments.address(segment, offset);
    }
}
