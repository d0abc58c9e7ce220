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
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +---------------------------------------------------------------+
 * |                        sequence (8)                           |  0
 * +---------------------------------------------------------------+
 * |                      key tail: segment                        |  8
 * |                  key tail: offset in segment                  | 12
 * |             key tail: expected kset sequence (8)              | 16
 * +---------------------------------------------------------------+
 * |                     dirty tail: segment                       | 24
 * |                 dirty tail: offset in segment                 | 28
 * |            dirty tail: expected kset sequence (8)             | 32
 * +---------------------------------------------------------------+
 * |                      gc_percent (0..90)                       | 40
 * |          flags: bits 0-1 cache mode (0 writeback), rest 0     | 44
 * |        clean keys untrusted before kset sequence (8)          | 48
 * |                     reserved (4 bytes)                        | 56
 * |         CRC32C of bytes [0, 60), salted with the cache id     | 60
 * +---------------------------------------------------------------+
 * </pre>
 *
 * All integers little-endian. A tail is the position of the next kset to process and the
 * sequence that kset must carry. Invariants checked on decode: both tails lie within the segment
 * area, the dirty tail's kset sequence is not below the key tail's, gc_percent is 0..90, and the
 * sequence is one a two-slot record can carry ({@link Layout#isSlotSequence}), no unknown flag is
 * set and the untrusted-before sequence is not negative.
 *
 * <p>Cache mode and clean-untrusted position (both 0 on caches formatted before cache modes): the
 * mode is the operator's last choice ({@code io.pmcache.cache.CacheMode} ordinal); clean keys in
 * ksets with a sequence below {@code cleanUntrustedBefore} are not put into the index at replay,
 * because the backing device was written directly (bypassing the cache) after they were logged.
 */
public record CacheInfo(long sequence, LogPosition keyTail, LogPosition dirtyTail, int gcPercent, int cacheMode,
                        long cleanUntrustedBefore) {
    public static final int SIZE = 64;
    /** {@link #cacheMode} values 0..3 (writeback, writethrough, writearound, none); 0 on older caches. */
    public static final int CACHE_MODE_MASK = 3;
    /**
     * {@link #cleanUntrustedBefore}: every clean key of the log is untrusted (the backing device was
     * written directly while this cache was open, so a clean extent may be older than it).
     */
    public static final long CLEAN_UNTRUSTED_ALL = Long.MAX_VALUE;
    private static final int OFF_FLAGS = 44;
    private static final int OFF_CLEAN_UNTRUSTED = 48;
    private static final int OFF_SEQUENCE = 0;

    private static final int OFF_KEY_TAIL = 8;
    private static final int OFF_DIRTY_TAIL = 24;
    private static final int OFF_GC_PERCENT = 40;
    private static final int OFF_CRC = 60;
    /** A {@link LogPosition} field: segment (4), offset in segment (4), kset sequence (8). */
    private static final int POS_SEGMENT = 0;
    private static final int POS_OFFSET = 4;
    private static final int POS_KSET_SEQ = 8;

    public CacheInfo {
        if ((cacheMode & ~CACHE_MODE_MASK) != 0 || cleanUntrustedBefore < 0) {
            throw new IllegalArgumentException("cache mode " + cacheMode + ", clean untrusted before "
                    + cleanUntrustedBefore);
        }
    }

    /** Writeback mode, every clean key trusted (a fresh cache, and caches written before modes existed). */
    public CacheInfo(long sequence, LogPosition keyTail, LogPosition dirtyTail, int gcPercent) {
        this(sequence, keyTail, dirtyTail, gcPercent, 0, 0);
    }

    public void encode(MemorySegment medium, long slotOffset, long cacheId) {
        MemorySegment s = medium.asSlice(slotOffset, SIZE);
        s.fill((byte) 0);
        s.set(JAVA_LONG_UNALIGNED, OFF_SEQUENCE, sequence);
        putPosition(s, OFF_KEY_TAIL, keyTail);
        putPosition(s, OFF_DIRTY_TAIL, dirtyTail);
        s.set(JAVA_INT_UNALIGNED, OFF_GC_PERCENT, gcPercent);
        s.set(JAVA_INT_UNALIGNED, OFF_FLAGS, cacheMode);
        s.set(JAVA_LONG_UNALIGNED, OFF_CLEAN_UNTRUSTED, cleanUntrustedBefore);
        s.set(JAVA_INT_UNALIGNED, OFF_CRC, Crc.of(cacheId, s, 0, OFF_CRC));
    }

    /** Decodes one slot, or returns null when its CRC or a bound check fails. */
    public static CacheInfo decodeSlot(MemorySegment medium, long slotOffset, long cacheId, Superblock sb) {
        MemorySegment s = medium.asSlice(slotOffset, SIZE);
        if (s.get(JAVA_INT_UNALIGNED, OFF_CRC) != Crc.of(cacheId, s, 0, OFF_CRC)) {
            return null;
        }
        LogPosition key = getPosition(s, OFF_KEY_TAIL);
        LogPosition dirty = getPosition(s, OFF_DIRTY_TAIL);
        int gc = s.get(JAVA_INT_UNALIGNED, OFF_GC_PERCENT);
        long sequence = s.get(JAVA_LONG_UNALIGNED, OFF_SEQUENCE);
        int flags = s.get(JAVA_INT_UNALIGNED, OFF_FLAGS);
        long untrusted = s.get(JAVA_LONG_UNALIGNED, OFF_CLEAN_UNTRUSTED);
        if (!key.isWithin(sb) || !dirty.isWithin(sb) || gc < 0 || gc > 90
                || dirty.ksetSeq() < key.ksetSeq() || !Layout.isSlotSequence(sequence)
                || (flags & ~CACHE_MODE_MASK) != 0 || untrusted < 0) {
            return null;
        }
        return new CacheInfo(sequence, key, dirty, gc, flags, untrusted);
    }

    private static void putPosition(MemorySegment s, int at, LogPosition p) {
        s.set(JAVA_INT_UNALIGNED, at + POS_SEGMENT, p.segment());
        s.set(JAVA_INT_UNALIGNED, at + POS_OFFSET, p.offset());
        s.set(JAVA_LONG_UNALIGNED, at + POS_KSET_SEQ, p.ksetSeq());
    }

    private static LogPosition getPosition(MemorySegment s, int at) {
        return new LogPosition(s.get(JAVA_INT_UNALIGNED, at + POS_SEGMENT), s.get(JAVA_INT_UNALIGNED, at + POS_OFFSET),
                s.get(JAVA_LONG_UNALIGNED, at + POS_KSET_SEQ));
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
