package io.pmcache.cache;

import io.pmcache.format.Layout;
import io.pmcache.format.Superblock;

/**
 * Choices fixed when a cache is formatted.
 *
 * @param segmentSize power of two in [1 MiB, 1 GiB], or {@link #SEGMENT_SIZE_AUTO} (the default):
 *                    see {@link #segmentSizeFor}
 * @param dataCrc     verify every key's data CRC at replay and before writeback (the CRC is always
 *                    stored; without this option it is checked only for keys of ksets that were
 *                    still open when the process or the power died)
 */
public record FormatOptions(long segmentSize, boolean dataCrc) {
    /** Pick the segment size from the medium's size ({@link #segmentSizeFor}). */
    public static final long SEGMENT_SIZE_AUTO = 0;
    /** The automatic segment size is halved from 16 MiB until the medium holds this many segments. */
    public static final int AUTO_MIN_SEGMENTS = 32;

    public FormatOptions {
        if (segmentSize != SEGMENT_SIZE_AUTO && (Long.bitCount(segmentSize) != 1
                || segmentSize < Superblock.MIN_SEGMENT_SIZE || segmentSize > Superblock.MAX_SEGMENT_SIZE)) {
            throw new IllegalArgumentException("segment size must be a power of two from 1 MiB to 1 GiB, got "
                    + segmentSize);
        }
    }

    /** Automatic segment size, no data-CRC verification. */
    public static FormatOptions defaults() {
        return new FormatOptions(SEGMENT_SIZE_AUTO, false);
    }

    public FormatOptions withDataCrc(boolean on) {
        return new FormatOptions(segmentSize, on);
    }

    /**
     * The segment size for a medium of {@code mediumSize} bytes: the one given, or automatically
     * {@link Superblock#DEFAULT_SEGMENT_SIZE} (16 MiB), halved (down to 1 MiB) while the medium
     * would hold fewer than {@value #AUTO_MIN_SEGMENTS} segments. So a cache of 1 GiB or more gets
     * 16 MiB segments, 512 MiB gets 8 MiB, 64 MiB gets 1 MiB; small caches keep enough segments
     * for gc to free space in small steps and for several data heads.
     */
    public long segmentSizeFor(long mediumSize) {
        if (segmentSize != SEGMENT_SIZE_AUTO) {
            return segmentSize;
        }
        long size = Superblock.DEFAULT_SEGMENT_SIZE;
        while (size > Superblock.MIN_SEGMENT_SIZE && Layout.segmentsFitting(mediumSize, size) < AUTO_MIN_SEGMENTS) {
            size >>= 1;
        }
        return size;
    }
}
