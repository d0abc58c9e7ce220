package io.pmcache.format;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The volume table and medium header: round trips, the two slots, and every kind of damage. */
class VolumeTableTest {
    private static final long MIB = 1L << 20;
    private static final long MEDIUM = 64 * MIB;
    private static final long ID = 0x1234_5678_9abc_def0L;
    private final MemorySegment m = Arena.ofAuto().allocate(MEDIUM);

    private static VolumeEntry entry(String name, long offsetMiB, long sizeMiB) {
        return new VolumeEntry(name, offsetMiB * MIB, sizeMiB * MIB, name.hashCode(), 1000, "/dev/" + name);
    }

    private VolumeTable read() throws MediaCorruptException {
        List<String> damaged = new ArrayList<>();
        VolumeTable t = VolumeTable.read(m, ID, MEDIUM, "medium", damaged::add);
        assertThat(damaged).as("damaged slots reported").isEmpty();
        return t;
    }

    @Test
    void roundTripKeepsEveryField() throws MediaCorruptException {
        VolumeTable t = new VolumeTable(0, List.of(entry("vm-a", 2, 16), entry("vm.b_2", 18, 30)));
        t.encode(m, ID);
        VolumeTable back = read();
        assertThat(back).isEqualTo(t);
        assertThat(back.find("vm.b_2")).get().extracting(VolumeEntry::backing).isEqualTo("/dev/vm.b_2");
    }

    @Test
    void aReaderTakesTheNewerSlotAndFallsBackWhenItIsTorn() throws MediaCorruptException {
        VolumeTable first = new VolumeTable(0, List.of(entry("a", 2, 8)));
        first.encode(m, ID);
        VolumeTable second = first.next(List.of(entry("a", 2, 8), entry("b", 10, 8)));
        second.encode(m, ID);
        assertThat(second.slotOffset()).isEqualTo(VolumeLayout.TABLE_SLOT1);
        assertThat(read()).isEqualTo(second);
        // a torn write of the second copy: one word of it missing
        m.set(JAVA_LONG_UNALIGNED, VolumeLayout.TABLE_SLOT1 + 64 + VolumeEntry.SIZE + 8, 0);
        List<String> damaged = new ArrayList<>();
        assertThat(VolumeTable.read(m, ID, MEDIUM, "medium", damaged::add)).isEqualTo(first);
        assertThat(damaged).singleElement().asString().contains("slot 1").contains("CRC mismatch");
        // the next write goes over the damaged slot, with the sequence after the valid one
        VolumeTable third = first.next(List.of());
        third.encode(m, ID);
        assertThat(read()).isEqualTo(third);
    }

    @Test
    void bothSlotsInvalidIsAnErrorNamingBoth() {
        new VolumeTable(0, List.of(entry("a", 2, 8))).encode(m, ID);
        m.set(JAVA_BYTE, VolumeLayout.TABLE_SLOT0 + 100, (byte) (m.get(JAVA_BYTE, VolumeLayout.TABLE_SLOT0 + 100) ^ 1));
        m.set(JAVA_INT_UNALIGNED, VolumeLayout.TABLE_SLOT1, VolumeTable.MAGIC);
        Throwable t = catchThrowable(() -> VolumeTable.read(m, ID, MEDIUM, "medium", s -> { }));
        assertThat(t).isInstanceOf(MediaCorruptException.class).hasMessageContaining("no valid volume table")
                .hasMessageContaining("slot 0").hasMessageContaining("slot 1");
    }

    @Test
    void everyFlippedBitOfAnEntryOrHeaderFailsTheSlot() {
        new VolumeTable(0, List.of(entry("a", 2, 8), entry("b", 10, 8))).encode(m, ID);
        int covered = 64 + 2 * VolumeEntry.SIZE;
        for (int at = 0; at < covered; at++) {
            long pos = VolumeLayout.TABLE_SLOT0 + at;
            byte b = m.get(JAVA_BYTE, pos);
            m.set(JAVA_BYTE, pos, (byte) (b ^ (1 << (at % 8))));
            int byteAt = at;
            assertThatThrownBy(() -> VolumeTable.decodeSlot(m, 0, ID, MEDIUM, "medium"))
                    .as("byte %d flipped", byteAt).isInstanceOf(MediaCorruptException.class)
                    .hasMessageContaining("volume table slot 0");
            m.set(JAVA_BYTE, pos, b);
        }
    }

    @Test
    void aCopyFromAnotherMediumDoesNotValidate() {
        new VolumeTable(0, List.of(entry("a", 2, 8))).encode(m, ID + 1);
        assertThatThrownBy(() -> VolumeTable.decodeSlot(m, 0, ID, MEDIUM, "medium")).hasMessageContaining("CRC");
    }

    /** Entries that pass the CRC (written by a buggy or hostile writer) still fail the bounds checks. */
    @Test
    void boundsChecksUnderAValidCrc() {
        assertRefused(List.of(entry("a", 2, 8), entry("b", 8, 8)), "overlap");
        assertRefused(List.of(entry("a", 0, 8)), "not 2 MiB aligned");
        assertRefused(List.of(entry("a", 3, 8)), "not 2 MiB aligned");
        assertRefused(List.of(entry("a", 2, 7)), "not 2 MiB aligned");
        assertRefused(List.of(entry("a", 60, 8)), "not 2 MiB aligned inside");
        assertRefused(List.of(new VolumeEntry("a", 2 * MIB, Long.MAX_VALUE & -(2 * MIB), 1, 1, "x")), "inside");
        assertRefused(List.of(entry("a", 2, 8), entry("a", 10, 8)), "appears twice");
        assertRefused(List.of(entry("-a", 2, 8)), "must be 1..64 characters");
        assertRefused(List.of(entry("a b", 2, 8)), "must be 1..64 characters");
    }

    @Test
    void aSequenceInTheWrongSlotOrOutOfRangeIsRefused() {
        new VolumeTable(0, List.of()).encode(m, ID);
        MemorySegment slot0 = m.asSlice(VolumeLayout.TABLE_SLOT0, VolumeLayout.TABLE_SLOT_SIZE);
        slot0.set(JAVA_LONG_UNALIGNED, 8, 2L << 40 | 1); // odd sequence in slot 0
        slot0.set(JAVA_INT_UNALIGNED, 4, Crc.of(ID, slot0, 8, VolumeLayout.TABLE_SLOT_SIZE - 8));
        assertThatThrownBy(() -> VolumeTable.decodeSlot(m, 0, ID, MEDIUM, "medium")).hasMessageContaining("belongs in slot 1");
        slot0.set(JAVA_LONG_UNALIGNED, 8, -2);
        slot0.set(JAVA_INT_UNALIGNED, 4, Crc.of(ID, slot0, 8, VolumeLayout.TABLE_SLOT_SIZE - 8));
        assertThatThrownBy(() -> VolumeTable.decodeSlot(m, 0, ID, MEDIUM, "medium")).hasMessageContaining("sequence -2");
        slot0.set(JAVA_LONG_UNALIGNED, 8, 0);
        slot0.set(JAVA_INT_UNALIGNED, 16, VolumeTable.MAX_VOLUMES + 1);
        slot0.set(JAVA_INT_UNALIGNED, 4, Crc.of(ID, slot0, 8, VolumeLayout.TABLE_SLOT_SIZE - 8));
        assertThatThrownBy(() -> VolumeTable.decodeSlot(m, 0, ID, MEDIUM, "medium")).hasMessageContaining("volume count");
    }

    @Test
    void aBlankSlotIsNotReportedAsDamage() throws MediaCorruptException {
        new VolumeTable(0, List.of(entry("a", 2, 8))).encode(m, ID);
        assertThat(VolumeTable.blank(m, 1)).isTrue();
        assertThat(read().volumes()).hasSize(1);
    }

    @Test
    void theTableHoldsMaxVolumes() throws MediaCorruptException {
        List<VolumeEntry> many = new ArrayList<>();
        for (int i = 0; i < VolumeTable.MAX_VOLUMES; i++) {
            many.add(new VolumeEntry("v" + i, 2 * MIB + i * 2 * MIB, 2 * MIB, i, i, "b".repeat(VolumeEntry.MAX_BACKING)));
        }
        new VolumeTable(0, many).encode(m, ID);
        assertThat(VolumeTable.read(m, ID, 512 * MIB, "medium", s -> { }).volumes()).isEqualTo(many);
        assertThat(VolumeTable.MAX_VOLUMES).isEqualTo(127);
    }

    @Test
    void mediumHeaderRoundTripAndEveryFlippedByte() throws MediaCorruptException {
        MediumHeader h = new MediumHeader(MediumHeader.VERSION, 0, ID, MEDIUM, 42);
        h.encode(m);
        assertThat(MediumHeader.hasMagic(m)).isTrue();
        assertThat(MediumHeader.decode(m, "medium")).isEqualTo(h);
        for (int at = 0; at < MediumHeader.SIZE; at++) {
            byte b = m.get(JAVA_BYTE, at);
            m.set(JAVA_BYTE, at, (byte) (b ^ (1 << (at % 8))));
            int byteAt = at;
            assertThatThrownBy(() -> MediumHeader.decode(m, "medium")).as("byte %d flipped", byteAt)
                    .isInstanceOf(MediaCorruptException.class).hasMessageContaining("medium");
            m.set(JAVA_BYTE, at, b);
        }
    }

    @Test
    void mediumHeaderRefusesAMediumShorterThanRecorded() {
        new MediumHeader(MediumHeader.VERSION, 0, ID, MEDIUM * 2, 42).encode(m);
        assertThatThrownBy(() -> MediumHeader.decode(m, "medium")).hasMessageContaining("truncated");
        new MediumHeader(MediumHeader.VERSION + 1, 0, ID, MEDIUM, 42).encode(m);
        assertThatThrownBy(() -> MediumHeader.decode(m, "medium")).hasMessageContaining("version 2");
    }

    private void assertRefused(List<VolumeEntry> entries, String why) {
        m.fill((byte) 0);
        new VolumeTable(0, entries).encode(m, ID);
        assertThatThrownBy(() -> VolumeTable.decodeSlot(m, 0, ID, MEDIUM, "medium")).as(why)
                .isInstanceOf(MediaCorruptException.class).hasMessageContaining(why);
    }
}
