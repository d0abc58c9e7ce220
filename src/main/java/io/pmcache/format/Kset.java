package io.pmcache.format;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import java.lang.foreign.MemorySegment;

/**
 * A kset: a group of up to {@link #MAX_KEYS} keys in the key log, reserved whole at the key head.
 *
 * <pre>
 * header (64 bytes, written and persisted once, when the kset is reserved)
 *  0   4 magic "KSET" (0x5445534b)
 *  4   8 header CRC32C of [8, 32), salted with the cache id
 *  8  16 sequence: one more than the previous kset of the log
 * 16  20 capacity: key slots reserved, 1..128
 * 20  24 stream: the kset stream (4 MiB range mod parallel) it belongs to
 * 24  32 reserved
 * seal (written last, when the kset is closed)
 * 32  36 seal magic "SEAL" (0x4c414553)
 * 36  40 seal CRC32C of [40, 64 + 64 count): the count word, the reserved bytes up to the first
 *        slot and the first count key slots; salted with cache id XOR sequence
 * 40  44 count: keys in the kset, 0..capacity
 * 44  48 reserved, 0 (written with the count: the seal's second 8-byte word)
 * 48  64 reserved, 0
 * slots
 * 64 + 64 i   {@link KeyRecord} i, for i in [0, capacity)
 * </pre>
 *
 * The kset occupies {@code 64 + 64 * capacity} bytes. The next kset starts right after it, unless
 * fewer than {@link #MIN_BYTES} bytes remain in the segment: then it starts at offset 0 of the
 * segment's {@link SegmentInfo#next() next} segment.
 *
 * <p>Life: reserved (header valid, no seal) → keys are stored into slots one by one, each with
 * its own CRC → sealed (data of all keys persisted, then slots, then the seal). An unsealed kset
 * found at replay (the process or the power died while it was open) is read slot by slot: a key
 * counts when its own CRC and its data CRC hold.
 */
public final class Kset {
    private Kset() {
    }

    public static final int MAGIC = 0x5445534b;
    public static final int SEAL_MAGIC = 0x4c414553;
    public static final int HEADER_SIZE = 64;
    public static final int MAX_KEYS = 128;
    public static final int MIN_BYTES = HEADER_SIZE + KeyRecord.SIZE;
    public static final int MAX_BYTES = HEADER_SIZE + MAX_KEYS * KeyRecord.SIZE;

    private static final int OFF_MAGIC = 0;
    private static final int OFF_HCRC = 4;
    private static final int OFF_SEQ = 8;
    private static final int OFF_CAP = 16;
    private static final int OFF_STREAM = 20;
    private static final int OFF_SEAL_MAGIC = 32;
    private static final int OFF_SEAL_CRC = 36;
    private static final int OFF_COUNT = 40;
    private static final int OFF_COUNT_RESERVED = 44;
    /** The header CRC covers [OFF_SEQ, OFF_SEAL_MAGIC): sequence, capacity, stream, reserved. */
    private static final int HEADER_CRC_LENGTH = OFF_SEAL_MAGIC - OFF_SEQ;

    public static int bytes(int capacity) {
        return HEADER_SIZE + capacity * KeyRecord.SIZE;
    }

    /** Offset of slot {@code i} relative to the kset. */
    public static int slotOffset(int i) {
        return HEADER_SIZE + i * KeyRecord.SIZE;
    }

    /** Writes a fresh header at {@code at}; clears the seal and every slot. */
    public static void writeHeader(MemorySegment medium, long at, long seq, int capacity, int stream, long cacheId) {
        MemorySegment k = medium.asSlice(at, bytes(capacity));
        k.fill((byte) 0);
        k.set(JAVA_INT_UNALIGNED, OFF_MAGIC, MAGIC);
        k.set(JAVA_LONG_UNALIGNED, OFF_SEQ, seq);
        k.set(JAVA_INT_UNALIGNED, OFF_CAP, capacity);
        k.set(JAVA_INT_UNALIGNED, OFF_STREAM, stream);
        k.set(JAVA_INT_UNALIGNED, OFF_HCRC, Crc.of(cacheId, k, OFF_SEQ, HEADER_CRC_LENGTH));
    }

    /**
     * The capacity of the kset at {@code at} when its header is valid, carries {@code expectedSeq}
     * and fits in the {@code room} bytes left in its segment; otherwise -1.
     */
    public static int validHeader(MemorySegment medium, long at, long room, long expectedSeq, long cacheId) {
        if (room < MIN_BYTES) {
            return -1;
        }
        if (medium.get(JAVA_INT_UNALIGNED, at + OFF_MAGIC) != MAGIC
                || medium.get(JAVA_INT_UNALIGNED, at + OFF_HCRC) != Crc.of(cacheId, medium, at + OFF_SEQ, HEADER_CRC_LENGTH)
                || medium.get(JAVA_LONG_UNALIGNED, at + OFF_SEQ) != expectedSeq) {
            return -1;
        }
        int cap = medium.get(JAVA_INT_UNALIGNED, at + OFF_CAP);
        if (cap < 1 || cap > MAX_KEYS || bytes(cap) > room) {
            return -1;
        }
        return cap;
    }

    /**
     * The sequence of a valid header at {@code at} (magic, CRC, capacity fitting in {@code room}),
     * whatever sequence it carries; -1 when there is none. For searching where the log goes on
     * after a damaged kset.
     */
    public static long headerSequence(MemorySegment medium, long at, long room, long cacheId) {
        if (room < MIN_BYTES || medium.get(JAVA_INT_UNALIGNED, at + OFF_MAGIC) != MAGIC) {
            return -1;
        }
        long seq = medium.get(JAVA_LONG_UNALIGNED, at + OFF_SEQ);
        return seq > 0 && validHeader(medium, at, room, seq, cacheId) > 0 ? seq : -1;
    }

    /**
     * Rewrites only the header fields [0, 32) of a kset whose header was damaged, leaving its seal
     * and slots as they are (replay, when the kset's extent is known from the kset after it).
     */
    public static void rewriteHeader(MemorySegment medium, long at, long seq, int capacity, long cacheId) {
        MemorySegment k = medium.asSlice(at, HEADER_SIZE);
        k.asSlice(0, 32).fill((byte) 0);
        k.set(JAVA_INT_UNALIGNED, OFF_MAGIC, MAGIC);
        k.set(JAVA_LONG_UNALIGNED, OFF_SEQ, seq);
        k.set(JAVA_INT_UNALIGNED, OFF_CAP, capacity);
        k.set(JAVA_INT_UNALIGNED, OFF_HCRC, Crc.of(cacheId, k, OFF_SEQ, HEADER_CRC_LENGTH));
    }

    /** Writes the seal for {@code count} keys (slots must already hold them). */
    public static void writeSeal(MemorySegment medium, long at, long seq, int count, long cacheId) {
        medium.set(JAVA_INT_UNALIGNED, at + OFF_COUNT, count);
        medium.set(JAVA_INT_UNALIGNED, at + OFF_COUNT_RESERVED, 0);
        medium.set(JAVA_INT_UNALIGNED, at + OFF_SEAL_CRC, sealCrc(medium, at, seq, count, cacheId));
        medium.set(JAVA_INT_UNALIGNED, at + OFF_SEAL_MAGIC, SEAL_MAGIC);
    }

    /** The sealed key count, or -1 when the kset has no valid seal (it was never closed). */
    public static int sealedCount(MemorySegment medium, long at, long seq, int capacity, long cacheId) {
        if (medium.get(JAVA_INT_UNALIGNED, at + OFF_SEAL_MAGIC) != SEAL_MAGIC) {
            return -1;
        }
        int count = medium.get(JAVA_INT_UNALIGNED, at + OFF_COUNT);
        if (count < 0 || count > capacity) {
            return -1;
        }
        if (medium.get(JAVA_INT_UNALIGNED, at + OFF_SEAL_CRC) != sealCrc(medium, at, seq, count, cacheId)) {
            return -1;
        }
        return count;
    }

    /**
     * True when the seal magic is present, whether or not the seal validates. A seal is written
     * only after every slot was persisted, so a kset with the magic but a failing seal had a torn
     * seal (power cut while sealing: its slots are intact) or damaged slots.
     */
    public static boolean hasSealMagic(MemorySegment medium, long at) {
        return medium.get(JAVA_INT_UNALIGNED, at + OFF_SEAL_MAGIC) == SEAL_MAGIC;
    }

    /**
     * The count a seal claims, whether or not the seal validates: -1 without the seal magic or with
     * a count outside {@code [0, capacity]}. The seal's two 8-byte words are written count first,
     * then magic and CRC: a torn seal (magic landed, count did not) claims 0, the count the header
     * left; a count above 0 next to the magic means the whole seal was written.
     */
    public static int claimedCount(MemorySegment medium, long at, int capacity) {
        if (!hasSealMagic(medium, at)) {
            return -1;
        }
        int count = medium.get(JAVA_INT_UNALIGNED, at + OFF_COUNT);
        return count >= 0 && count <= capacity ? count : -1;
    }

    private static int sealCrc(MemorySegment medium, long at, long seq, int count, long cacheId) {
        // [OFF_COUNT, slotOffset(count)): the count word, the reserved rest of the header, the slots
        return Crc.of(cacheId ^ seq, medium, at + OFF_COUNT, slotOffset(count) - OFF_COUNT);
    }

    /** Offset of the seal within a kset (for persisting it alone). */
    public static final int SEAL_OFFSET = OFF_SEAL_MAGIC;
    public static final int SEAL_SIZE = 16;
}
