package io.pmcache.cache;

import io.pmcache.format.Superblock;

/**
 * Choices fixed when a cache is formatted.
 *
 * @param segmentSize power of two in [1 MiB, 1 GiB]; 16 MiB by default
 * @param dataCrc     verify every key's data CRC at replay and before writeback (the CRC is always
 *                    stored; without this option it is checked only for keys of ksets that were
 *                    still open when the process or the power died)
 */
public record FormatOptions(long segmentSize, boolean dataCrc) {
    public FormatOptions {
        if (Long.bitCount(segmentSize) != 1 || segmentSize < Superblock.MIN_SEGMENT_SIZE
                || segmentSize > Superblock.MAX_SEGMENT_SIZE) {
            throw new IllegalArgumentException("segment size must be a power of two from 1 MiB to 1 GiB, got "
                    + segmentSize);
        }
    }

    public static FormatOptions defaults() {
        return new FormatOptions(Superblock.DEFAULT_SEGMENT_SIZE, false);
    }
}
