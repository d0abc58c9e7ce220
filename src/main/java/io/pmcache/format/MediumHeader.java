package io.pmcache.format;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import java.lang.foreign.MemorySegment;

/**
 * The medium header: immutable facts about a medium that holds volumes, written once by format at
 * offset 0 (where a single-cache medium has its {@link Superblock}; the magics differ).
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +---------------------------------------------------------------+
 * |                    magic "PMVOLUME" (8)                       |  0
 * +---------------------------------------------------------------+
 * |                        format version (1)                     |  8
 * |                        flags (0)                              | 12
 * |                        medium id (8)                          | 16
 * |                        medium size (8)                        | 24
 * |                  created, ms since epoch (8)                  | 32
 * |                        reserved (20 bytes)                    | 40
 * |                  CRC32C of bytes [0, 60), salt 0              | 60
 * +---------------------------------------------------------------+
 * </pre>
 *
 * All integers little-endian. Written and persisted last by format, after both volume-table slots,
 * so a torn format is never mistaken for a medium. Invariants checked on decode: magic, CRC,
 * version, no unknown flag, the recorded medium size at least {@link VolumeLayout#DATA_START} and
 * at most the medium's size now.
 */
public record MediumHeader(int version, int flags, long mediumId, long mediumSize, long createdMillis) {
    public static final long MAGIC = 0x454d554c4f564d50L; // "PMVOLUME" little-endian
    public static final int VERSION = 1;
    public static final int SIZE = 64;
    private static final int OFF_MAGIC = 0; // where LeadRecord reads the magic
    private static final int OFF_VERSION = 8;
    private static final int OFF_FLAGS = 12;
    private static final int OFF_ID = 16;
    private static final int OFF_SIZE = 24;
    private static final int OFF_CREATED = 32;
    private static final int OFF_CRC = 60;

    /** True when the first 8 bytes carry the volume-medium magic (the rest may still be corrupt). */
    public static boolean hasMagic(MemorySegment medium) {
        return LeadRecord.hasMagic(medium, MAGIC, SIZE);
    }

    public void encode(MemorySegment medium) {
        MemorySegment s = medium.asSlice(0, SIZE);
        s.fill((byte) 0);
        s.set(JAVA_LONG_UNALIGNED, OFF_MAGIC, MAGIC);
        s.set(JAVA_INT_UNALIGNED, OFF_VERSION, version);
        s.set(JAVA_INT_UNALIGNED, OFF_FLAGS, flags);
        s.set(JAVA_LONG_UNALIGNED, OFF_ID, mediumId);
        s.set(JAVA_LONG_UNALIGNED, OFF_SIZE, mediumSize);
        s.set(JAVA_LONG_UNALIGNED, OFF_CREATED, createdMillis);
        LeadRecord.sealCrc(s, OFF_CRC);
    }

    /** Decodes and validates; every failure names the field, the expected and the found value. */
    public static MediumHeader decode(MemorySegment medium, String where) throws MediaCorruptException {
        if (medium.byteSize() < VolumeLayout.DATA_START) {
            throw new MediaCorruptException(where + ": " + medium.byteSize()
                    + " bytes is too small to hold a pmcache volume medium (at least " + VolumeLayout.DATA_START + ")");
        }
        LeadRecord.checkMagicAndCrc(medium, MAGIC, OFF_CRC, where, "pmcache volume medium", "medium header");
        MediumHeader h = new MediumHeader(medium.get(JAVA_INT_UNALIGNED, OFF_VERSION),
                medium.get(JAVA_INT_UNALIGNED, OFF_FLAGS), medium.get(JAVA_LONG_UNALIGNED, OFF_ID),
                medium.get(JAVA_LONG_UNALIGNED, OFF_SIZE), medium.get(JAVA_LONG_UNALIGNED, OFF_CREATED));
        if (h.version != VERSION) {
            throw new MediaCorruptException(where + ": medium header: format version " + h.version
                    + ", this pmcache reads version " + VERSION);
        }
        if (h.flags != 0) {
            throw new MediaCorruptException(where + ": medium header: unknown flags " + Superblock.hex(h.flags));
        }
        if (h.mediumSize < VolumeLayout.DATA_START || h.mediumSize > medium.byteSize()) {
            throw new MediaCorruptException(where + ": medium header: recorded medium size " + h.mediumSize
                    + " is outside [" + VolumeLayout.DATA_START + ", " + medium.byteSize()
                    + "] (the medium's size now; was it truncated?)");
        }
        return h;
    }
}
