package io.pmcache.cache;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.format.CacheInfo;
import io.pmcache.format.Crc;
import io.pmcache.format.KeyRecord;
import io.pmcache.format.Layout;
import io.pmcache.format.MediaCorruptException;
import io.pmcache.format.SegmentInfo;
import io.pmcache.media.PowerCutMedium;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Damaged and foreign media: every corruption gives a clear {@link IOException} at open or a clean
 * skip that is counted — never another exception, a hang, or wrong data where the medium still
 * holds what is needed to answer correctly.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class CorruptMediaTest {
    private static final long MIB = Rig.MIB;
    private static final int SECTOR = WriteHistory.SECTOR;
    private static final int SEGMENTS = 16;
    private static final int DEVICE = (int) (32 * MIB);
    /** No background workers: the tests decide when ksets are written back and gc'd. */
    private static final CacheOptions QUIET = new CacheOptions(1, 90, false, false);
    private static final CacheOptions BUSY = new CacheOptions(2, 50, true, true);

    // ------------------------------------------------------------------ superblock

    @Test
    void everyFlippedSuperblockByteIsACorruptSuperblock() throws IOException {
        try (Rig rig = filledRig(new SplittableRandom(1), false)) {
            byte[] pristine = rig.bytes().asSlice(0, 128).toArray(JAVA_BYTE);
            for (int at = 0; at < 128; at++) {
                rig.bytes().set(JAVA_BYTE, at, (byte) (pristine[at] ^ (1 << (at % 8))));
                Throwable t = catchThrowable(() -> rig.open(QUIET));
                assertThat(t).as("byte %d flipped", at).isInstanceOf(MediaCorruptException.class);
                assertThat(t.getMessage()).as("byte %d flipped", at)
                        .containsIgnoringCase(at < 8 ? "not a pmcache cache" : "superblock");
                rig.bytes().set(JAVA_BYTE, at, pristine[at]);
            }
            rig.open(QUIET).close(); // undamaged again
        }
    }

    @Test
    void implausibleSuperblockFieldsWithAValidCrcAreRefusedByName() throws IOException {
        record Bad(String what, int offset, long value, boolean isLong) { }
        List<Bad> bad = List.of(
                new Bad("format version", 8, 2, false),
                new Bad("flags", 12, 0x80, false),
                new Bad("segment size", 16, 3 * MIB, true),
                new Bad("segment size", 16, 1L << 40, true),
                new Bad("segment count", 24, 0, false),
                new Bad("segment count", 24, -5, false),
                new Bad("segment count", 24, 1 << 30, false),
                new Bad("segment area offset", 32, 4096, true),
                new Bad("backing size", 40, -1, true),
                new Bad("medium size", 72, 1L << 50, true));
        try (Rig rig = filledRig(new SplittableRandom(2), false)) {
            byte[] pristine = rig.bytes().asSlice(0, 128).toArray(JAVA_BYTE);
            for (Bad b : bad) {
                if (b.isLong) {
                    rig.bytes().set(JAVA_LONG_UNALIGNED, b.offset, b.value);
                } else {
                    rig.bytes().set(JAVA_INT_UNALIGNED, b.offset, (int) b.value);
                }
                fixSuperblockCrc(rig.bytes());
                Throwable t = catchThrowable(() -> rig.open(QUIET));
                assertThat(t).as(b.toString()).isInstanceOf(MediaCorruptException.class);
                assertThat(t.getMessage()).as(b.toString()).containsIgnoringCase("superblock");
                MemorySegment.copy(pristine, 0, rig.bytes(), JAVA_BYTE, 0, 128);
            }
            // Another cache id: nothing else on the medium validates against it.
            rig.bytes().set(JAVA_LONG_UNALIGNED, 56, 12345L);
            fixSuperblockCrc(rig.bytes());
            assertThatThrownBy(() -> rig.open(QUIET)).isInstanceOf(MediaCorruptException.class)
                    .hasMessageContaining("cache-info");
        }
    }

    @Test
    void aCacheRefusesAnotherBackingDevice() throws IOException {
        try (Rig rig = filledRig(new SplittableRandom(3), false)) {
            for (MemoryBackingDevice other : List.of(new MemoryBackingDevice(DEVICE + MIB, 7),
                    new MemoryBackingDevice(DEVICE, 8))) {
                try (other) {
                    assertThatThrownBy(() -> Cache.open(rig.medium, other, QUIET))
                            .isInstanceOf(WrongBackingDeviceException.class)
                            .hasMessageContaining("refusing");
                }
            }
            rig.open(QUIET).close();
        }
    }

    @Test
    void aForeignFileIsNotACache(Seed seed) throws IOException {
        byte[] junk = new byte[(int) (Layout.segmentAreaOffset(SEGMENTS) + SEGMENTS * MIB)];
        seed.random().nextBytes(junk);
        try (PowerCutMedium m = PowerCutMedium.of(junk); MemoryBackingDevice b = new MemoryBackingDevice(DEVICE, 7)) {
            assertThat(Cache.looksFormatted(m)).isFalse();
            assertThatThrownBy(() -> Cache.open(m, b, QUIET)).isInstanceOf(MediaCorruptException.class)
                    .hasMessageContaining("not a pmcache cache");
        }
        try (PowerCutMedium m = PowerCutMedium.of(new byte[100]); MemoryBackingDevice b = new MemoryBackingDevice(DEVICE, 7)) {
            assertThatThrownBy(() -> Cache.open(m, b, QUIET)).isInstanceOf(MediaCorruptException.class);
        }
    }

    // ------------------------------------------------------------------ cache info

    @Test
    void aCorruptCacheInfoSlotFallsBackToTheOtherAndBothAreAClearError(Seed seed) throws IOException {
        for (boolean newest : new boolean[] {true, false}) {
            WriteHistory model = new WriteHistory(DEVICE);
            try (Rig rig = Rig.format(SEGMENTS, DEVICE, false)) {
                rig.open(BUSY);
                writeSome(rig, model, seed.random(), 300, true);
                rig.cache.setGcPercent(0); // move both tails
                rig.cache.flushAll(left -> { });
                writeSome(rig, model, seed.random(), 50, true);
                rig.closeCache();
                long[] slots = {Layout.CACHE_INFO_SLOT0, Layout.CACHE_INFO_SLOT1};
                long cacheId = Cache.superblock(rig.medium).cacheId();
                var sb = Cache.superblock(rig.medium);
                CacheInfo a = CacheInfo.decodeSlot(rig.bytes(), slots[0], cacheId, sb);
                CacheInfo b = CacheInfo.decodeSlot(rig.bytes(), slots[1], cacheId, sb);
                assertThat(a).isNotNull();
                assertThat(b).isNotNull();
                boolean aNewer = a.sequence() > b.sequence();
                long victim = (aNewer == newest) ? slots[0] : slots[1];
                flip(rig.bytes(), victim + 20);
                rig.open(BUSY);
                verifyCurrent(rig, model, seed + (newest ? " newest" : " older") + " cache-info slot corrupt");
                rig.cache.flushAll(left -> { });
                assertThat(((MemoryBackingDevice) rig.backing).toByteArray()).isEqualTo(model.current);
                rig.closeCache();
                rig.bytes().asSlice(slots[0], CacheInfo.SIZE).fill((byte) 0x5a);
                flip(rig.bytes(), slots[1] + 3);
                assertThatThrownBy(() -> rig.open(BUSY)).isInstanceOf(MediaCorruptException.class)
                        .hasMessageContaining("cache-info");
            }
        }
    }

    // ------------------------------------------------------------------ segment info

    @Test
    void aCorruptSegmentInfoSlotIsSurvivedAndBothSlotsDropOnlyThatSegmentsKeys(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        for (int mode = 0; mode < 3; mode++) { // 0: older slot, 1: newest slot, 2: both slots
            WriteHistory model = new WriteHistory(DEVICE);
            try (Rig rig = Rig.format(SEGMENTS, DEVICE, false)) {
                rig.open(BUSY);
                writeSome(rig, model, r, 200, true);
                rig.cache.flushAll(left -> { });
                writeSome(rig, model, r, 100, true);
                List<Integer> candidates = new ArrayList<>();
                Engine e = rig.cache.engine();
                for (int s = 0; s < SEGMENTS; s++) {
                    if (e.allocator.isUsed(s)) {
                        candidates.add(s);
                    }
                }
                rig.closeCache();
                int seg = candidates.get(r.nextInt(candidates.size()));
                long cacheId = Cache.superblock(rig.medium).cacheId();
                SegmentInfo s0 = SegmentInfo.decodeSlot(rig.bytes(), seg, 0, cacheId, SEGMENTS);
                SegmentInfo s1 = SegmentInfo.decodeSlot(rig.bytes(), seg, 1, cacheId, SEGMENTS);
                int newer = s1 == null || (s0 != null && s0.sequence() > s1.sequence()) ? 0 : 1;
                String what = seed + " segment " + seg + " mode " + mode;
                switch (mode) {
                    case 0 -> flip(rig.bytes(), Layout.segmentInfoSlot(seg, 1 - newer) + 9);
                    case 1 -> flip(rig.bytes(), Layout.segmentInfoSlot(seg, newer) + 9);
                    default -> {
                        flip(rig.bytes(), Layout.segmentInfoSlot(seg, 0) + 9);
                        flip(rig.bytes(), Layout.segmentInfoSlot(seg, 1) + 17);
                    }
                }
                rig.open(BUSY);
                if (mode == 0) {
                    verifyCurrent(rig, model, what);
                } else {
                    verifyOnceWritten(rig, model, what);
                }
                // Whatever was lost, the cache keeps working and drains to a consistent disk.
                writeSome(rig, model, r, 300, false);
                rig.cache.flushAll(left -> { });
                verifyCurrent(rig, model, what + " after new writes");
                rig.closeCache();
                rig.open(BUSY);
                verifyCurrent(rig, model, what + " after reopen");
            }
        }
    }

    /**
     * A dirty key dropped for damage may already be on the backing device: writeback copies data
     * before the dirty tail moves past it. An older clean copy of its range must then not answer
     * reads, or reads turn to the backing device's newer data once gc drops that copy: a read
     * changing with no write in between. (Found by the test above under load, mode 1/2.)
     */
    @Test
    void aDroppedDirtyKeyThatReachedTheBackingDeviceNeverChangesAReadLater(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory(DEVICE);
        int len = SECTOR * (1 + r.nextInt(256));
        long x = SECTOR * r.nextLong((7 * MIB - len) / SECTOR); // below the area written to wrap the cache
        for (int run = 0; run < 4; run++) {
            int reopen = run % 2;
            boolean slotDamage = run >= 2; // else both info slots of the newer key's segment
            try (Rig rig = Rig.format(SEGMENTS, DEVICE, false)) {
                rig.open(QUIET);
                rig.write(model, x, len); // the older value: written back, a clean extent
                int olderSeg = rig.cache.engine().index.rangeFor(x).covering(x, x + len).segment();
                rig.write(model, 10 * MIB, (int) (2 * MIB)); // the data head moves to other segments
                rig.cache.flushAll(left -> { });
                byte[] newer = model.write(x, len);
                rig.cache.write(x, MemorySegment.ofArray(newer), false);
                rig.cache.flush();
                int seg = rig.cache.engine().index.rangeFor(x).covering(x, x + len).segment();
                assertThat(seg).isNotEqualTo(olderSeg);
                LogReader.KsetAt last = Rig.ksets(rig.cache).getLast();
                long slotAt = -1;
                for (int slot = 0; slot < last.slots(); slot++) {
                    if (rig.cache.engine().reader.key(last, slot).offset() == x) {
                        slotAt = rig.cache.engine().reader.slotAddress(last, slot);
                    }
                }
                rig.closeCache();
                rig.backing.write(x, MemorySegment.ofArray(newer), false); // writeback got that far
                if (slotDamage) { // the key is lost with its range: nothing tells which sectors it held
                    flip(rig.bytes(), slotAt + 8);
                } else {
                    flip(rig.bytes(), Layout.segmentInfoSlot(seg, 0) + 9);
                    flip(rig.bytes(), Layout.segmentInfoSlot(seg, 1) + 17);
                }
                rig.open(BUSY);
                if (reopen == 1) { // the dropped key is a tombstone now: the second open must agree
                    rig.closeCache();
                    rig.open(BUSY);
                }
                byte[] first = rig.read(x, len);
                assertThat(model.onceWritten(x, first, 0)).isTrue();
                // wrap the cache twice elsewhere: gc reclaims every segment, writeback drains
                for (int i = 0; i < 2; i++) {
                    for (long off = 8 * MIB; off < DEVICE; off += MIB) {
                        rig.write(model, off, (int) MIB);
                    }
                }
                rig.cache.flushAll(left -> { });
                byte[] later = rig.read(x, len);
                assertThat(Arrays.equals(later, first)).as("%s %s damage, reopen %d: read %s after the damage, %s later",
                        seed, slotDamage ? "key slot" : "segment info", reopen, model.describe(x, first, 0),
                        model.describe(x, later, 0)).isTrue();
            }
        }
    }

    // ------------------------------------------------------------------ ksets and keys

    /**
     * A damaged kset header between the key tail and the dirty tail: those ksets are on the
     * backing device, so every sector reads its newest value — including sectors whose older
     * value sits in a kset before the damage.
     */
    @Test
    void aDamagedKsetHeaderBeforeTheDirtyTailLosesNothing(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory(DEVICE);
        try (Rig rig = Rig.format(SEGMENTS, DEVICE, false)) {
            rig.open(QUIET);
            long hot = 5 * MIB;
            rig.write(model, hot, 4096); // its old value, in an early kset
            rig.cache.flush();
            for (int i = 0; i < 40; i++) {
                writeSome(rig, model, r, 5, false);
                rig.cache.flush();
            }
            rig.write(model, hot, 4096); // its new value, in a late kset
            rig.cache.flush();
            rig.cache.flushAll(left -> { });
            writeSome(rig, model, r, 30, true); // dirty, after the dirty tail
            List<LogReader.KsetAt> ksets = Rig.ksets(rig.cache);
            long dirtySeq = rig.cache.engine().info.current().dirtyTail().ksetSeq();
            rig.closeCache();
            LogReader.KsetAt victim = ksets.stream().filter(k -> k.at().ksetSeq() == 20).findFirst().orElseThrow();
            assertThat(victim.at().ksetSeq()).isLessThan(dirtySeq);
            long at = Layout.segmentAreaOffset(SEGMENTS) + victim.at().segment() * MIB + victim.at().offset();
            flip(rig.bytes(), at + 10); // the header's sequence
            rig.open(BUSY);
            verifyCurrent(rig, model, seed + " after a damaged kset header");
            // The cache keeps working: wrap the log a few times, then check the disk alone.
            rig.cache.setGcPercent(0);
            for (int i = 0; i < 4; i++) {
                writeSome(rig, model, r, 600, true);
            }
            rig.cache.flushAll(left -> { });
            verifyCurrent(rig, model, seed + " after wrapping");
            assertThat(((MemoryBackingDevice) rig.backing).toByteArray()).isEqualTo(model.current);
        }
    }

    /** A damaged key slot inside a sealed kset: that key is skipped and counted; no other key suffers. */
    @Test
    void aDamagedKeyInASealedKsetIsSkippedAndCounted(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory(DEVICE);
        try (Rig rig = Rig.format(SEGMENTS, DEVICE, false)) {
            rig.open(QUIET);
            for (int i = 0; i < 64; i++) {
                rig.write(model, i * 64 * 1024L, 8192); // one key each, distinct sectors
            }
            rig.cache.flush();
            LogReader.KsetAt k = Rig.ksets(rig.cache).getFirst();
            assertThat(k.sealed()).isTrue();
            int slot = r.nextInt(k.slots());
            KeyRecord victim = rig.cache.engine().reader.key(k, slot);
            long slotAt = rig.cache.engine().reader.slotAddress(k, slot);
            rig.closeCache();
            flip(rig.bytes(), slotAt + r.nextInt(KeyRecord.SIZE));
            rig.open(QUIET);
            assertThat(rig.cache.status().corruptKeysSkipped()).as("%s slot %d", seed, slot).isEqualTo(1);
            for (int i = 0; i < 64; i++) {
                long off = i * 64 * 1024L;
                byte[] got = rig.read(off, 8192);
                if (off == victim.offset()) {
                    assertThat(got).as("the damaged key's sectors read the backing device").isEqualTo(new byte[8192]);
                } else {
                    assertThat(got).as("%s: key at %d", seed, off)
                            .isEqualTo(Arrays.copyOfRange(model.current, (int) off, (int) off + 8192));
                }
            }
        }
    }

    /** With the data-CRC option, damaged data is found at replay: the read returns the older, written-back value. */
    @Test
    void damagedDataIsDetectedByTheDataCrcAndTheOlderValueIsRead(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory(DEVICE);
        try (Rig rig = Rig.format(SEGMENTS, DEVICE, true)) {
            rig.open(QUIET);
            long off = 3 * MIB + 4096;
            rig.write(model, off, 16384);
            rig.cache.flushAll(left -> { });
            writeSome(rig, model, r, 20, false);
            // What the range holds before the write to be damaged: usually the flushed write above,
            // partly one of the random writes when one overlaps it (seed 4578195863857666558).
            byte[] older = Arrays.copyOfRange(model.current, (int) off, (int) off + 16384);
            rig.write(model, off, 16384);
            rig.cache.flush();
            KeyRecord newest = null;
            for (LogReader.KsetAt k : Rig.ksets(rig.cache)) {
                for (int s = 0; s < k.slots(); s++) {
                    KeyRecord key = rig.cache.engine().reader.key(k, s);
                    if (key != null && key.offset() == off && key.dirty()) {
                        newest = key;
                    }
                }
            }
            assertThat(newest).isNotNull();
            long data = Layout.segmentAreaOffset(SEGMENTS) + newest.segment() * MIB + newest.segmentOffset();
            rig.closeCache();
            flip(rig.bytes(), data + r.nextInt(newest.length()));
            rig.open(QUIET);
            assertThat(rig.cache.status().dataCrcErrors()).as("found at replay").isEqualTo(1);
            assertThat(rig.read(off, 16384)).as("%s: the older value, not garbage", seed).isEqualTo(older);
            System.arraycopy(older, 0, model.current, (int) off, older.length);
            rig.cache.flushAll(left -> { });
            assertThat(((MemoryBackingDevice) rig.backing).toByteArray())
                    .as("the damaged data never reaches the backing device").isEqualTo(model.current);
        }
    }

    // ------------------------------------------------------------------ fuzz

    /**
     * Random bytes flipped in the metadata and the key log of a closed cache: the next open either
     * fails with an IOException that says what is wrong, or opens and every sector reads something
     * that was once written there (or the zeros it started with); sectors no damaged key covers
     * read exactly their newest value.
     */
    @Test
    void randomFlipsInMetadataAndTheKeyLog(Seed seed) throws IOException {
        SplittableRandom master = seed.random();
        int opened = 0;
        int refused = 0;
        for (int round = 0; round < 40; round++) {
            long roundSeed = master.nextLong();
            SplittableRandom r = new SplittableRandom(roundSeed);
            String where = seed + " round " + round + " (round seed " + roundSeed + ")";
            WriteHistory model = new WriteHistory((int) (8 * MIB));
            try (Rig rig = Rig.format(8, 8 * MIB, r.nextBoolean())) {
                rig.open(new CacheOptions(1, 50, true, true));
                for (int i = 0; i < 60; i++) {
                    writeSomeIn(rig, model, r, 1 + r.nextInt(4), 8 * MIB);
                    if (r.nextInt(4) == 0) {
                        rig.cache.flush();
                    }
                    if (r.nextInt(30) == 0) {
                        rig.cache.flushAll(left -> { });
                    }
                }
                rig.cache.flush();
                Engine e = rig.cache.engine();
                List<Integer> logSegs = e.keyLog.chainFrom(e.info.current().keyTail().segment());
                rig.closeCache();
                long area = Layout.segmentAreaOffset(8);
                int flips = 1 + r.nextInt(8);
                for (int f = 0; f < flips; f++) {
                    long at;
                    if (r.nextInt(3) == 0) {
                        at = r.nextLong(Layout.SEGMENT_TABLE + 8 * Layout.SEGMENT_TABLE_ENTRY);
                        if (at >= 128 && at < Layout.CACHE_INFO_SLOT0) {
                            at = r.nextLong(128);
                        }
                    } else {
                        int seg = logSegs.get(r.nextInt(logSegs.size()));
                        at = area + seg * MIB + r.nextLong(64 * 1024); // ksets sit at the segment's start
                    }
                    flip(rig.bytes(), at, 1 << r.nextInt(8));
                }
                Cache c;
                try {
                    c = rig.open(new CacheOptions(1, 50, true, true));
                } catch (IOException ex) {
                    assertThat(ex.getMessage()).as(where).isNotBlank();
                    refused++;
                    continue;
                }
                opened++;
                for (long off = 0; off < 8 * MIB; off += MIB) {
                    byte[] got;
                    try {
                        got = rig.read(off, (int) MIB);
                    } catch (IOException ex) {
                        throw new AssertionError(where + ": read failed", ex);
                    }
                    for (int s = 0; s < MIB / SECTOR; s++) {
                        long sector = off + (long) s * SECTOR;
                        assertThat(model.onceWritten(sector, got, s * SECTOR))
                                .as("%s: sector at byte %d holds something never written there", where, sector)
                                .isTrue();
                    }
                }
                // It keeps working: new writes read back, drain reaches the disk.
                writeSomeIn(rig, model, r, 40, 8 * MIB);
                c.flushAll(left -> { });
                for (WriteHistory.W w : model.all.subList(model.all.size() - 40, model.all.size())) {
                    // only the newest write to each byte counts; compare with the model
                    byte[] got = rig.read(w.offset(), w.length());
                    assertThat(got).as("%s: new write [%d, +%d)", where, w.offset(), w.length())
                            .isEqualTo(Arrays.copyOfRange(model.current, (int) w.offset(), (int) w.end()));
                }
            }
        }
        assertThat(opened + refused).isEqualTo(40);
    }

    // ------------------------------------------------------------------ volume table

    /**
     * A medium of volumes with a damaged header or table: a clear error naming the medium, or
     * (one slot damaged) the other slot, through which each volume's cache still opens and reads
     * back exactly what it held.
     */
    @Test
    void aDamagedVolumeTableIsAClearErrorOrTheOtherSlot() throws IOException {
        PowerCutMedium m = PowerCutMedium.create(64 * MIB);
        io.pmcache.volume.VolumeMedium.format(m);
        io.pmcache.backing.MemoryBackingDevice disk = new io.pmcache.backing.MemoryBackingDevice(DEVICE, 5);
        io.pmcache.volume.VolumeMedium vm = io.pmcache.volume.VolumeMedium.open(m);
        io.pmcache.volume.Volume v = vm.create("v", disk, "/disk/v", 24 * MIB, new FormatOptions(MIB, false));
        MemorySegment data = MemorySegment.ofArray(new byte[64 << 10]).fill((byte) 0x5a);
        try (Cache c = Cache.open(v.medium(), disk, QUIET)) {
            c.write(0, data, true);
        }
        // Format wrote sequences 0 and 1 (no volume); the create wrote sequence 2 into slot 0. Damage
        // slot 0, the newest: slot 1 (no volume yet) is used
        long slot0 = io.pmcache.format.VolumeLayout.TABLE_SLOT0;
        byte was = m.segment().get(JAVA_BYTE, slot0 + 64);
        m.segment().set(JAVA_BYTE, slot0 + 64, (byte) (was ^ 1));
        List<String> damaged = new ArrayList<>();
        assertThat(io.pmcache.volume.VolumeMedium.open(m, damaged::add).volumes()).isEmpty();
        assertThat(damaged).singleElement().asString().contains("volume table slot 0").contains("CRC mismatch");
        m.segment().set(JAVA_BYTE, slot0 + 64, was);
        // slot 1 damaged instead: slot 0 lists the volume, whose cache holds the data
        long slot1 = io.pmcache.format.VolumeLayout.TABLE_SLOT1;
        m.segment().set(JAVA_BYTE, slot1 + 8, (byte) 0x77);
        io.pmcache.volume.Volume again = io.pmcache.volume.VolumeMedium.open(m, s -> { }).volume("v");
        try (Cache c = Cache.open(again.medium(), disk, QUIET)) {
            MemorySegment back = MemorySegment.ofArray(new byte[64 << 10]);
            c.read(0, back);
            assertThat(back.mismatch(data)).isEqualTo(-1);
        }
        // both damaged: a clear error naming both slots
        m.segment().set(JAVA_BYTE, slot0 + 64, (byte) (was ^ 1));
        assertThatThrownBy(() -> io.pmcache.volume.VolumeMedium.open(m)).isInstanceOf(MediaCorruptException.class)
                .hasMessageContaining(m.describe()).hasMessageContaining("no valid volume table");
        // every flipped byte of the medium header: a corrupt header, named
        for (int at = 0; at < io.pmcache.format.MediumHeader.SIZE; at++) {
            byte b = m.segment().get(JAVA_BYTE, at);
            m.segment().set(JAVA_BYTE, at, (byte) (b ^ (1 << (at % 8))));
            int flipped = at;
            assertThatThrownBy(() -> io.pmcache.volume.VolumeMedium.open(m)).as("byte %d flipped", flipped)
                    .isInstanceOf(MediaCorruptException.class).hasMessageContaining("medium")
                    .hasMessageContaining(at < 8 ? "not a pmcache cache medium" : "medium header");
            m.segment().set(JAVA_BYTE, at, b);
        }
    }

    // ------------------------------------------------------------------ helpers

    private static Rig filledRig(SplittableRandom r, boolean dataCrc) throws IOException {
        Rig rig = Rig.format(SEGMENTS, DEVICE, dataCrc);
        rig.open(QUIET);
        writeSome(rig, new WriteHistory(DEVICE), r, 50, true);
        rig.closeCache();
        return rig;
    }

    private static void fixSuperblockCrc(MemorySegment m) {
        m.set(JAVA_INT_UNALIGNED, 124, Crc.of(0, m, 0, 124));
    }

    private static void flip(MemorySegment m, long at) {
        flip(m, at, 0x10);
    }

    private static void flip(MemorySegment m, long at, int mask) {
        m.set(JAVA_BYTE, at, (byte) (m.get(JAVA_BYTE, at) ^ mask));
    }

    /** {@code n} writes of 512 B to 256 KiB anywhere on the device, then optionally a flush. */
    static void writeSome(Rig rig, WriteHistory model, SplittableRandom r, int n, boolean flush) throws IOException {
        writeSomeIn(rig, model, r, n, model.size());
        if (flush) {
            rig.cache.flush();
        }
    }

    static void writeSomeIn(Rig rig, WriteHistory model, SplittableRandom r, int n, long limit) throws IOException {
        for (int i = 0; i < n; i++) {
            int len = SECTOR * (r.nextInt(4) == 0 ? 1 + r.nextInt(512) : 1 + r.nextInt(16));
            long off = r.nextLong((limit - len) / SECTOR + 1) * SECTOR;
            rig.write(model, off, len);
        }
    }

    static void verifyCurrent(Rig rig, WriteHistory model, String where) throws IOException {
        for (long off = 0; off < model.size(); off += 4 * MIB) {
            int n = (int) Math.min(4 * MIB, model.size() - off);
            byte[] got = rig.read(off, n);
            int bad = Arrays.mismatch(got, 0, n, model.current, (int) off, (int) off + n);
            if (bad >= 0) {
                int sector = bad / SECTOR * SECTOR;
                long at = off + sector;
                assertThat(bad).as("%s: first wrong byte at %d: the sector holds %s, expected %s", where, off + bad,
                        model.describe(at, got, sector), model.describe(at, model.current, (int) at)).isEqualTo(-1);
            }
        }
    }

    static void verifyOnceWritten(Rig rig, WriteHistory model, String where) throws IOException {
        for (long off = 0; off < model.size(); off += 4 * MIB) {
            int n = (int) Math.min(4 * MIB, model.size() - off);
            byte[] got = rig.read(off, n);
            for (int s = 0; s < n / SECTOR; s++) {
                if (!Arrays.equals(got, s * SECTOR, (s + 1) * SECTOR, model.current, (int) off + s * SECTOR,
                        (int) off + (s + 1) * SECTOR)) {
                    assertThat(model.onceWritten(off + (long) s * SECTOR, got, s * SECTOR))
                            .as("%s: sector at %d holds something never written there", where, off + s * SECTOR)
                            .isTrue();
                    System.arraycopy(got, s * SECTOR, model.current, (int) off + s * SECTOR, SECTOR);
                }
            }
        }
    }
}
