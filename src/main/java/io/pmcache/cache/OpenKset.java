package io.pmcache.cache;

/**
 * A kset reserved in the log and not yet sealed. Guarded by its stream's lock until it is handed
 * to the sealer, then owned by the sealer.
 *
 * <p>Remembers where each key's data lives so that sealing can persist exactly that data first.
 */
final class OpenKset {
    final long seq;
    final int segment;
    final int offset;
    final int capacity;
    final long firstKeyNanos;
    int count;
    private final int[] dataSegment;
    private final int[] dataOffset;
    private final int[] dataLength;

    OpenKset(long seq, int segment, int offset, int capacity) {
        this.seq = seq;
        this.segment = segment;
        this.offset = offset;
        this.capacity = capacity;
        this.firstKeyNanos = System.nanoTime();
        this.dataSegment = new int[capacity];
        this.dataOffset = new int[capacity];
        this.dataLength = new int[capacity];
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
