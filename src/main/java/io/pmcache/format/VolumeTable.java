package io.pmcache.format;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * The volumes of a medium, in two slots ({@link VolumeLayout#TABLE_SLOT0},
 * {@link VolumeLayout#TABLE_SLOT1}, 64 KiB each). A writer writes the slot that does not hold the
 * newest valid copy, with sequence newest + 1, and persists it; a reader takes the valid slot with
 * the higher sequence, so a torn write leaves the previous table intact.
 *
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +---------------------------------------------------------------+
 * |                         magic "VTAB"                          |  0
 * |     CRC32C of bytes [8, 65536), salted with the medium id     |  4
 * |                         sequence (8)                          |  8
 * |                  volume count (0..127)                        | 16
 * |                      reserved (44 bytes)                      | 20
 * +---------------------------------------------------------------+
 * |              volume entry i ({@link VolumeEntry}, 512 bytes)  | 64 + 512 i
 * +---------------------------------------------------------------+
 * </pre>
 *
 * Invariants checked on decode: magic, CRC, sequence a two-slot record can carry
 * ({@link Layout#isSlotSequence}), count at most {@link #MAX_VOLUMES}, every entry valid
 * ({@link VolumeEntry}), names unique, regions inside the medium and not overlapping. The bytes
 * past the last entry are zero (covered by the CRC).
 */
public record VolumeTable(long sequence, List<VolumeEntry> volumes) {
    public static final int MAGIC = 0x42415456; // "VTAB" little-endian
    public static final int MAX_VOLUMES = (VolumeLayout.TABLE_SLOT_SIZE - 64) / VolumeEntry.SIZE;
    private static final int OFF_MAGIC = 0;
    private static final int OFF_CRC = 4;
    private static final int OFF_SEQUENCE = 8;
    private static final int OFF_COUNT = 16;
    private static final int OFF_ENTRIES = 64;

    public VolumeTable {
        volumes = List.copyOf(volumes);
        if (volumes.size() > MAX_VOLUMES) {
            throw new IllegalArgumentException("a medium holds at most " + MAX_VOLUMES + " volumes");
        }
    }

    public Optional<VolumeEntry> find(String name) {
        return volumes.stream().filter(v -> v.name().equals(name)).findFirst();
    }

    /** The successor table: this one's volumes replaced by {@code volumes}, sequence + 1. */
    public VolumeTable next(List<VolumeEntry> newVolumes) {
        return new VolumeTable(sequence + 1, newVolumes);
    }

    /** The slot this copy goes to (sequences alternate between the slots). */
    public long slotOffset() {
        return (sequence & 1) == 0 ? VolumeLayout.TABLE_SLOT0 : VolumeLayout.TABLE_SLOT1;
    }

    /** Writes this copy into its slot ({@link #slotOffset}); the caller persists the slot. */
    public void encode(MemorySegment medium, long mediumId) {
        MemorySegment s = medium.asSlice(slotOffset(), VolumeLayout.TABLE_SLOT_SIZE);
        s.fill((byte) 0);
        s.set(JAVA_INT_UNALIGNED, OFF_MAGIC, MAGIC);
        s.set(JAVA_LONG_UNALIGNED, OFF_SEQUENCE, sequence);
        s.set(JAVA_INT_UNALIGNED, OFF_COUNT, volumes.size());
        for (int i = 0; i < volumes.size(); i++) {
            volumes.get(i).encode(s.asSlice(OFF_ENTRIES + (long) i * VolumeEntry.SIZE, VolumeEntry.SIZE));
        }
        s.set(JAVA_INT_UNALIGNED, OFF_CRC, Crc.of(mediumId, s, 8, VolumeLayout.TABLE_SLOT_SIZE - 8));
    }

    /** True when the slot was never written (all zero): no damage, just no copy. */
    public static boolean blank(MemorySegment medium, int slot) {
        MemorySegment s = medium.asSlice(VolumeLayout.slotOffset(slot), VolumeLayout.TABLE_SLOT_SIZE);
        return s.mismatch(MemorySegment.ofArray(new byte[VolumeLayout.TABLE_SLOT_SIZE])) < 0;
    }

    /** Decodes slot 0 or 1; every failure names the slot, the field and the values. */
    public static VolumeTable decodeSlot(MemorySegment medium, int slot, long mediumId, long mediumSize, String where)
            throws MediaCorruptException {
        long at = VolumeLayout.slotOffset(slot);
        String name = where + ": volume table slot " + slot + " (at " + at + ")";
        MemorySegment s = medium.asSlice(at, VolumeLayout.TABLE_SLOT_SIZE);
        int magic = s.get(JAVA_INT_UNALIGNED, OFF_MAGIC);
        if (magic != MAGIC) {
            throw new MediaCorruptException(name + ": magic " + Superblock.hex(magic) + ", expected "
                    + Superblock.hex(MAGIC));
        }
        int stored = s.get(JAVA_INT_UNALIGNED, OFF_CRC);
        int crc = Crc.of(mediumId, s, 8, VolumeLayout.TABLE_SLOT_SIZE - 8);
        if (stored != crc) {
            throw new MediaCorruptException(name + ": CRC mismatch (stored " + Superblock.hex(stored) + ", computed "
                    + Superblock.hex(crc) + ")");
        }
        long sequence = s.get(JAVA_LONG_UNALIGNED, OFF_SEQUENCE);
        if (!Layout.isSlotSequence(sequence)) {
            throw new MediaCorruptException(name + ": sequence " + sequence + " is not one a slot can carry");
        }
        if ((sequence & 1) != slot) {
            throw new MediaCorruptException(name + ": sequence " + sequence + " belongs in slot " + (sequence & 1));
        }
        int count = s.get(JAVA_INT_UNALIGNED, OFF_COUNT);
        if (count < 0 || count > MAX_VOLUMES) {
            throw new MediaCorruptException(name + ": volume count " + count + " outside 0.." + MAX_VOLUMES);
        }
        List<VolumeEntry> out = new ArrayList<>(count);
        Set<String> names = new HashSet<>();
        for (int i = 0; i < count; i++) {
            VolumeEntry e = VolumeEntry.decode(s.asSlice(OFF_ENTRIES + (long) i * VolumeEntry.SIZE, VolumeEntry.SIZE),
                    i, mediumSize, name);
            if (!names.add(e.name())) {
                throw new MediaCorruptException(name + ": volume name '" + e.name() + "' appears twice");
            }
            out.add(e);
        }
        List<VolumeEntry> byOffset = new ArrayList<>(out);
        byOffset.sort(Comparator.comparingLong(VolumeEntry::offset));
        for (int i = 1; i < byOffset.size(); i++) {
            VolumeEntry a = byOffset.get(i - 1);
            VolumeEntry b = byOffset.get(i);
            if (b.offset() < a.end()) {
                throw new MediaCorruptException(name + ": volumes '" + a.name() + "' [" + a.offset() + ", " + a.end()
                        + ") and '" + b.name() + "' [" + b.offset() + ", " + b.end() + ") overlap");
            }
        }
        return new VolumeTable(sequence, out);
    }

    /**
     * The newest valid copy. One invalid slot is logged by the caller through {@code damaged}
     * (it is rewritten by the next change); both invalid is a clear error naming both reasons.
     */
    public static VolumeTable read(MemorySegment medium, long mediumId, long mediumSize, String where,
                                   java.util.function.Consumer<String> damaged) throws MediaCorruptException {
        VolumeTable[] t = new VolumeTable[2];
        String[] why = new String[2];
        for (int slot = 0; slot < 2; slot++) {
            try {
                t[slot] = decodeSlot(medium, slot, mediumId, mediumSize, where);
            } catch (MediaCorruptException e) {
                why[slot] = blank(medium, slot) ? null : e.getMessage();
            }
        }
        if (t[0] == null && t[1] == null) {
            throw new MediaCorruptException(where + ": no valid volume table: "
                    + (why[0] != null ? why[0] : "slot 0 blank") + "; " + (why[1] != null ? why[1] : "slot 1 blank"));
        }
        for (int slot = 0; slot < 2; slot++) {
            if (t[slot] == null && why[slot] != null) {
                damaged.accept(why[slot]);
            }
        }
        if (t[0] == null) {
            return t[1];
        }
        if (t[1] == null) {
            return t[0];
        }
        return t[0].sequence >= t[1].sequence ? t[0] : t[1];
    }
}
