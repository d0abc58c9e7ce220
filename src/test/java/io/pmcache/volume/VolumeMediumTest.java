package io.pmcache.volume;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheOptions;
import io.pmcache.cache.FormatOptions;
import io.pmcache.format.MediaCorruptException;
import io.pmcache.format.VolumeLayout;
import io.pmcache.media.MediumRegion;
import io.pmcache.media.PowerCutMedium;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Volumes on one medium: independent caches, crash-safe create and remove, single-cache media. */
class VolumeMediumTest {
    private static final long MIB = 1L << 20;
    private static final long MEDIUM = 64 * MIB;
    private static final long DEVICE = 32 * MIB;
    private static final CacheOptions QUIET = new CacheOptions(1, 90, false, false);
    private static final FormatOptions SMALL = new FormatOptions(MIB, false);

    private final MemoryBackingDevice diskA = new MemoryBackingDevice(DEVICE, 11);
    private final MemoryBackingDevice diskB = new MemoryBackingDevice(DEVICE, 22);

    /**
     * Every medium a test makes, closed after it: a PowerCutMedium holds two images of native
     * memory (128 MiB here) that only {@code close} frees. Unclosed, this class's power-cut
     * sweeps leaked gigabytes per run and the test JVM was OOM-killed in CI.
     */
    private final List<PowerCutMedium> media = new ArrayList<>();

    @org.junit.jupiter.api.AfterEach
    void closeMedia() {
        media.forEach(PowerCutMedium::close);
        media.clear();
    }

    private PowerCutMedium track(PowerCutMedium m) {
        media.add(m);
        return m;
    }

    /** Format writes the table into both slots: a damaged slot 0 right after format strands nothing. */
    @org.junit.jupiter.api.Test
    void aDamagedTableSlotRightAfterFormatLeavesTheVolumeReadable() throws IOException {
        PowerCutMedium m = track(PowerCutMedium.create(MEDIUM));
        VolumeMedium.formatWithVolume(m, VolumeMedium.DEFAULT_NAME, diskA, "/disk/a", 20 * MIB, SMALL);
        for (long slot : new long[] {VolumeLayout.TABLE_SLOT0, VolumeLayout.TABLE_SLOT1}) {
            long at = slot + 60000; // zero padding, covered by the slot's CRC
            m.segment().set(java.lang.foreign.ValueLayout.JAVA_BYTE, at, (byte) 1);
            List<String> damaged = new ArrayList<>();
            VolumeMedium vm = VolumeMedium.open(m, damaged::add);
            assertThat(vm.volumes()).extracting(Volume::name).containsExactly(VolumeMedium.DEFAULT_NAME);
            assertThat(damaged).singleElement().asString().contains("CRC");
            m.segment().set(java.lang.foreign.ValueLayout.JAVA_BYTE, at, (byte) 0);
        }
    }

    /** A medium too small for a volume names the smallest medium that holds one, and that one does. */
    @org.junit.jupiter.api.Test
    void aMediumTooSmallForAVolumeNamesTheSmallestThatFits() throws IOException {
        PowerCutMedium small = track(PowerCutMedium.create(4 * MIB));
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> VolumeMedium.formatWithVolume(small,
                        VolumeMedium.DEFAULT_NAME, diskA, "/disk/a", 0, SMALL)).isInstanceOf(IOException.class)
                .hasMessageContaining("the smallest cache is");
        String m = org.assertj.core.api.Assertions.catchThrowable(() -> VolumeMedium.formatWithVolume(small,
                VolumeMedium.DEFAULT_NAME, diskA, "/disk/a", 0, SMALL)).getMessage();
        long smallest = Long.parseLong(m.replaceAll(".*the smallest cache is (\\d+) bytes.*", "$1"));
        PowerCutMedium fits = track(PowerCutMedium.create(smallest));
        assertThat(VolumeMedium.formatWithVolume(fits, VolumeMedium.DEFAULT_NAME, diskA, "/disk/a", 0, SMALL)
                .medium().size()).isEqualTo(smallest - VolumeLayout.DATA_START);
    }

    private PowerCutMedium volumeMedium() throws IOException {
        PowerCutMedium m = track(PowerCutMedium.create(MEDIUM));
        VolumeMedium.format(m);
        return m;
    }

    /** Runs {@code check} on a cut of {@code medium} at this point and closes the cut at once (one at a time in memory). */
    private static void checkCut(PowerCutMedium medium, long seed, List<Throwable> failures, CutCheck check) {
        if (!failures.isEmpty()) {
            return;
        }
        try (PowerCutMedium cut = medium.cut(seed)) {
            check.on(cut);
        } catch (Throwable t) {
            failures.add(t);
        }
    }

    private interface CutCheck {
        void on(PowerCutMedium cut) throws IOException;
    }

    private static void rethrowFirst(List<Throwable> failures) {
        if (!failures.isEmpty()) {
            Throwable t = failures.get(0);
            if (t instanceof Error e) {
                throw e;
            }
            throw new AssertionError(t);
        }
    }

    private static MemorySegment pattern(int seed, int size) {
        MemorySegment s = Arena.ofAuto().allocate(size);
        for (int i = 0; i < size; i++) {
            s.set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) (seed * 31 + i * 7));
        }
        return s;
    }

    private static void write(Volume v, MemoryBackingDevice disk, int seed) throws IOException {
        try (Cache c = Cache.open(v.medium(), disk, QUIET)) {
            c.write(0, pattern(seed, 256 << 10), true);
        }
    }

    private static void assertHolds(Volume v, MemoryBackingDevice disk, int seed) throws IOException {
        VolumeMedium.checkIdentity(v);
        try (Cache c = Cache.open(v.medium(), disk, QUIET)) {
            MemorySegment got = Arena.ofAuto().allocate(256 << 10);
            c.read(0, got);
            assertThat(got.mismatch(pattern(seed, 256 << 10))).as("volume %s", v.name()).isEqualTo(-1);
            assertThat(c.status().dirtyBytes()).isPositive(); // still in the cache, not written back
        }
    }

    @Test
    void twoVolumesAreIndependentCachesThatSurviveACrash() throws IOException {
        PowerCutMedium m = volumeMedium();
        VolumeMedium vm = VolumeMedium.open(m);
        Volume a = vm.create("a", diskA, "/disk/a", 20 * MIB, SMALL);
        Volume b = vm.create("b", diskB, "/disk/b", 20 * MIB, SMALL);
        assertThat(a.medium().size()).isEqualTo(20 * MIB);
        assertThat(((MediumRegion) b.medium()).offset()).isEqualTo(VolumeLayout.DATA_START + 20 * MIB);
        write(a, diskA, 1);
        write(b, diskB, 2);
        PowerCutMedium after = track(m.cut(7)); // writes were FUA: persisted
        VolumeMedium reopened = VolumeMedium.open(after);
        assertThat(reopened.volumes()).extracting(Volume::name).containsExactly("a", "b");
        assertThat(reopened.volume("b").backing()).isEqualTo("/disk/b");
        assertHolds(reopened.volume("a"), diskA, 1);
        assertHolds(reopened.volume("b"), diskB, 2);
        assertThatThrownBy(() -> Cache.open(reopened.volume("a").medium(), diskB, QUIET))
                .hasMessageContaining("wrong backing device");
    }

    @Test
    void namesSizesAndSpaceAreChecked() throws IOException {
        VolumeMedium vm = VolumeMedium.open(volumeMedium());
        vm.create("a", diskA, "/disk/a", 30 * MIB, SMALL);
        assertThatThrownBy(() -> vm.create("a", diskB, "/disk/b", 8 * MIB, SMALL)).hasMessageContaining("already has");
        assertThatThrownBy(() -> vm.create("no space", diskB, "/disk/b", 8 * MIB, SMALL))
                .hasMessageContaining("volume name");
        assertThatThrownBy(() -> vm.create("b", diskB, "/disk/b", 40 * MIB, SMALL))
                .hasMessageContaining("no free region of 40 MiB").hasMessageContaining("largest free region: 32 MiB");
        assertThatThrownBy(() -> vm.volume("c")).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("it has: a");
        assertThat(vm.volume(null).name()).isEqualTo("a");
        vm.create("b", diskB, "/disk/b", 8 * MIB, SMALL);
        assertThatThrownBy(() -> vm.volume(null)).hasMessageContaining("give --volume");
        // freed space is reused
        vm.remove("a");
        assertThat(vm.largestFree()).isEqualTo(30 * MIB);
        assertThat(((MediumRegion) vm.create("c", diskA, "/disk/a", 10 * MIB, SMALL).medium()).offset())
                .isEqualTo(VolumeLayout.DATA_START);
    }

    @Test
    void aSingleCacheMediumIsOneImplicitVolume() throws IOException {
        PowerCutMedium m = track(PowerCutMedium.create(MEDIUM));
        Cache.format(m, diskA, SMALL);
        write(new Volume("x", m, null), diskA, 3);
        VolumeMedium vm = VolumeMedium.open(m);
        assertThat(vm.singleCache()).isTrue();
        Volume only = vm.volume(null);
        assertThat(only.name()).isEqualTo(VolumeMedium.IMPLICIT_NAME);
        assertThat(only.medium()).isSameAs(m);
        assertThat(only.backing()).isNull();
        assertHolds(only, diskA, 3);
        assertThatThrownBy(() -> vm.create("b", diskB, "/disk/b", 8 * MIB, SMALL)).hasMessageContaining("single-cache");
        assertThatThrownBy(() -> vm.remove("default")).hasMessageContaining("single-cache");
    }

    @Test
    void aForeignMediumIsRefused() {
        PowerCutMedium m = track(PowerCutMedium.create(MEDIUM));
        assertThatThrownBy(() -> VolumeMedium.open(m)).isInstanceOf(MediaCorruptException.class)
                .hasMessageContaining("not a pmcache cache medium");
    }

    /** A power cut at every persist of a create: the volume is either fully there or not at all. */
    @Test
    void aPowerCutDuringCreateLeavesNoHalfVolume() throws IOException {
        PowerCutMedium m = volumeMedium();
        VolumeMedium vm = VolumeMedium.open(m);
        write(vm.create("a", diskA, "/disk/a", 20 * MIB, SMALL), diskA, 1);
        // Each cut is checked and closed inside the persist callback: kept until the end, the cuts
        // (128 MiB of native memory each) added up to gigabytes.
        List<Throwable> failures = new ArrayList<>();
        int[] cuts = {0};
        int[] listed = {0};
        m.observePersists((medium, index, offset, length) -> {
            for (long seed = 0; seed < 2; seed++) {
                cuts[0]++;
                checkCut(medium, seed * 1000 + index, failures, cut -> {
                    VolumeMedium after = VolumeMedium.open(cut);
                    List<String> names = after.volumes().stream().map(Volume::name).toList();
                    assertThat(names).isIn(List.of("a"), List.of("a", "b"));
                    assertHolds(after.volume("a"), diskA, 1);
                    if (names.contains("b")) {
                        listed[0]++;
                        try (Cache c = Cache.open(after.volume("b").medium(), diskB, QUIET)) {
                            assertThat(c.status().dirtyBytes()).isZero();
                        }
                    } else {
                        // the half-made region is free space: creating there works
                        write(after.create("b", diskB, "/disk/b", 20 * MIB, SMALL), diskB, 2);
                        assertHolds(VolumeMedium.open(cut).volume("b"), diskB, 2);
                    }
                });
            }
        });
        vm.create("b", diskB, "/disk/b", 20 * MIB, SMALL);
        m.observePersists(null);
        rethrowFirst(failures);
        assertThat(cuts[0]).isGreaterThan(6);
        assertThat(listed[0]).as("cuts during the table write itself may keep it").isLessThan(cuts[0]);
    }

    /**
     * {@code format --backing} (formatWithVolume) cut at every persist: the medium is either not a
     * pmcache medium at all (no magic: as an interrupted format always was), a medium header torn
     * by the cut of its own write (a clear error naming it, as a torn superblock is), or a volume
     * medium holding the whole, empty volume {@code default}; never a medium without its volume.
     */
    @Test
    void aPowerCutDuringFormatWithVolumeLeavesNothingOrTheWholeVolume() throws IOException {
        PowerCutMedium m = track(PowerCutMedium.create(MEDIUM));
        List<Throwable> failures = new ArrayList<>();
        int[] cuts = {0};
        int[] whole = {0};
        m.observePersists((medium, index, offset, length) -> {
            for (long seed = 0; seed < 2; seed++) {
                cuts[0]++;
                checkCut(medium, seed * 1000 + index, failures, cut -> {
                    if (!VolumeMedium.looksFormatted(cut)) {
                        return;
                    }
                    VolumeMedium after;
                    try {
                        after = VolumeMedium.open(cut);
                    } catch (io.pmcache.format.MediaCorruptException torn) {
                        // the header's own write torn by the cut: a clear error, as a torn superblock
                        // of a single-cache format is (format again)
                        assertThat(torn.getMessage()).contains("medium header");
                        return;
                    }
                    whole[0]++;
                    assertThat(after.volumes()).extracting(Volume::name).containsExactly(VolumeMedium.DEFAULT_NAME);
                    Volume v = after.volume(null);
                    VolumeMedium.checkIdentity(v);
                    try (Cache c = Cache.open(v.medium(), diskA, QUIET)) {
                        assertThat(c.status().dirtyBytes()).isZero();
                    }
                });
            }
        });
        Volume made = VolumeMedium.formatWithVolume(m, VolumeMedium.DEFAULT_NAME, diskA, "/disk/a", 20 * MIB, SMALL);
        m.observePersists(null);
        rethrowFirst(failures);
        assertThat(made.medium().size()).isEqualTo(20 * MIB);
        assertThat(cuts[0]).isGreaterThan(4);
        assertThat(whole[0]).as("only cuts after the header's persist hold a medium").isLessThan(cuts[0]);
        VolumeMedium vm = VolumeMedium.open(m);
        assertThat(vm.freeBytes()).isEqualTo(MEDIUM - 2 * MIB - 20 * MIB);
        write(vm.create("b", diskB, "/disk/b", 20 * MIB, SMALL), diskB, 2); // the rest takes another volume
        assertHolds(VolumeMedium.open(m).volume("b"), diskB, 2);
    }

    /** A power cut at every persist of a remove: the volume is either still whole or gone. */
    @Test
    void aPowerCutDuringRemoveLeavesTheVolumeWholeOrGone() throws IOException {
        PowerCutMedium m = volumeMedium();
        VolumeMedium vm = VolumeMedium.open(m);
        write(vm.create("a", diskA, "/disk/a", 20 * MIB, SMALL), diskA, 1);
        write(vm.create("b", diskB, "/disk/b", 20 * MIB, SMALL), diskB, 2);
        List<Throwable> failures = new ArrayList<>();
        boolean[] sawGone = {false};
        CutCheck wholeOrGone = cut -> {
            VolumeMedium after = VolumeMedium.open(cut);
            List<String> names = after.volumes().stream().map(Volume::name).toList();
            assertThat(names).isIn(List.of("a", "b"), List.of("b"));
            assertHolds(after.volume("b"), diskB, 2);
            if (names.contains("a")) {
                assertHolds(after.volume("a"), diskA, 1);
            } else {
                sawGone[0] = true;
            }
        };
        m.observePersists((medium, index, offset, length) -> {
            for (long seed = 0; seed < 2; seed++) {
                checkCut(medium, seed * 1000 + index, failures, wholeOrGone); // checked and closed at once
            }
        });
        vm.remove("a");
        m.observePersists(null);
        checkCut(m, 99, failures, wholeOrGone);
        rethrowFirst(failures);
        assertThat(sawGone[0]).isTrue();
    }

    /** A table that went back to an older copy names a cache the region no longer holds: refused. */
    @Test
    void aRegionHoldingAnotherCacheThanTheTableNamesIsRefused() throws IOException {
        PowerCutMedium m = volumeMedium();
        VolumeMedium vm = VolumeMedium.open(m);
        vm.create("a", diskA, "/disk/a", 20 * MIB, SMALL);
        PowerCutMedium old = track(m.copy());
        vm.remove("a");
        vm.create("b", diskB, "/disk/b", 20 * MIB, SMALL); // same region, another cache
        // put back the table of the time "a" existed, over both slots
        long from = VolumeLayout.TABLE_SLOT0;
        long len = 2L * VolumeLayout.TABLE_SLOT_SIZE;
        MemorySegment.copy(old.segment(), from, m.segment(), from, len);
        Volume stale = VolumeMedium.open(m).volume("a");
        assertThatThrownBy(() -> VolumeMedium.checkIdentity(stale)).isInstanceOf(MediaCorruptException.class)
                .hasMessageContaining("the volume table names");
    }

    /**
     * Corrupt-media campaign over the medium header and both table slots: any flipped byte gives
     * the intact table (from either slot) or a clear MediaCorruptException, never another exception
     * or a table that lists something else.
     */
    @Test
    void flippedBytesInTheHeaderOrTableAreAClearErrorOrTheOtherSlot() throws IOException {
        PowerCutMedium m = volumeMedium();
        VolumeMedium vm = VolumeMedium.open(m);
        vm.create("a", diskA, "/disk/a", 8 * MIB, SMALL);
        vm.create("b", diskB, "/disk/b", 8 * MIB, SMALL); // slot 0 lists a and b, slot 1 lists a
        java.util.SplittableRandom random = new java.util.SplittableRandom(42);
        MemorySegment s = m.segment();
        int errors = 0;
        for (int i = 0; i < 3000; i++) {
            long at = i < 64 ? i : random.nextLong(VolumeLayout.TABLE_SLOT1 + VolumeLayout.TABLE_SLOT_SIZE);
            byte was = s.get(java.lang.foreign.ValueLayout.JAVA_BYTE, at);
            s.set(java.lang.foreign.ValueLayout.JAVA_BYTE, at, (byte) (was ^ (1 << random.nextInt(8))));
            try {
                List<String> names = VolumeMedium.open(m, why -> { }).volumes().stream().map(Volume::name).toList();
                assertThat(names).as("byte %d flipped", at).isIn(List.of("a", "b"), List.of("a"));
            } catch (MediaCorruptException e) {
                errors++;
                assertThat(e.getMessage()).as("byte %d flipped", at).contains(m.describe());
            } finally {
                s.set(java.lang.foreign.ValueLayout.JAVA_BYTE, at, was);
            }
        }
        assertThat(errors).as("header flips are errors").isGreaterThanOrEqualTo(60);
        assertThat(VolumeMedium.open(m).volumes()).extracting(Volume::name).containsExactly("a", "b");
    }

    /** A persist that fails (msync EIO) at any point of a create: an error, no volume listed, and a retry works. */
    @Test
    void aFailedPersistDuringCreateListsNoVolume() throws IOException {
        PowerCutMedium base = volumeMedium();
        io.pmcache.media.FaultyMedium m = new io.pmcache.media.FaultyMedium(base);
        VolumeMedium vm = VolumeMedium.open(m);
        vm.create("a", diskA, "/disk/a", 8 * MIB, SMALL);
        long before = m.persists();
        vm.create("probe", diskB, "/disk/b", 8 * MIB, SMALL);
        long persistsPerCreate = m.persists() - before;
        vm.remove("probe");
        for (long n = 1; n <= persistsPerCreate; n++) {
            m.failNthPersist(n);
            long failedAt = n;
            assertThatThrownBy(() -> vm.create("b", diskB, "/disk/b", 8 * MIB, SMALL)).as("persist %d fails", failedAt)
                    .isInstanceOf(java.io.UncheckedIOException.class).hasMessageContaining("injected EIO");
            m.heal();
            assertThat(vm.volumes()).extracting(Volume::name).as("persist %d fails", n).containsExactly("a");
            try (PowerCutMedium cut = base.cut(n)) {
                assertThat(VolumeMedium.open(cut).volumes()).extracting(Volume::name).containsExactly("a");
            }
        }
        vm.create("b", diskB, "/disk/b", 8 * MIB, SMALL);
        assertThat(VolumeMedium.open(track(base.cut(1))).volumes()).extracting(Volume::name).containsExactly("a", "b");
    }
}
