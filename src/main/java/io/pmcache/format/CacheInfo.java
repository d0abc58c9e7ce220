package io.pmcache.format;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import java.lang.foreign.MemorySegment;

/**
 * The cache's mutable state: the two log tails and gc_percent. Kept in two slots
 * ({@link Layout#CACHE_INFO_SLOT0}, {@link Layout#CACHE_INFO_SLOT1}); a writer always writes the
 * slot that does not hold the newest valid copy, with sequence number newest + 1, so a torn write
 * leaves the previous copy intact. A reader takes the valid slot with the highest sequence.
 *
 * <pre>
 *  0       8 sequence (8)
 *  8      12 key tail: segment
 * 12      16 key tail: offset in segment
 * 16      24 key tail: expected kset sequence
 * 24      28 dirty tail: segment
 * 28      32 dirty tail: offset in segment
 * 32      40 dirty tail: expected kset sequence
 * 40      44 gc_percent (0..90)
 * 44      48 flags (reserved, 0)
 * 48      60 reserved
 * 60      64 CRC32C of [0, 60), salted with the cache id
 * </pre>
 *
 * A tail is the position of the next kset to process and the sequence that kset must carry.
 */
public record CacheInfo(long sequence, LogPosition keyTail, LogPosition dirtyTail, int gcPercent) {
    public static final int SIZE = 64;
    private static final int OFF_CRC = 60;

    public void encode(MemorySegment medium, long slotOffset, long cacheId) {
        MemorySegment s = medium.asSlice(slotOffset, SIZE);
        s.fill((byte) 0);
        s.set(JAVA_LONG_UNALIGNED, 0, sequence);
        s.set(JAVA_INT_UNALIGNED, 8, keyTail.segment());
        s.set(JAVA_INT_UNALIGNED, 12, keyTail.offset());
        s.set(JAVA_LONG_UNALIGNED, 16, keyTail.ksetSeq());
        s.set(JAVA_INT_UNALIGNED, 24, dirtyTail.segment());
        s.set(JAVA_INT_UNALIGNED, 28, dirtyTail.offset());
        s.set(JAVA_LONG_UNALIGNED, 32, dirtyTail.ksetSeq());
        s.set(JAVA_INT_UNALIGNED, 40, gcPercent);
        s.set(JAVA_INT_UNALIGNED, OFF_CRC, Crc.of(cacheId, s, 0, OFF_CRC));
    }

    /** Decodes one slot, or returns null when its CRC or a bound check fails. */
    public static CacheInfo decodeSlot(MemorySegment medium, long slotOffset, long cacheId, Superblock sb) {
        MemorySegment s = medium.asSlice(slotOffset, SIZE);
        if (s.get(JAVA_INT_UNALIGNED, OFF_CRC) != Crc.of(cacheId, s, 0, OFF_CRC)) {
            return null;
        }
        LogPosition key = new LogPosition(s.get(JAVA_INT_UNALIGNED, 8), s.get(JAVA_INT_UNALIGNED, 12),
                s.get(JAVA_LONG_UNALIGNED, 16));
        LogPosition dirty = new LogPosition(s.get(JAVA_INT_UNALIGNED, 24), s.get(JAVA_INT_UNALIGNED, 28),
                s.get(JAVA_LONG_UNALIGNED, 32));
        int gc = s.get(JAVA_INT_UNALIGNED, 40);
        long sequence = s.get(JAVA_LONG_UNALIGNED, 0);
        if (!key.isWithin(sb) || !dirty.isWithin(sb) || gc < 0 || gc > 90
                || dirty.ksetSeq() < key.ksetSeq() || !Layout.isSlotSequence(sequence)) {
            return null;
        }
        return new CacheInfo(sequence, key, dirty, gc);
    }

    /** Reads the newest valid slot; both invalid is corruption. */
    public static CacheInfo read(MemorySegment medium, long cacheId, Superblock sb, String where)
            throws MediaCorruptException {
        CacheInfo a = decodeSlot(medium, Layout.CACHE_INFO_SLOT0, cacheId, sb);
        CacheInfo b = decodeSlot(medium, Layout.CACHE_INFO_SLOT1, cacheId, sb);
        if (a == null && b == null) {
            throw new MediaCorruptException(where + ": both cache-info slots (at " + Layout.CACHE_INFO_SLOT0
                    + " and " + Layout.CACHE_INFO_SLOT1 + ") fail their CRC or bounds check");
        }
        if (a == null) {
            return b;
        }
        if (b == null) {
            return a;
        }
        return a.sequence >= b.sequence ? a : b;
    }

    /** The slot the successor of this copy goes to: the one this copy is not in. */
    public static long slotFor(long sequence) {
        return (sequence & 1) == 0 ? Layout.CACHE_INFO_SLOT0 : Layout.CACHE_INFO_SLOT1;
    }
}
