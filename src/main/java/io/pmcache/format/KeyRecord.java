package io.pmcache.format;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
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

    /** The CRC salt precedes the key in {@link #encode}'s buffer, little-endian as {@link Crc#of} feeds it. */
    private static final int SALT = 8;
    private static final ValueLayout.OfLong SALT_LAYOUT = JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle SALT_LONG = MethodHandles.byteArrayViewVarHandle(long[].class,
            ByteOrder.LITTLE_ENDIAN);

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
        Reader r = DECODE_READER.get();
        return r.decode(medium, at, cacheId, ksetSeq, slot, deviceSize, segmentCount, segmentSize) ? r.toRecord()
                : null;
    }

    private static final ThreadLocal<Reader> DECODE_READER = ThreadLocal.withInitial(Reader::new);

    /**
     * Reads keys without allocating: the slot's 64 bytes are copied once behind the CRC salt into
     * this reader's buffer, checked there (all zeros; key CRC in one CRC32C pass; bounds) and the
     * fields left here for the caller. The same bytes and the same result as {@link #isEmptySlot}
     * followed by {@link #decode} (those use it). One reader per thread; the fields are valid until
     * its next read.
     */
    public static final class Reader {
        private final byte[] buf = new byte[SALT + SIZE];
        private final MemorySegment k = MemorySegment.ofArray(buf);
        private final CRC32C crc = new CRC32C();
        /** The buffer's longs and ints in the byte order of {@code JAVA_LONG_UNALIGNED}/{@code JAVA_INT_UNALIGNED}. */
        private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class,
                ByteOrder.nativeOrder());
        private static final VarHandle INTS = MethodHandles.byteArrayViewVarHandle(int[].class,
                ByteOrder.nativeOrder());
        private long offset;
        private int length;
        private int flags;
        private int segment;
        private int segmentOffset;
        private long generation;
        private int dataCrc;

        /** What {@link #read} found in a slot. */
        public static final int EMPTY = 0;
        public static final int INVALID = 1;
        public static final int VALID = 2;

        /**
         * Reads the slot at {@code at}: {@link #EMPTY} when its 64 bytes are all zero, {@link #INVALID}
         * when it fails its CRC or a bounds check ({@link #decode} returns null), else {@link #VALID}
         * with the key's fields here.
         */
        public int read(MemorySegment medium, long at, long cacheId, long ksetSeq, int slot, long deviceSize,
                        int segmentCount, long segmentSize) {
            MemorySegment.copy(medium, at, k, SALT, SIZE);
            return judgeCopy(cacheId, ksetSeq, slot, deviceSize, segmentCount, segmentSize);
        }

        /** The slots of the kset {@link #windowTag} names, copied from the medium at once; null: none yet. */
        private byte[] window = new byte[0];
        private Object windowTag;

        /**
         * {@link #read} of slot {@code slot} of the {@code slots} consecutive slots at {@code base},
         * which are copied from the medium together on the first read for a new {@code tag} (one
         * copy per kset instead of one per key). Only for a walk where nothing writes those slots
         * until it reads another tag's (replay); the same bytes as {@link #read} then.
         */
        public int readInWindow(Object tag, MemorySegment medium, long base, int slots, int slot, long cacheId,
                                long ksetSeq, long deviceSize, int segmentCount, long segmentSize) {
            if (tag != windowTag || slot >= slots) {
                if (window.length < slots * SIZE) {
                    window = new byte[Math.max(slots * SIZE, 2 * window.length)];
                }
                windowTag = null;
                MemorySegment.copy(medium, java.lang.foreign.ValueLayout.JAVA_BYTE, base, window, 0, slots * SIZE);
                windowTag = tag;
            }
            System.arraycopy(window, slot * SIZE, buf, SALT, SIZE);
            return judgeCopy(cacheId, ksetSeq, slot, deviceSize, segmentCount, segmentSize);
        }

        /** The slot is in {@link #buf} behind its salt: EMPTY, INVALID or VALID with its fields here. */
        private int judgeCopy(long cacheId, long ksetSeq, int slot, long deviceSize, int segmentCount,
                              long segmentSize) {
            byte[] b = buf;
            long any = 0;
            for (int i = SALT; i < SALT + SIZE; i += 8) {
                any |= (long) LONGS.get(b, i);
            }
            if (any == 0) {
                return EMPTY;
            }
            return check(cacheId, ksetSeq, slot, deviceSize, segmentCount, segmentSize) ? VALID : INVALID;
        }

        boolean decode(MemorySegment medium, long at, long cacheId, long ksetSeq, int slot, long deviceSize,
                       int segmentCount, long segmentSize) {
            MemorySegment.copy(medium, at, k, SALT, SIZE);
            return check(cacheId, ksetSeq, slot, deviceSize, segmentCount, segmentSize);
        }

        private boolean check(long cacheId, long ksetSeq, int slot, long deviceSize, int segmentCount,
                              long segmentSize) {
            byte[] b = buf;
            SALT_LONG.set(b, 0, cacheId ^ (ksetSeq * 131 + slot));
            crc.reset();
            crc.update(b, 0, SALT + OFF_CRC);
            if ((int) INTS.get(b, SALT + OFF_CRC) != (int) crc.getValue()) {
                return false;
            }
            offset = (long) LONGS.get(b, SALT + OFF_OFFSET);
            length = (int) INTS.get(b, SALT + OFF_LENGTH);
            flags = (int) INTS.get(b, SALT + OFF_FLAGS);
            segment = (int) INTS.get(b, SALT + OFF_SEGMENT);
            segmentOffset = (int) INTS.get(b, SALT + OFF_SEGMENT_OFFSET);
            generation = (long) LONGS.get(b, SALT + OFF_GENERATION);
            dataCrc = (int) INTS.get(b, SALT + OFF_DATA_CRC);
            return inBounds(offset, length, flags, segment, segmentOffset, generation, deviceSize, segmentCount,
                    segmentSize);
        }

        /** The key last read, as a record. */
        public KeyRecord toRecord() {
            return new KeyRecord(offset, length, flags, segment, segmentOffset, generation, dataCrc);
        }

        public long offset() {
            return offset;
        }

        public int length() {
            return length;
        }

        public int flags() {
            return flags;
        }

        public int segment() {
            return segment;
        }

        public int segmentOffset() {
            return segmentOffset;
        }

        public long generation() {
            return generation;
        }

        public int dataCrc() {
            return dataCrc;
        }

        public boolean dirty() {
            return (flags & FLAG_DIRTY) != 0;
        }

        public boolean zero() {
            return (flags & FLAG_ZERO) != 0;
        }

        public boolean tombstone() {
            return (flags & FLAG_TOMBSTONE) != 0;
        }
    }

    private static boolean inBounds(long offset, int length, int flags, int segment, int segmentOffset,
                                    long generation, long deviceSize, int segmentCount, long segmentSize) {
        if ((flags & FLAG_TOMBSTONE) != 0) {
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
        if ((flags & FLAG_ZERO) != 0) {
            return true;
        }
        return segment >= 0 && segment < segmentCount && segmentOffset >= 0
                && (long) segmentOffset + length <= segmentSize && generation >= 0;
    }
}
