package io.pmcache.format;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import java.lang.foreign.MemorySegment;

/**
 * What the two records that can stand at offset 0 of a medium have in common: the {@link Superblock}
 * of a single-cache medium and the {@link MediumHeader} of a volume medium. Each starts with an 8-byte
 * magic, which alone tells them apart, and ends with a CRC32C (salt 0: nothing identifies the medium
 * before it is read) of every byte before the CRC. A record validates when its magic matches and then
 * its CRC; only then are its fields worth checking.
 */
final class LeadRecord {
    private LeadRecord() {
    }

    /** True when {@code medium} can hold a record of {@code size} bytes and starts with {@code magic}. */
    static boolean hasMagic(MemorySegment medium, long magic, int size) {
        return medium.byteSize() >= size && medium.get(JAVA_LONG_UNALIGNED, 0) == magic;
    }

    /** Writes the CRC of {@code record}'s bytes [0, {@code crcOffset}) at {@code crcOffset}. */
    static void sealCrc(MemorySegment record, int crcOffset) {
        record.set(JAVA_INT_UNALIGNED, crcOffset, Crc.of(0, record, 0, crcOffset));
    }

    /**
     * Checks the magic, then the CRC; a failure names {@code where}, the record, the expected and the
     * found value. {@code kind} is what the magic says the medium is ("pmcache cache"), {@code record}
     * the record's name ("superblock").
     */
    static void checkMagicAndCrc(MemorySegment medium, long magic, int crcOffset, String where, String kind,
            String record) throws MediaCorruptException {
        long found = medium.get(JAVA_LONG_UNALIGNED, 0);
        if (found != magic) {
            throw new MediaCorruptException(where + ": not a " + kind + " (" + record + " magic "
                    + Superblock.hex(found) + ", expected " + Superblock.hex(magic) + ")");
        }
        int stored = medium.get(JAVA_INT_UNALIGNED, crcOffset);
        int crc = Crc.of(0, medium, 0, crcOffset);
        if (stored != crc) {
            throw new MediaCorruptException(where + ": " + record + " CRC mismatch (stored " + Superblock.hex(stored)
                    + ", computed " + Superblock.hex(crc) + "); the " + record + " is corrupt");
        }
    }
}
