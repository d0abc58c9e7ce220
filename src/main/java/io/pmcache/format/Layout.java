package io.pmcache.format;

/**
 * Where each record lives on the medium.
 *
 * <pre>
 * offset                      size                   contents
 * 0                           4 KiB                  {@link Superblock} (128 bytes used)
 * 4096                        4 KiB                  cache info slot 0 ({@link CacheInfo})
 * 8192                        4 KiB                  cache info slot 1
 * 12288                       64 B x segment count   segment table: per segment two
 *                                                    {@link SegmentInfo} slots of 32 bytes
 * segmentAreaOffset(n)        segmentSize x n        segments: data, or key-log ksets ({@link Kset})
 * </pre>
 *
 * The segment area starts at the first 4 KiB boundary after the segment table. Each cache-info
 * slot has its own page so that persisting one never rewrites the other.
 */
public final class Layout {
    private Layout() {
    }

    public static final long PAGE = 4096;
    public static final long CACHE_INFO_SLOT0 = 4096;
    public static final long CACHE_INFO_SLOT1 = 8192;
    public static final long SEGMENT_TABLE = 12288;
    public static final long METADATA_START = SEGMENT_TABLE;
    /** Bytes of segment table per segment: two slots. */
    public static final long SEGMENT_TABLE_ENTRY = 2L * SegmentInfo.SLOT_SIZE;

    /** The 4 MiB logical range: unit of index locking and of kset-stream choice. */
    public static final int RANGE_SHIFT = 22;
    public static final long RANGE_SIZE = 1L << RANGE_SHIFT;

    /** Offset of the first segment for a cache of {@code segmentCount} segments. */
    public static long segmentAreaOffset(long segmentCount) {
        long end = SEGMENT_TABLE + segmentCount * SEGMENT_TABLE_ENTRY;
        return (end + PAGE - 1) & -PAGE;
    }

    /** The most segments of {@code segmentSize} that fit a medium of {@code mediumSize} bytes (may be 0). */
    public static int segmentsFitting(long mediumSize, long segmentSize) {
        long n = Math.max(0, (mediumSize - SEGMENT_TABLE) / (segmentSize + SEGMENT_TABLE_ENTRY));
        while (n > 0 && segmentAreaOffset(n) + n * segmentSize > mediumSize) {
            n--;
        }
        return (int) Math.min(n, Integer.MAX_VALUE - 1);
    }

    /**
     * True for a sequence a two-slot record can carry: copies are numbered 0, 1, 2, ... and a
     * successor must carry a higher one, so a negative sequence (or the largest long, which has
     * no successor) is damage even under a valid CRC.
     */
    public static boolean isSlotSequence(long sequence) {
        return sequence >= 0 && sequence < Long.MAX_VALUE;
    }

    /** Offset of slot {@code slot} (0 or 1) of segment {@code seg}'s info. */
    public static long segmentInfoSlot(int seg, int slot) {
        return SEGMENT_TABLE + seg * SEGMENT_TABLE_ENTRY + (long) slot * SegmentInfo.SLOT_SIZE;
    }
}
