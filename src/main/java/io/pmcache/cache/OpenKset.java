package io.pmcache.cache;

/**
 * A kset reserved in the log and not yet sealed. Guarded by its stream's lock until it is handed
 * to the sealer, then owned by the sealer.
 *
 * <p>Remembers where each key's data lives so that sealing can persist exactly that data first.
 * Once sealed, the key log reuses the object (and its arrays) for a later kset ({@link #reset}):
 * a kset's worth of arrays per 128 writes was most of what a 4 KiB write still allocated. The
 * fields are handed between threads only through locks and queues.
 */
final class OpenKset {
    long seq;
    int segment;
    int offset;
    int capacity;
    long firstKeyNanos;
    int count;
    private int[] dataSegment;
    private int[] dataOffset;
    private int[] dataLength;

    OpenKset(long seq, int segment, int offset, int capacity) {
        this.dataSegment = new int[0];
        reset(seq, segment, offset, capacity);
    }

    /** Makes this a fresh, empty kset (an object no one else refers to any more). */
    void reset(long seq, int segment, int offset, int capacity) {
        this.seq = seq;
        this.segment = segment;
        this.offset = offset;
        this.capacity = capacity;
        this.firstKeyNanos = System.nanoTime();
        this.count = 0;
        if (dataSegment.length < capacity) {            // sized for the largest kset: reusable for any
            int n = Math.max(capacity, io.pmcache.format.Kset.MAX_KEYS);
            dataSegment = new int[n];
            dataOffset = new int[n];
            dataLength = new int[n];
        }
    }

    boolean full() {
        return count == capacity;
    }

    /** Records key {@code count}'s data location (length 0 for keys without data). */
    void recordData(int seg, int off, int len) {
        dataSegment[count] = seg;
        dataOffset[count] = off;
        dataLength[count] = len;
    }

    int dataSegment(int i) {
        return dataSegment[i];
    }

    int dataOffset(int i) {
        return dataOffset[i];
    }

    int dataLength(int i) {
        return dataLength[i];
    }
}
