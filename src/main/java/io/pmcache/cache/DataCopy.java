package io.pmcache.cache;

import java.lang.foreign.MemorySegment;
import java.util.zip.CRC32C;

/**
 * Copies write data into the medium and computes its CRC32C (the key's data CRC) in the same
 * pass: chunk by chunk, each chunk's CRC taken from the medium right after it is copied, while it
 * is still in the CPU cache (a 64 KiB write is copied and checksummed as four 16 KiB chunks, not
 * copied whole and then read back from farther away). The CRC is of the bytes in the medium, as
 * replay recomputes it. One {@link CRC32C} per thread: no allocation for it per write.
 */
final class DataCopy {
    /** Fits a first-level data cache beside its source. */
    static final int CHUNK = 16 << 10;
    private static final ThreadLocal<CRC32C> CRC = ThreadLocal.withInitial(CRC32C::new);

    private DataCopy() {
    }

    /** The CRC32C of {@code len} bytes of {@code seg} at {@code off} (data put there by other means than {@link #copy}). */
    static int crc(MemorySegment seg, long off, int len) {
        CRC32C crc = CRC.get();
        crc.reset();
        crc.update(seg.asSlice(off, len).asByteBuffer());
        return (int) crc.getValue();
    }

    /** Copies {@code len} bytes from {@code src} at {@code srcOff} to {@code dst} at {@code dstOff}; returns their CRC32C. */
    static int copy(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int len) {
        CRC32C crc = CRC.get();
        crc.reset();
        for (int done = 0; done < len; ) {
            int n = Math.min(CHUNK, len - done);
            MemorySegment.copy(src, srcOff + done, dst, dstOff + done, n);
            crc.update(dst.asSlice(dstOff + done, n).asByteBuffer());
            done += n;
        }
        return (int) crc.getValue();
    }
}
