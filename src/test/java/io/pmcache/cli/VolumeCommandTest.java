package io.pmcache.cli;

import static io.pmcache.cli.CliRun.pm;
import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.admin.Json;
import io.pmcache.backing.FileBackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheOptions;
import io.pmcache.media.MappedFileMedium;
import io.pmcache.volume.VolumeMedium;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code pmcache format} without --backing, {@code volume create|list|remove}, and --volume on the offline commands. */
class VolumeCommandTest {
    @TempDir
    Path dir;

    private Path cache() {
        return dir.resolve("cache.img");
    }

    private void ok(CliRun.Result r) {
        assertThat(r.exit()).as("exit; out: %s err: %s", r.out(), r.err()).isZero();
    }

    private void twoVolumes() {
        ok(pm("format", "--cache", cache().toString(), "--cache-size", "96M"));
        ok(pm("volume", "create", "--cache", cache().toString(), "--name", "vm-a", "--backing",
                dir.resolve("a.img").toString(), "--backing-size", "64M", "--size", "40M", "--segment-size", "1M"));
        ok(pm("volume", "create", "--cache", cache().toString(), "--name", "vm-b", "--backing",
                dir.resolve("b.img").toString(), "--backing-size", "32M", "--size", "40M", "--segment-size", "1M"));
    }

    /** Writes 1 MiB into a volume and leaves it dirty (no writeback). */
    private void dirty(String volume, String backing) throws Exception {
        try (MappedFileMedium m = MappedFileMedium.open(cache());
             FileBackingDevice disk = FileBackingDevice.open(dir.resolve(backing), false);
             Cache c = Cache.open(VolumeMedium.open(m).volume(volume).medium(), disk,
                     new CacheOptions(1, 90, false, false))) {
            MemorySegment data = Arena.ofAuto().allocate(1 << 20);
            data.fill((byte) 7);
            c.write(0, data, true);
            c.close(false);
        }
    }

    @Test
    void formatWithoutBackingThenVolumesListAndStatus() throws Exception {
        twoVolumes();
        CliRun.Result list = pm("volume", "list", "--cache", cache().toString(), "--json");
        ok(list);
        Map<?, ?> doc = (Map<?, ?>) Json.parse(list.out());
        Map<?, ?> volumes = (Map<?, ?>) doc.get("volumes");
        assertThat(volumes.keySet().toString()).isEqualTo("[vm-a, vm-b]");
        assertThat(((Map<?, ?>) volumes.get("vm-b")).get("backing")).isEqualTo(dir.resolve("b.img").toString());
        assertThat(((Number) ((Map<?, ?>) volumes.get("vm-a")).get("size")).longValue()).isEqualTo(40L << 20);
        assertThat(((Number) doc.get("free_bytes")).longValue()).isEqualTo(14L << 20);

        CliRun.Result status = pm("status", "--cache", cache().toString());
        ok(status);
        assertThat(status.out()).contains("vm-a").contains("vm-b");
        CliRun.Result one = pm("status", "--cache", cache().toString(), "--volume", "vm-b", "--json");
        ok(one);
        assertThat(((Map<?, ?>) ((Map<?, ?>) Json.parse(one.out())).get("volumes")).keySet().toString()).isEqualTo("[vm-b]");

        CliRun.Result check = pm("check", "--cache", cache().toString());
        ok(check);
        assertThat(check.out()).contains("volume vm-a: clean").contains("volume vm-b: clean");
        CliRun.Result noSuch = pm("status", "--cache", cache().toString(), "--volume", "vm-c");
        assertThat(noSuch.exit()).isEqualTo(1);
        assertThat(noSuch.err()).contains("no volume named 'vm-c'").contains("vm-a, vm-b");
    }

    @Test
    void serveWithABackingNoVolumeRecordsIsRefusedNamingTheVolumes() {
        twoVolumes();
        CliRun.Result r = pm("serve", "--cache", cache().toString(), "--backing", dir.resolve("c.img").toString(),
                "--backing-size", "8M", "--socket", dir.resolve("s").toString());
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).contains("holds 2 volumes, none for " + dir.resolve("c.img"))
                .contains("vm-a for " + dir.resolve("a.img")).contains("serve them all without --backing");
        assertThat(dir.resolve("c.img")).as("the backing file it created is removed again").doesNotExist();
    }

    /** create, list and remove share one --cache | --admin group: exactly one, said the same way by each. */
    @Test
    void volumeCommandsNeedExactlyOneTarget() {
        String[][] rest = {{"create", "--name", "x", "--backing", "b", "--size", "4M"}, {"list"}, {"remove", "--name", "x"}};
        for (String[] r : rest) {
            String[] none = Stream.concat(Stream.of("volume"), Arrays.stream(r)).toArray(String[]::new);
            CliRun.Result missing = pm(none);
            assertThat(missing.exit()).as("%s without a target", r[0]).isEqualTo(2);
            assertThat(missing.err()).contains("Missing required argument (specify one of these): "
                    + "(--cache=FILE | --admin=HOST:PORT)");
            String[] both = Stream.concat(Arrays.stream(none), Stream.of("--cache", "c", "--admin", "1"))
                    .toArray(String[]::new);
            CliRun.Result twice = pm(both);
            assertThat(twice.exit()).as("%s with both", r[0]).isEqualTo(2);
            assertThat(twice.err()).contains("--cache=FILE, --admin=HOST:PORT are mutually exclusive");
            assertThat(pm("volume", r[0], "--help").out().replaceAll("\\s+", " ")).as("%s --help", r[0])
                    .contains("The cache medium (formatted without --backing").contains(AdminClient.OPTION_HELP);
        }
    }

    @Test
    void createRefusesWhatDoesNotFit() {
        twoVolumes();
        CliRun.Result full = pm("volume", "create", "--cache", cache().toString(), "--name", "vm-c", "--backing",
                dir.resolve("c.img").toString(), "--backing-size", "32M", "--size", "20M");
        assertThat(full.exit()).isEqualTo(1);
        assertThat(full.err()).contains("no free region of 20 MiB");
        assertThat(Files.exists(dir.resolve("c.img"))).as("the backing file it created is removed again").isFalse();
        CliRun.Result badName = pm("volume", "create", "--cache", cache().toString(), "--name", "-x", "--backing",
                dir.resolve("c.img").toString(), "--size", "4M");
        assertThat(badName.exit()).isEqualTo(2);
        CliRun.Result twice = pm("volume", "create", "--cache", cache().toString(), "--name", "vm-a", "--backing",
                dir.resolve("a.img").toString(), "--size", "4M");
        assertThat(twice.exit()).isEqualTo(1);
        assertThat(twice.err()).contains("already has a volume named 'vm-a'");
    }

    @Test
    void removingADirtyVolumeIsRefusedUntilDetachedOrForced() throws Exception {
        twoVolumes();
        dirty("vm-a", "a.img");
        dirty("vm-b", "b.img");
        CliRun.Result refused = pm("volume", "remove", "--cache", cache().toString(), "--name", "vm-a");
        assertThat(refused.exit()).isEqualTo(1);
        assertThat(refused.err()).contains("volume vm-a holds up to").contains("not yet written back")
                .contains("pmcache detach --volume vm-a");
        // detach needs no --backing: the table records it
        ok(pm("detach", "--cache", cache().toString(), "--volume", "vm-a"));
        byte[] written = Files.readAllBytes(dir.resolve("a.img"));
        assertThat(written[0]).isEqualTo((byte) 7);
        assertThat(written[(1 << 20) - 1]).isEqualTo((byte) 7);
        ok(pm("volume", "remove", "--cache", cache().toString(), "--name", "vm-a"));
        // vm-b still dirty: --force removes it, with a warning
        CliRun.Result forced = pm("volume", "remove", "--cache", cache().toString(), "--name", "vm-b", "--force");
        ok(forced);
        CliRun.Result list = pm("volume", "list", "--cache", cache().toString(), "--json");
        assertThat(((Map<?, ?>) ((Map<?, ?>) Json.parse(list.out())).get("volumes"))).isEmpty();
    }

    /** A cache file as pmcache wrote it before volumes (format version 1, a superblock at offset 0). */
    private void singleCacheMedium(Path backing) throws Exception {
        try (MappedFileMedium m = MappedFileMedium.create(cache(), 64L << 20);
             FileBackingDevice disk = FileBackingDevice.createSparse(backing, 64L << 20)) {
            Cache.format(m, disk, io.pmcache.cache.FormatOptions.defaults());
        }
    }

    @Test
    void aSingleCacheMediumIsOneImplicitVolume() throws Exception {
        singleCacheMedium(dir.resolve("a.img"));
        CliRun.Result list = pm("volume", "list", "--cache", cache().toString());
        ok(list);
        assertThat(list.out()).contains("default").contains("single_cache_medium");
        CliRun.Result add = pm("volume", "create", "--cache", cache().toString(), "--name", "vm-b", "--backing",
                dir.resolve("b.img").toString(), "--backing-size", "32M", "--size", "8M");
        assertThat(add.exit()).isEqualTo(1);
        assertThat(add.err()).contains("single-cache medium");
        CliRun.Result status = pm("status", "--cache", cache().toString(), "--json");
        ok(status);
        assertThat(keys(Json.parse(status.out()))).as("a single cache's status, as ever")
                .contains("superblock", "key_log").doesNotContain("volumes");
        ok(pm("check", "--cache", cache().toString()));
        ok(pm("detach", "--cache", cache().toString(), "--backing", dir.resolve("a.img").toString()));
        CliRun.Result noBacking = pm("detach", "--cache", cache().toString());
        assertThat(noBacking.exit()).isEqualTo(1);
        assertThat(noBacking.err()).contains("give --backing");
    }

    @Test
    void formatWithBackingMakesAVolumeMediumHoldingTheDefaultVolume() throws Exception {
        Path a = dir.resolve("a.img");
        CliRun.Result f = pm("format", "--cache", cache().toString(), "--cache-size", "64M", "--backing",
                a.toString(), "--backing-size", "64M", "--volume-size", "30M", "--segment-size", "1M");
        ok(f);
        assertThat(f.out()).contains("volume default").contains("32 MiB free for `pmcache volume create`");
        try (MappedFileMedium m = MappedFileMedium.openReadOnly(cache())) {
            VolumeMedium vm = VolumeMedium.open(m);
            assertThat(vm.singleCache()).isFalse();
            assertThat(vm.volumes()).extracting(io.pmcache.volume.Volume::name).containsExactly("default");
            assertThat(vm.volume("default").backing()).isEqualTo(a.toString());
            assertThat(vm.volume("default").medium().size()).isEqualTo(30L << 20);
        }
        // one volume: status, check and detach need no --volume (nor, for detach, --backing)
        CliRun.Result status = pm("status", "--cache", cache().toString(), "--json");
        ok(status);
        assertThat(keys(((Map<?, ?>) Json.parse(status.out())).get("volumes"))).containsExactly(
                "default");
        CliRun.Result check = pm("check", "--cache", cache().toString(), "--backing", a.toString());
        ok(check);
        assertThat(check.out()).contains("volume default: clean");
        dirtyDefault(a);
        ok(pm("detach", "--cache", cache().toString()));
        CliRun.Result clean = pm("status", "--cache", cache().toString(), "--json");
        assertThat(clean.out().replaceAll("\\s", "")).contains("\"dirty_bytes_upper_bound\":0");
        // the rest of the medium takes a second volume
        ok(pm("volume", "create", "--cache", cache().toString(), "--name", "vm-b", "--backing",
                dir.resolve("b.img").toString(), "--backing-size", "32M", "--size", "32M", "--segment-size", "1M"));
        CliRun.Result list = pm("volume", "list", "--cache", cache().toString(), "--json");
        ok(list);
        assertThat(keys(((Map<?, ?>) Json.parse(list.out())).get("volumes"))).containsExactly(
                "default", "vm-b");
        CliRun.Result two = pm("detach", "--cache", cache().toString());
        assertThat(two.exit()).isEqualTo(1);
        assertThat(two.err()).contains("give --volume NAME");
        ok(pm("detach", "--cache", cache().toString(), "--volume", "default"));
    }

    @Test
    void formatWithBackingGivesTheDefaultVolumeTheWholeMediumUnlessSized() {
        ok(pm("format", "--cache", cache().toString(), "--cache-size", "64M", "--backing",
                dir.resolve("a.img").toString(), "--backing-size", "64M"));
        CliRun.Result list = pm("volume", "list", "--cache", cache().toString(), "--json");
        Map<?, ?> doc = (Map<?, ?>) Json.parse(list.out());
        assertThat(((Map<?, ?>) ((Map<?, ?>) doc.get("volumes")).get("default")).get("size")).as(
                "all but the volume table's 2 MiB").isEqualTo(62L << 20);
        assertThat(doc.get("free_bytes")).isEqualTo(0L);
        CliRun.Result add = pm("volume", "create", "--cache", cache().toString(), "--name", "vm-b", "--backing",
                dir.resolve("b.img").toString(), "--backing-size", "32M", "--size", "8M");
        assertThat(add.exit()).isEqualTo(1);
        assertThat(add.err()).contains("no free region of 8 MiB");
        CliRun.Result noBacking = pm("format", "--cache", dir.resolve("x.img").toString(), "--cache-size", "64M",
                "--volume-size", "8M");
        assertThat(noBacking.exit()).as("bad usage").isEqualTo(2);
        assertThat(noBacking.err()).contains("--volume-size needs --backing");
        CliRun.Result tooBig = pm("format", "--cache", dir.resolve("x.img").toString(), "--cache-size", "64M",
                "--backing", dir.resolve("a.img").toString(), "--volume-size", "63M");
        assertThat(tooBig.exit()).isEqualTo(1);
        assertThat(tooBig.err()).contains("too small").contains("needs at least");
        assertThat(dir.resolve("x.img")).doesNotExist();
    }

    private static java.util.List<String> keys(Object map) {
        return ((Map<?, ?>) map).keySet().stream().map(String::valueOf).toList();
    }

    /** Writes 1 MiB into the default volume and leaves it dirty. */
    private void dirtyDefault(Path backing) throws Exception {
        try (MappedFileMedium m = MappedFileMedium.open(cache());
             FileBackingDevice disk = FileBackingDevice.open(backing, false);
             Cache c = Cache.open(VolumeMedium.open(m).volume(null).medium(), disk,
                     new CacheOptions(1, 90, false, false))) {
            MemorySegment data = Arena.ofAuto().allocate(1 << 20);
            data.fill((byte) 7);
            c.write(0, data, true);
            c.close(false);
        }
        CliRun.Result dirty = pm("status", "--cache", cache().toString(), "--json");
        assertThat(dirty.out().replaceAll("\\s", "")).contains("\"dirty_bytes_upper_bound\":1048576");
    }

    @Test
    void formatRefusesAVolumeMediumWithDirtyData() throws Exception {
        twoVolumes();
        dirty("vm-b", "b.img");
        CliRun.Result r = pm("format", "--cache", cache().toString(), "--cache-size", "96M");
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).contains("already a pmcache cache holding up to");
    }

    @Test
    void aCorruptVolumeTableIsCorruptionForCheck() throws Exception {
        twoVolumes();
        try (MappedFileMedium m = MappedFileMedium.open(cache())) {
            // both table slots damaged (slot 1 holds the newest copy, slot 0 the one before)
            for (long at : new long[] {4096 + 70, 69632 + 70}) {
                m.segment().set(java.lang.foreign.ValueLayout.JAVA_BYTE, at,
                        (byte) (m.segment().get(java.lang.foreign.ValueLayout.JAVA_BYTE, at) ^ 0x10));
            }
            m.persist(0, 2 << 20);
        }
        CliRun.Result r = pm("check", "--cache", cache().toString());
        assertThat(r.exit()).isEqualTo(CheckCommand.EXIT_CORRUPT);
        assertThat(r.out()).contains("no valid volume table").contains("slot 0").contains("slot 1");
        CliRun.Result status = pm("status", "--cache", cache().toString());
        assertThat(status.exit()).isEqualTo(1);
        assertThat(status.err()).contains("no valid volume table");
    }
}
