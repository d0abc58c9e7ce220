package io.pmcache.cache;

/**
 * Recognises streams of sequential I/O, as bcache's {@code check_should_bypass} does: a small
 * table of the most recent streams, each remembered by where it ends and how many bytes it has
 * run. An I/O starting where a stream ended continues it; any other I/O starts a new stream in the
 * least recently used entry. Requests of one stream that arrive a little out of order (pipelined
 * NBD requests) start new streams: the detector errs towards caching.
 */
final class SequentialDetector {
    static final int STREAMS = 16;
    private final long[] ends = new long[STREAMS];
    private final long[] runs = new long[STREAMS];
    private final long[] used = new long[STREAMS];
    private long tick;

    SequentialDetector() {
        java.util.Arrays.fill(ends, -1);
    }

    /** Records the I/O {@code [offset, offset + length)}; returns the length of its stream including it. */
    synchronized long record(long offset, long length) {
        tick++;
        int lru = 0;
        for (int i = 0; i < STREAMS; i++) {
            if (ends[i] == offset) {
                ends[i] = offset + length;
                runs[i] += length;
                used[i] = tick;
                return runs[i];
            }
            if (used[i] < used[lru]) {
                lru = i;
            }
        }
        ends[lru] = offset + length;
        runs[lru] = length;
        used[lru] = tick;
        return length;
    }
}
