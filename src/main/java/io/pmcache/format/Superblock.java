package io.pmcache.format;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import java.lang.foreign.MemorySegment;

/**
 * The superblock: immutable facts about a cache, written once by format at offset 0.
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +---------------------------------------------------------------+
 * |                     magic "PMCACHE\0" (8)                     |  0
 * +---------------------------------------------------------------+
 * |                        format version                         |  8
 * |                 flags (bit 0: verify data CRC)                | 12
 * |                      segment size (8)                         | 16
 * |                        segment count                          | 24
 * |                          reserved                             | 28
 * |                    segment area offset (8)                    | 32
 * |                     backing size (8)                          | 40
 * |                  backing fingerprint (8)                      | 48
 * |                        cache id (8)                           | 56
 * |                  created, ms since epoch (8)                  | 64
 * |                       medium size (8)                         | 72
 * |                      reserved (44 bytes)                      | 80
 * |                  CRC32C of bytes [0, 124)                     | 124
 * +---------------------------------------------------------------+
 * </pre>
 *
 * All integers little-endian. The superblock is the last thing format writes and persists, so a
 * torn format is never mistaken for a cache. Invariants checked on decode: segment size is a power
 * of two in [1 MiB, 1 GiB]; at least {@link #MIN_SEGMENT_COUNT} segments; the segment area starts
 * at {@link Layout#segmentAreaOffset} for the count and ends within the medium, and within the
 * medium size recorded at format (which is at most the medium's size now).
 */
public record Superblock(int version, int flags, long segmentSize, int segmentCount, long segmentAreaOffset,
                         long backingSize, long backingFingerprint, long cacheId, long createdMillis,
                         long mediumSize) {

    public static final long MAGIC = 0x0045484341434d50L; // "PMCACHE\0" little-endian
    public static final int VERSION = 1;
    public static final int FLAG_DATA_CRC = 1;
    public static final int FLAGS_KNOWN = FLAG_DATA_CRC;
    public static final int SIZE = 128;
    public static final long MIN_SEGMENT_SIZE = 1L << 20;
    public static final long MAX_SEGMENT_SIZE = 1L << 30;
    public static final long DEFAULT_SEGMENT_SIZE = 16L << 20;
    /** Format refuses media with fewer segments: one data head's worth (CacheOptions.SEGMENTS_PER_HEAD). */
    public static final int MIN_SEGMENT_COUNT = 4;

    private static final int OFF_MAGIC = 0; // where LeadRecord reads the magic
    private static final int OFF_VERSION = 8;
    private static final int OFF_FLAGS = 12;
    private static final int OFF_SEG_SIZE = 16;
    private static final int OFF_SEG_COUNT = 24;
    private static final int OFF_SEG_AREA = 32;
    private static final int OFF_BACKING_SIZE = 40;
    private static final int OFF_BACKING_FP = 48;
    private static final int OFF_CACHE_ID = 56;
    private static final int OFF_CREATED = 64;
    private static final int OFF_MEDIUM_SIZE = 72;
    private static final int OFF_CRC = 124;

    public boolean dataCrc() {
        return (flags & FLAG_DATA_CRC) != 0;
    }

    /** True when the first 8 bytes carry the pmcache magic (the rest may still be corrupt). */
    public static boolean hasMagic(MemorySegment medium) {
        return LeadRecord.hasMagic(medium, MAGIC, SIZE);
    }

    public void encode(MemorySegment medium) {
        medium.asSlice(0, SIZE).fill((byte) 0);
        medium.set(JAVA_LONG_UNALIGNED, OFF_MAGIC, MAGIC);
        medium.set(JAVA_INT_UNALIGNED, OFF_VERSION, version);
        medium.set(JAVA_INT_UNALIGNED, OFF_FLAGS, flags);
        medium.set(JAVA_LONG_UNALIGNED, OFF_SEG_SIZE, segmentSize);
        medium.set(JAVA_INT_UNALIGNED, OFF_SEG_COUNT, segmentCount);
        medium.set(JAVA_LONG_UNALIGNED, OFF_SEG_AREA, segmentAreaOffset);
        medium.set(JAVA_LONG_UNALIGNED, OFF_BACKING_SIZE, backingSize);
        medium.set(JAVA_LONG_UNALIGNED, OFF_BACKING_FP, backingFingerprint);
        medium.set(JAVA_LONG_UNALIGNED, OFF_CACHE_ID, cacheId);
        medium.set(JAVA_LONG_UNALIGNED, OFF_CREATED, createdMillis);
        medium.set(JAVA_LONG_UNALIGNED, OFF_MEDIUM_SIZE, mediumSize);
        LeadRecord.sealCrc(medium, OFF_CRC);
    }

    /** Decodes and validates; every failure names the field, the expected and the found value. */
    public static Superblock decode(MemorySegment medium, String where) throws MediaCorruptException {
        if (medium.byteSize() < Layout.METADATA_START) {
            throw new MediaCorruptException(where + ": " + medium.byteSize()
                    + " bytes is too small to hold a pmcache superblock");
        }
        LeadRecord.checkMagicAndCrc(medium, MAGIC, OFF_CRC, where, "pmcache cache", "superblock");
        Superblock sb = new Superblock(
                medium.get(JAVA_INT_UNALIGNED, OFF_VERSION),
                medium.get(JAVA_INT_UNALIGNED, OFF_FLAGS),
                medium.get(JAVA_LONG_UNALIGNED, OFF_SEG_SIZE),
                medium.get(JAVA_INT_UNALIGNED, OFF_SEG_COUNT),
                medium.get(JAVA_LONG_UNALIGNED, OFF_SEG_AREA),
                medium.get(JAVA_LONG_UNALIGNED, OFF_BACKING_SIZE),
                medium.get(JAVA_LONG_UNALIGNED, OFF_BACKING_FP),
                medium.get(JAVA_LONG_UNALIGNED, OFF_CACHE_ID),
                medium.get(JAVA_LONG_UNALIGNED, OFF_CREATED),
                medium.get(JAVA_LONG_UNALIGNED, OFF_MEDIUM_SIZE));
        // Field checks name the record, as the magic and CRC checks above do.
        sb.check(medium.byteSize(), where + ": superblock");
        return sb;
    }

    /** Checks the invariants against a medium of {@code mediumBytes}. */
    public void check(long mediumBytes, String where) throws MediaCorruptException {
        if (version != VERSION) {
            throw new MediaCorruptException(where + ": format version " + version + ", this pmcache reads version "
                    + VERSION);
        }
        if ((flags & ~FLAGS_KNOWN) != 0) {
            throw new MediaCorruptException(where + ": unknown superblock flags " + hex(flags & ~FLAGS_KNOWN));
        }
        checkSegmentSize(segmentSize, where);
        if (segmentCount < MIN_SEGMENT_COUNT) {
            throw new MediaCorruptException(where + ": segment count " + segmentCount + ", but format writes at least "
                    + MIN_SEGMENT_COUNT);
        }
        long expectedArea = Layout.segmentAreaOffset(segmentCount);
        if (segmentAreaOffset != expectedArea) {
            throw new MediaCorruptException(where + ": segment area at " + segmentAreaOffset + ", expected "
                    + expectedArea + " for " + segmentCount + " segments");
        }
        long end = segmentAreaOffset + segmentCount * segmentSize;
        if (end > mediumBytes || mediumSize > mediumBytes) {
            throw new MediaCorruptException(where + ": segments end at " + end + " but the medium has only "
                    + mediumBytes + " bytes (was it truncated?)");
        }
        if (mediumSize < end) {
            throw new MediaCorruptException(where + ": recorded medium size " + mediumSize
                    + " ends before the segments (at " + end + ")");
        }
        if (backingSize < 0) {
            throw new MediaCorruptException(where + ": negative backing size " + backingSize);
        }
    }

    static void checkSegmentSize(long segmentSize, String where) throws MediaCorruptException {
        if (Long.bitCount(segmentSize) != 1 || segmentSize < MIN_SEGMENT_SIZE || segmentSize > MAX_SEGMENT_SIZE) {
            throw new MediaCorruptException(where + ": segment size " + segmentSize
                    + " is not a power of two in [1 MiB, 1 GiB]");
        }
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    static String hex(int v) {
        return "0x" + Integer.toHexString(v);
    }
}
