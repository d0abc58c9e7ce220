package io.pmcache.format;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import java.lang.foreign.MemorySegment;

/**
 * Per-segment mutable state, two 32-byte slots per segment in the segment table (same two-slot
 * rule as {@link CacheInfo}).
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +---------------------------------------------------------------+
 * |                        sequence (8)                           |  0
 * +---------------------------------------------------------------+
 * |                       generation (8)                          |  8
 * +---------------------------------------------------------------+
 * |      next segment of the key log, or -1 (0xffffffff)          | 16
 * |                     flags (reserved, 0)                       | 20
 * |   CRC32C of [0, 24), salted with cache id and segment number  | 24
 * |                        reserved, 0                            | 28
 * +---------------------------------------------------------------+
 * </pre>
 *
 * All integers little-endian. The generation is bumped when the segment is reclaimed; keys
 * carrying an older generation are stale. The CRC's salt binds the slot to its segment, so a
 * slot copied to another segment's place never validates. Invariants checked on decode: next is
 * -1 or another segment of the cache, the generation is not negative, the sequence is one a
 * two-slot record can carry.
 */
public record SegmentInfo(long sequence, long generation, int next) {
    public static final int SLOT_SIZE = 32;
    public static final int NO_NEXT = -1;
    private static final int OFF_SEQUENCE = 0;
    private static final int OFF_GENERATION = 8;
    private static final int OFF_NEXT = 16;
    private static final int OFF_FLAGS = 20;
    private static final int OFF_CRC = 24;
    private static final int OFF_RESERVED = 28;

    public void encode(MemorySegment medium, int seg, int slot, long cacheId) {
        MemorySegment s = medium.asSlice(Layout.segmentInfoSlot(seg, slot), SLOT_SIZE);
        s.set(JAVA_LONG_UNALIGNED, OFF_SEQUENCE, sequence);
        s.set(JAVA_LONG_UNALIGNED, OFF_GENERATION, generation);
        s.set(JAVA_INT_UNALIGNED, OFF_NEXT, next);
        s.set(JAVA_INT_UNALIGNED, OFF_FLAGS, 0);
        s.set(JAVA_INT_UNALIGNED, OFF_RESERVED, 0);
        s.set(JAVA_INT_UNALIGNED, OFF_CRC, crc(s, seg, cacheId));
    }

    private static int crc(MemorySegment s, int seg, long cacheId) {
        return Crc.of(cacheId ^ ((long) seg * 0x9E3779B97F4A7C15L), s, 0, OFF_CRC);
    }

    /** Decodes one slot; null when the CRC or a bound fails. */
    public static SegmentInfo decodeSlot(MemorySegment medium, int seg, int slot, long cacheId, int segmentCount) {
        MemorySegment s = medium.asSlice(Layout.segmentInfoSlot(seg, slot), SLOT_SIZE);
        if (s.get(JAVA_INT_UNALIGNED, OFF_CRC) != crc(s, seg, cacheId)) {
            return null;
        }
        int next = s.get(JAVA_INT_UNALIGNED, OFF_NEXT);
        long gen = s.get(JAVA_LONG_UNALIGNED, OFF_GENERATION);
        long sequence = s.get(JAVA_LONG_UNALIGNED, OFF_SEQUENCE);
        if ((next != NO_NEXT && (next < 0 || next >= segmentCount || next == seg)) || gen < 0
                || !Layout.isSlotSequence(sequence)) {
            return null;
        }
        return new SegmentInfo(sequence, gen, next);
    }

    /**
     * True when {@code slot} fails to decode although it is not all zeros (a slot never written is
     * all zeros): a torn or damaged copy.
     */
    public static boolean slotDamaged(MemorySegment medium, int seg, int slot, long cacheId, int segmentCount) {
        if (decodeSlot(medium, seg, slot, cacheId, segmentCount) != null) {
            return false;
        }
        long at = Layout.segmentInfoSlot(seg, slot);
        return medium.asSlice(at, SLOT_SIZE).mismatch(ZEROS) >= 0;
    }

    private static final MemorySegment ZEROS = MemorySegment.ofArray(new byte[SLOT_SIZE]);

    /** The newest valid slot, or null when neither is valid. */
    public static SegmentInfo read(MemorySegment medium, int seg, long cacheId, int segmentCount) {
        SegmentInfo a = decodeSlot(medium, seg, 0, cacheId, segmentCount);
        SegmentInfo b = decodeSlot(medium, seg, 1, cacheId, segmentCount);
        if (a == null) {
            return b;
        }
        if (b == null) {
            return a;
        }
        return a.sequence >= b.sequence ? a : b;
    }

    /** Slot of a copy with this sequence (even: 0, odd: 1). */
    public static int slotFor(long sequence) {
        return (int) (sequence & 1);
    }
}
