package io.pmcache.format;

/**
 * A position in the key log: a segment, an offset in it, and the sequence number the kset there
 * must carry. Sequences grow by one per kset along the log, which is how a walk tells the live
 * log from stale ksets left in a reused segment.
 */
public record LogPosition(int segment, int offset, long ksetSeq) {

    boolean isWithin(Superblock sb) {
        return segment >= 0 && segment < sb.segmentCount() && offset >= 0 && offset <= sb.segmentSize()
                && ksetSeq > 0;
    }

    @Override
    public String toString() {
        return "segment " + segment + " offset " + offset + " (kset #" + ksetSeq + ")";
    }
}
