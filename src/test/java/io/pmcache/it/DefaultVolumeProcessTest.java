package io.pmcache.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.admin.Json;
import io.pmcache.backing.FileBackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.FormatOptions;
import io.pmcache.cli.CliRun;
import io.pmcache.media.MappedFileMedium;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The single-volume path on a volume medium, through the real {@code pmcache serve} process and
 * real clients: {@code format --backing} (and an auto-formatting serve) make a medium holding the
 * volume {@code default}, which {@code serve --backing} serves exactly as a single cache (export
 * name from {@code --export}, single-cache /status and /metrics); a second volume added later is
 * served next to it by {@code serve} without --backing; a single-cache file of an older pmcache
 * still serves as before.
 */
@Timeout(300)
class DefaultVolumeProcessTest {
    private static final long MIB = 1L << 20;

    @TempDir
    Path dir;

    @RegisterExtension
    final ServeFixture fixture = new ServeFixture(() -> dir);

    private Path cache() {
        return dir.resolve("cache.img");
    }

    private Path socket() {
        return dir.resolve("pm.sock");
    }

    private String uri(String export) {
        return "nbd+unix:///" + export + "?socket=" + socket();
    }

    private static void ok(CliRun.Result r) {
        assertThat(r.exit()).as("exit; out: %s err: %s", r.out(), r.err()).isZero();
    }

    private ServeProcess serve(String... args) throws IOException, InterruptedException {
        List<String> all = new ArrayList<>(List.of("--socket", socket().toString(), "--parallel", "1"));
        all.addAll(List.of(args));
        return fixture.serve(all);
    }

    private void assertExportHolds(String export, Path expected) throws Exception {
        fixture.assertExportStartsWith(uri(export), expected);
    }

    @Test
    void formatWithBackingServesAsASingleCacheThenNextToASecondVolume() throws Exception {
        Tools.require("nbdcopy", "nbdinfo");
        Path a = dir.resolve("a.img");
        ok(CliRun.pm("format", "--cache", cache().toString(), "--cache-size", "64M", "--backing", a.toString(),
                "--backing-size", "32M", "--volume-size", "30M", "--segment-size", "1M"));
        Path data = fixture.randomFile("a.src", 24 * MIB, 11);
        String admin = ServeFixture.freeAdminAddress();
        ServeProcess one = serve("--cache", cache().toString(), "--backing", a.toString(), "--admin", admin);
        assertThat(Tools.run("nbdinfo", "--list", "nbd+unix:///?socket=" + socket()).expectSuccess())
                .contains("pmcache").doesNotContain("export=\"default\"");
        Tools.run("nbdcopy", data.toString(), uri("pmcache")).expectSuccess();
        assertExportHolds("", data); // the empty name too, as ever
        CliRun.Result status = CliRun.pm("status", "--admin", admin, "--json");
        ok(status);
        Map<?, ?> doc = (Map<?, ?>) Json.parse(status.out());
        assertThat(doc.containsKey("cache")).as("a single cache's live status: %s", status.out()).isTrue();
        java.net.http.HttpResponse<String> metrics = java.net.http.HttpClient.newHttpClient().send(
                java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://" + admin + "/metrics")).build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
        assertThat(metrics.body()).contains("pmcache_writes_total ").doesNotContain("volume=");
        ok(CliRun.pm("set", "gc-percent", "40", "--admin", admin)); // no --volume: one cache
        assertThat(CliRun.pm("status", "--admin", admin, "--json").out().replaceAll("\\s", ""))
                .contains("\"gc_percent\":40");
        assertThat(one.stop()).isZero();

        // the wrong backing device is refused by the cache's own check
        Path other = dir.resolve("other.img");
        Files.write(other, new byte[(int) (32 * MIB)]);
        CliRun.Result wrong = CliRun.pm("serve", "--cache", cache().toString(), "--backing", other.toString(),
                "--socket", dir.resolve("x.sock").toString());
        assertThat(wrong.exit()).isEqualTo(1);
        assertThat(wrong.err()).contains("refusing to mix").contains("wrong backing device");

        // a second volume in the space --volume-size left; serve without --backing serves both
        Path b = dir.resolve("b.img");
        ok(CliRun.pm("volume", "create", "--cache", cache().toString(), "--name", "vm-b", "--backing", b.toString(),
                "--backing-size", "16M", "--size", "32M", "--segment-size", "1M"));
        Path bData = fixture.randomFile("b.src", 16 * MIB, 12);
        ServeProcess both = serve("--cache", cache().toString());
        assertThat(Tools.run("nbdinfo", "--list", "nbd+unix:///?socket=" + socket()).expectSuccess())
                .contains("default").contains("vm-b");
        assertExportHolds("default", data);
        Tools.run("nbdcopy", bData.toString(), uri("vm-b")).expectSuccess();
        assertExportHolds("vm-b", bData);
        assertThat(both.stop()).isZero();

        // and serve --backing b.img picks the volume recorded for it
        ServeProcess byBacking = serve("--cache", cache().toString(), "--backing", b.toString(), "--export", "bee");
        assertExportHolds("bee", bData);
        assertThat(byBacking.stop()).isZero();
    }

    @Test
    void serveAutoFormatsAVolumeMedium() throws Exception {
        Tools.require("nbdcopy");
        Path c = dir.resolve("c.img");
        ServeProcess s = serve("--cache", cache().toString(), "--cache-size", "64M", "--segment-size", "1M",
                "--backing", c.toString(), "--backing-size", "16M", "--export", "disk");
        Path data = fixture.randomFile("c.src", 8 * MIB, 13);
        Tools.run("nbdcopy", data.toString(), uri("disk")).expectSuccess();
        assertThat(s.stop()).isZero();
        CliRun.Result list = CliRun.pm("volume", "list", "--cache", cache().toString(), "--json");
        ok(list);
        Map<?, ?> volumes = (Map<?, ?>) ((Map<?, ?>) Json.parse(list.out())).get("volumes");
        assertThat(volumes.keySet().toString()).isEqualTo("[default]");
        assertThat(((Map<?, ?>) volumes.get("default")).get("backing")).isEqualTo(c.toString());
        serve("--cache", cache().toString(), "--backing", c.toString(), "--export", "disk");
        assertExportHolds("disk", data);
    }

    @Test
    void aSingleCacheFileOfAnOlderPmcacheServesAsBefore() throws Exception {
        Tools.require("nbdcopy");
        Path a = dir.resolve("a.img");
        try (MappedFileMedium m = MappedFileMedium.create(cache(), 64 * MIB);
             FileBackingDevice disk = FileBackingDevice.createSparse(a, 32 * MIB)) {
            Cache.format(m, disk, new FormatOptions(MIB, false));
        }
        CliRun.Result noBacking = CliRun.pm("serve", "--cache", cache().toString(), "--socket",
                dir.resolve("x.sock").toString());
        assertThat(noBacking.exit()).isEqualTo(1);
        assertThat(noBacking.err()).contains("single-cache medium").contains("give --backing");
        Path data = fixture.randomFile("a.src", 24 * MIB, 14);
        ServeProcess s = serve("--cache", cache().toString(), "--backing", a.toString());
        Tools.run("nbdcopy", data.toString(), uri("pmcache")).expectSuccess();
        s.kill9();
        ServeProcess again = serve("--cache", cache().toString(), "--backing", a.toString());
        assertExportHolds("pmcache", data);
        assertThat(again.stop()).isZero();
        try (MappedFileMedium m = MappedFileMedium.openReadOnly(cache())) {
            assertThat(io.pmcache.volume.VolumeMedium.isVolumeMedium(m)).as("not migrated").isFalse();
        }
        CliRun.Result status = CliRun.pm("status", "--cache", cache().toString(), "--json");
        ok(status);
        assertThat(((Map<?, ?>) Json.parse(status.out())).containsKey("superblock")).isTrue();
    }
}
