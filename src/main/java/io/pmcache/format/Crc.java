package io.pmcache.format;

import java.lang.foreign.MemorySegment;
import java.util.zip.CRC32C;

/**
 * CRC32C over medium bytes. Every metadata CRC is salted with the cache's 64-bit identity
 * ({@link Superblock#cacheId()}), so a record copied from another cache never validates.
 */
public final class Crc {
    private Crc() {
    }

    /** CRC32C of {@code len} bytes of {@code seg} at {@code off}, preceded by the 8 salt bytes. */
    public static int of(long salt, MemorySegment seg, long off, long len) {
        CRC32C crc = new CRC32C();
        updateLong(crc, salt);
        crc.update(seg.asSlice(off, len).asByteBuffer());
        return (int) crc.getValue();
    }

    /** Plain CRC32C of data bytes (the per-key data CRC; no salt). */
    public static int ofData(MemorySegment seg, long off, long len) {
        CRC32C crc = new CRC32C();
        crc.update(seg.asSlice(off, len).asByteBuffer());
        return (int) crc.getValue();
    }

    static void updateLong(CRC32C crc, long v) {
        for (int i = 0; i < 8; i++) {
            crc.update((int) (v >>> (8 * i)) & 0xff);
        }
    }
}
