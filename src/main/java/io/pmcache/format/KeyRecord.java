package io.pmcache.format;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

/**
 * A key: one extent of the logical device and where its data lives. 64 bytes, one cache line,
 * so that persisting a key never touches another.
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +---------------------------------------------------------------+
 * |                  logical offset, bytes (8)                    |  0
 * +---------------------------------------------------------------+
 * |                        length, bytes                          |  8
 * |               flags: DIRTY 1, ZERO 2, TOMBSTONE 4             | 12
 * |          segment holding the data (ignored for ZERO)          | 16
 * |                offset of the data in that segment             | 20
 * |          segment generation when the data was written (8)     | 24
 * +---------------------------------------------------------------+
 * |                 CRC32C of the data (0 for ZERO)               | 32
 * |                     reserved, 0 (24 bytes)                    | 36
 * | key CRC32C of [0, 60), salted: cache id, kset sequence, slot  | 60
 * +---------------------------------------------------------------+
 * </pre>
 *
 * All integers little-endian. Length is 1..4 MiB and never crosses a 4 MiB range boundary. DIRTY:
 * not yet on the backing device; ZERO: reads as zeros, no data; TOMBSTONE: a key found damaged by
 * an earlier open, which holds nothing (see below).
 *
 * The key CRC binds the key to its kset incarnation: bytes left in a reused log segment by an
 * older kset never validate. A slot that is all zeros is an unused slot.
 *
 * <p>A TOMBSTONE is written by replay in place of a key it found damaged, so that the damage stays
 * on record (every later open and check reports it, until gc passes the kset) and so that no walker
 * of the log ever takes the key for live: it references no segment and reads as nothing. With a
 * length, it is the original key whose data failed its CRC (offset, length and segment say what was
 * lost); with length 0, it stands for a key or a whole kset that could not be read at all.
 */
public record KeyRecord(long offset, int length, int flags, int segment, int segmentOffset, long generation,
                        int dataCrc) {
    public static final int SIZE = 64;
    public static final int FLAG_DIRTY = 1;
    public static final int FLAG_ZERO = 2;
    public static final int FLAG_TOMBSTONE = 4;
    public static final int FLAGS_KNOWN = FLAG_DIRTY | FLAG_ZERO | FLAG_TOMBSTONE;
    private static final int OFF_OFFSET = 0;
    private static final int OFF_LENGTH = 8;
    private static final int OFF_FLAGS = 12;
    private static final int OFF_SEGMENT = 16;
    private static final int OFF_SEGMENT_OFFSET = 20;
    private static final int OFF_GENERATION = 24;
    private static final int OFF_DATA_CRC = 32;
    private static final int OFF_CRC = 60;

    public boolean dirty() {
        return (flags & FLAG_DIRTY) != 0;
    }

    public boolean zero() {
        return (flags & FLAG_ZERO) != 0;
    }

    public boolean tombstone() {
        return (flags & FLAG_TOMBSTONE) != 0;
    }

    /** This key, marked lost: what replay writes in place of a key whose data failed its CRC. */
    public KeyRecord asTombstone() {
        return new KeyRecord(offset, length, flags | FLAG_TOMBSTONE, segment, segmentOffset, generation, dataCrc);
    }

    /** The tombstone of a key (or kset) that could not be read at all. */
    public static KeyRecord lostTombstone() {
        return new KeyRecord(0, 0, FLAG_TOMBSTONE, 0, 0, 0, 0);
    }

    public long end() {
        return offset + length;
    }

    /**
     * Encodes into the 64 bytes at {@code at}. The key is assembled on the heap behind its CRC salt,
     * checksummed there in one pass and stored with one copy: the same bytes as writing each field
     * into the medium and checksumming it there, without a slice and buffer view of the (shared)
     * medium per key.
     */
    public void encode(MemorySegment medium, long at, long cacheId, long ksetSeq, int slot) {
        encode(medium, at, cacheId, ksetSeq, slot, offset, length, flags, segment, segmentOffset, generation, dataCrc);
    }

    /** {@link #encode(MemorySegment, long, long, long, int)} of the key with these fields, without the record. */
    public static void encode(MemorySegment medium, long at, long cacheId, long ksetSeq, int slot, long offset,
                              int length, int flags, int segment, int segmentOffset, long generation, int dataCrc) {
        Scratch scratch = SCRATCH.get();
        byte[] buf = scratch.buf;
        MemorySegment k = scratch.segment;
        k.set(SALT_LAYOUT, 0, cacheId ^ (ksetSeq * 131 + slot));
        k.set(JAVA_LONG_UNALIGNED, SALT + OFF_OFFSET, offset);
        k.set(JAVA_INT_UNALIGNED, SALT + OFF_LENGTH, length);
        k.set(JAVA_INT_UNALIGNED, SALT + OFF_FLAGS, flags);
        k.set(JAVA_INT_UNALIGNED, SALT + OFF_SEGMENT, segment);
        k.set(JAVA_INT_UNALIGNED, SALT + OFF_SEGMENT_OFFSET, segmentOffset);
        k.set(JAVA_LONG_UNALIGNED, SALT + OFF_GENERATION, generation);
        k.set(JAVA_INT_UNALIGNED, SALT + OFF_DATA_CRC, dataCrc);
        // reserved up to OFF_CRC: zero (never written in the scratch buffer)
        CRC32C crc = scratch.crc;
        crc.reset();
        crc.update(buf, 0, SALT + OFF_CRC);
        k.set(JAVA_INT_UNALIGNED, SALT + OFF_CRC, (int) crc.getValue());
        MemorySegment.copy(k, SALT, medium, at, SIZE);
    }

    /** {@link #encode}'s per-thread buffer, its segment view and CRC: a key is encoded without allocating. */
    private static final class Scratch {
        final byte[] buf = new byte[SALT + SIZE];
        final MemorySegment segment = MemorySegment.ofArray(buf);
        final CRC32C crc = new CRC32C();
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);
    private static final ThreadLocal<Scratch> DECODE_SCRATCH = ThreadLocal.withInitial(Scratch::new);

    /** The CRC salt precedes the key in {@link #encode}'s buffer, little-endian as {@link Crc#of} feeds it. */
    private static final int SALT = 8;
    private static final ValueLayout.OfLong SALT_LAYOUT = JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** True when the 64 bytes at {@code at} are all zero (a slot never written). */
    public static boolean isEmptySlot(MemorySegment medium, long at) {
        for (int i = 0; i < SIZE; i += 8) {
            if (medium.get(JAVA_LONG_UNALIGNED, at + i) != 0) {
                return false;
            }
        }
        return true;
    }

    /**
     * Decodes and bounds-checks the key at {@code at}; null when its CRC fails or a field is out of
     * bounds for this cache (device size, segment count and size).
     */
    public static KeyRecord decode(MemorySegment medium, long at, long cacheId, long ksetSeq, int slot,
                                   long deviceSize, int segmentCount, long segmentSize) {
        // The key is copied behind its CRC salt into a per-thread buffer and checked there in one
        // pass: the same bytes as Crc.of over the medium, without a slice, a buffer view and a
        // CRC32C per key (replay decodes every key of the log). Not encode's buffer: that one
        // relies on its reserved bytes staying zero.
        Scratch scratch = DECODE_SCRATCH.get();
        MemorySegment k = scratch.segment;
        k.set(SALT_LAYOUT, 0, cacheId ^ (ksetSeq * 131 + slot));
        MemorySegment.copy(medium, at, k, SALT, SIZE);
        CRC32C crc = scratch.crc;
        crc.reset();
        crc.update(scratch.buf, 0, SALT + OFF_CRC);
        if (k.get(JAVA_INT_UNALIGNED, SALT + OFF_CRC) != (int) crc.getValue()) {
            return null;
        }
        KeyRecord r = new KeyRecord(k.get(JAVA_LONG_UNALIGNED, SALT + OFF_OFFSET),
                k.get(JAVA_INT_UNALIGNED, SALT + OFF_LENGTH), k.get(JAVA_INT_UNALIGNED, SALT + OFF_FLAGS),
                k.get(JAVA_INT_UNALIGNED, SALT + OFF_SEGMENT), k.get(JAVA_INT_UNALIGNED, SALT + OFF_SEGMENT_OFFSET),
                k.get(JAVA_LONG_UNALIGNED, SALT + OFF_GENERATION), k.get(JAVA_INT_UNALIGNED, SALT + OFF_DATA_CRC));
        return r.inBounds(deviceSize, segmentCount, segmentSize) ? r : null;
    }

    boolean inBounds(long deviceSize, int segmentCount, long segmentSize) {
        if (tombstone()) {
            return (flags & ~FLAGS_KNOWN) == 0 && length >= 0 && length <= Layout.RANGE_SIZE && offset >= 0
                    && offset <= deviceSize - length;
        }
        if (length <= 0 || length > Layout.RANGE_SIZE || offset < 0 || offset > deviceSize - length) {
            return false;
        }
        if ((offset >>> Layout.RANGE_SHIFT) != ((offset + length - 1) >>> Layout.RANGE_SHIFT)) {
            return false;
        }
        if ((flags & ~FLAGS_KNOWN) != 0) {
            return false;
        }
        if (zero()) {
            return true;
        }
        return segment >= 0 && segment < segmentCount && segmentOffset >= 0
                && (long) segmentOffset + length <= segmentSize && generation >= 0;
    }
}
