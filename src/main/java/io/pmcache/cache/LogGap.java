package io.pmcache.cache;

import io.pmcache.format.KeyRecord;
import io.pmcache.format.Kset;
import io.pmcache.format.LogPosition;
import io.pmcache.format.SegmentInfo;

/**
 * A place in the key log that holds no valid kset although something proves that the log went
 * on there: damage, not the end of the log.
 *
 * <h2>Why the first invalid kset is not simply the end</h2>
 * A kset's header is persisted when it is reserved, one kset after the other under the head lock,
 * and sequences only grow; so a valid header carrying a later sequence, a little further on, can
 * only have been written after the missing one was. What counts as proof, in this order:
 * <ol>
 *   <li>a valid header carrying one of the next {@link #MAX_LOST} sequences further on in the
 *       same segment (the first one found), or at offset 0 of the segment it links to;</li>
 *   <li>the segment links onward (the head left it, so every kset in it was reserved), or slot 0
 *       of the missing kset holds a key that validates for its sequence (key CRCs are salted with
 *       the kset sequence and slot: bytes of an older kset never validate).</li>
 * </ol>
 * Without any of them the position is the end of the log. A valid header carrying the expected
 * sequence itself, at another offset after the previous kset's header, proves instead that the
 * previous kset's capacity was damaged (its header names a size it does not have): the walk
 * goes on there, and replay rewrites that header with the capacity the span gives
 * ({@link #previousCapacity}); keys of its slots the damaged capacity hid are lost.
 *
 * <h2>What can be recovered</h2>
 * With a continuation found, the missing ksets filled exactly the bytes before it (up to the
 * segment's last 0 or 64 bytes when it is in the next segment). One missing kset: its capacity
 * follows from that span, and its keys validate slot by slot ({@link #recoveredCapacity}); several:
 * their layout is unknown and their keys are lost, but sealed filler ksets with those sequences
 * can stand in their place ({@link #fillerCapacities}), so the log reads through again. Proof
 * without a continuation: the last kset's header was damaged; when slot 0 validates, its keys are
 * recovered with the capacity its valid slots need. Otherwise nothing after the gap can be
 * reached: the log ends there, and the rest is lost (reported).
 */
record LogGap(LogPosition at, LogPosition continuation, int recoveredCapacity, int[] fillerCapacities,
              String evidence, LogPosition previous, int previousCapacity) {
    /** How many missing sequences a search looks across. */
    static final int MAX_LOST = 1024;

    /** True when the walk can go on past the gap (a kset recovered, fillers possible, or the previous kset resized). */
    boolean passable() {
        return recoveredCapacity > 0 || fillerCapacities != null || previousCapacity > 0;
    }

    /** Ksets missing before the continuation (1 when only the one at {@code at}; 0 without a continuation). */
    long missing() {
        return continuation == null ? 0 : continuation.ksetSeq() - at.ksetSeq();
    }

    @Override
    public String toString() {
        String what = previousCapacity > 0 ? "so the header of kset #" + previous.ksetSeq() + " at " + previous
                + " names the wrong capacity; it has " + previousCapacity + " slots (keys it hid are lost)"
                : recoveredCapacity > 0 ? "its keys are recovered (capacity " + recoveredCapacity + ")"
                : fillerCapacities != null ? missing() + " ksets are lost (#" + at.ksetSeq() + "..#"
                        + (continuation.ksetSeq() - 1) + ")"
                : "the log cannot be read past it: every later kset is lost";
        return "no valid kset #" + at.ksetSeq() + " at " + at + ", but " + evidence + "; " + what;
    }

    /**
     * The gap at resolved position {@code at}, where {@link LogReader#read} found no valid kset
     * ({@code previous}: the kset the walk read before it, or null); null when nothing proves that
     * the log went on (the end of the log).
     */
    static LogGap find(LogReader reader, LogPosition at, LogReader.KsetAt previous) {
        long size = reader.segmentSize();
        int seg = at.segment();
        boolean after = previous != null && previous.at().segment() == seg && previous.at().offset() < at.offset();
        long from = after ? previous.at().offset() + Kset.MIN_BYTES : at.offset() + Kset.MIN_BYTES;
        for (long off = from; size - off >= Kset.MIN_BYTES; off += KeyRecord.SIZE) {
            long seq = off == at.offset() ? -1 : reader.headerSequence(seg, (int) off);
            if (seq == at.ksetSeq() && after) {
                long cap = (off - previous.at().offset() - Kset.HEADER_SIZE) / KeyRecord.SIZE;
                if (cap >= 1 && cap <= Kset.MAX_KEYS) {
                    LogPosition q = new LogPosition(seg, (int) off, seq);
                    return new LogGap(at, q, 0, null, "kset #" + seq + " starts at " + q, previous.at(), (int) cap);
                }
            }
            if (seq > at.ksetSeq() && seq <= at.ksetSeq() + MAX_LOST && off > at.offset()) {
                LogPosition q = new LogPosition(seg, (int) off, seq);
                return spanning(at, q, off - at.offset(), "kset #" + seq + " follows at " + q);
            }
        }
        int next = reader.next(seg);
        if (next != SegmentInfo.NO_NEXT) {
            long seq = reader.headerSequence(next, 0);
            long room = size - at.offset();
            if (seq > at.ksetSeq() && seq <= at.ksetSeq() + MAX_LOST) {
                LogPosition q = new LogPosition(next, 0, seq);
                String why = "kset #" + seq + " starts segment " + next + ", which segment " + seg + " links to";
                LogGap g = spanning(at, q, room, why);
                return g.passable() ? g : spanning(at, q, room - KeyRecord.SIZE, why);
            }
            return new LogGap(at, null, 0, null, "segment " + seg + " links on to segment " + next
                    + " (the log went on)", null, 0);
        }
        KeyRecord first = reader.key(reader.at(at, 1), 0);
        if (first != null) {
            int cap = (int) Math.min(Kset.MAX_KEYS, (size - at.offset() - Kset.HEADER_SIZE) / KeyRecord.SIZE);
            LogReader.KsetAt widest = reader.at(at, cap);
            int used = 1;
            for (int slot = 1; slot < cap; slot++) {
                if (!reader.slotEmpty(widest, slot) && reader.key(widest, slot) != null) {
                    used = slot + 1;
                }
            }
            return new LogGap(at, null, used, null, "slot 0 holds a valid key of kset #" + at.ksetSeq(), null, 0);
        }
        return null;
    }

    /** The gap when the missing ksets took exactly {@code bytes} from {@code at} to the continuation {@code q}. */
    private static LogGap spanning(LogPosition at, LogPosition q, long bytes, String evidence) {
        long n = q.ksetSeq() - at.ksetSeq();
        long slots = bytes / KeyRecord.SIZE - n; // each kset: one 64-byte header + its slots
        if (n == 1) {
            int cap = slots >= 1 && slots <= Kset.MAX_KEYS ? (int) slots : 0;
            return new LogGap(at, q, cap, cap > 0 ? new int[] {cap} : null, evidence, null, 0);
        }
        if (slots < n || slots > n * Kset.MAX_KEYS) {
            return new LogGap(at, q, 0, null, evidence, null, 0);
        }
        int[] caps = new int[(int) n];
        for (int i = 0; i < n; i++) {
            caps[i] = (int) (slots / n + (i < slots % n ? 1 : 0));
        }
        return new LogGap(at, q, 0, caps, evidence, null, 0);
    }
}
