package io.pmcache.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.cli.CliRun;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two volumes on one medium, served by the real {@code pmcache serve --cache FILE} process (no
 * --backing: every volume is an export named after it) to real clients (nbdcopy, nbdinfo, nbdsh).
 * The medium is 64 MiB (on /dev/shm when present), each volume a 24 MiB share of 1 MiB segments.
 */
@Timeout(300)
class VolumesProcessTest {
    private static final long MIB = 1L << 20;

    @TempDir
    Path dir;

    @RegisterExtension
    final ServeFixture fixture = new ServeFixture(() -> dir);

    private Path cache() throws IOException {
        return fixture.scratch().resolve("cache.img");
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

    private void twoVolumes() throws IOException {
        ok(CliRun.pm("format", "--cache", cache().toString(), "--cache-size", "64M"));
        ok(CliRun.pm("volume", "create", "--cache", cache().toString(), "--name", "vol-a", "--backing",
                dir.resolve("a.img").toString(), "--backing-size", "48M", "--size", "24M", "--segment-size", "1M"));
        ok(CliRun.pm("volume", "create", "--cache", cache().toString(), "--name", "vol-b", "--backing",
                dir.resolve("b.img").toString(), "--backing-size", "40M", "--size", "24M", "--segment-size", "1M"));
    }

    private ServeProcess serve(String... extra) throws IOException, InterruptedException {
        List<String> args = new ArrayList<>(List.of("--cache", cache().toString(), "--socket", socket().toString(),
                "--parallel", "1"));
        args.addAll(List.of(extra));
        return fixture.serve(args);
    }

    private void assertExportHolds(String export, Path expected) throws Exception {
        Path back = dir.resolve(export + ".back");
        Files.deleteIfExists(back);
        Tools.run("nbdcopy", uri(export), back.toString()).expectSuccess();
        assertThat(Files.mismatch(back, expected)).as("export %s differs from what was written", export)
                .isEqualTo(-1);
    }

    /** Data larger than each volume's share, written by nbdcopy into both, survives kill -9 of the server. */
    @Test
    void twoVolumesWrittenByNbdcopySurviveKill9() throws Exception {
        Tools.require("nbdcopy", "nbdinfo");
        twoVolumes();
        Path a = fixture.randomFile("a.src", 48 * MIB, 1);
        Path b = fixture.randomFile("b.src", 40 * MIB, 2);
        ServeProcess s = serve();
        assertThat(Tools.run("nbdinfo", "--list", "nbd+unix:///?socket=" + socket()).expectSuccess())
                .contains("vol-a").contains("vol-b");
        String info = Tools.run("nbdinfo", "--json", uri("vol-b")).expectSuccess().replaceAll("\\s", "");
        assertThat(info).contains("\"export-size\":" + 40 * MIB).contains("\"export-name\":\"vol-b\"")
                .contains("pmcachevolumevol-b");
        Tools.run("nbdcopy", "--connections=2", a.toString(), uri("vol-a")).expectSuccess();
        Tools.run("nbdcopy", "--connections=2", b.toString(), uri("vol-b")).expectSuccess();
        s.kill9();
        serve();
        assertExportHolds("vol-a", a);
        assertExportHolds("vol-b", b);
    }

    /**
     * serve prints, for every volume at every listener, a URI that reaches that volume (a user
     * copies it into nbdinfo); the listener's bare URI would find no export among two.
     */
    @Test
    void servePrintsAUriPerVolumeThatReachesIt() throws Exception {
        Tools.require("nbdinfo");
        twoVolumes();
        ServeProcess s = serve("--listen", "127.0.0.1:0");
        List<String> uris = s.stdoutLines();
        assertThat(uris).as(s.log()).hasSize(4);
        assertThat(uris.get(0)).isEqualTo(uri("vol-a"));
        assertThat(uris.get(1)).matches("nbd://127\\.0\\.0\\.1:\\d+/vol-a");
        assertThat(uris.get(2)).isEqualTo(uri("vol-b"));
        assertThat(uris.get(3)).isEqualTo(uris.get(1).replace("vol-a", "vol-b"));
        for (String u : uris) {
            String volume = u.contains("vol-a") ? "vol-a" : "vol-b";
            String info = Tools.run("nbdinfo", "--json", u).expectSuccess().replaceAll("\\s", "");
            assertThat(info).as(u).contains("\"export-name\":\"" + volume + "\"")
                    .contains("\"export-size\":" + (volume.equals("vol-a") ? 48 : 40) * MIB);
        }
    }

    /**
     * Through --admin while serving: a dirty volume's removal is refused; a volume added while a
     * client works on another does not disturb it; one volume is detached while the other serves.
     */
    @Test
    void adminAddsDetachesAndRefusesRemovalWhileOthersServe() throws Exception {
        Tools.require("nbdcopy", "nbdinfo");
        // the client is python3-libnbd (nbdsh's module), which is /usr/bin/python3's, not a pyenv's
        org.junit.jupiter.api.Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/python3"))
                && Tools.run("/usr/bin/python3", "-c", "import nbd").exit() == 0, "python3-libnbd is not installed");
        twoVolumes();
        String admin = ServeFixture.freeAdminAddress();
        serve("--no-writeback", "--admin", admin);
        Path a = fixture.randomFile("a.src", 8 * MIB, 3);
        Path b = fixture.randomFile("b.src", 8 * MIB, 4);
        Tools.run("nbdcopy", a.toString(), uri("vol-a")).expectSuccess();
        Tools.run("nbdcopy", b.toString(), uri("vol-b")).expectSuccess();

        CliRun.Result refused = CliRun.pm("volume", "remove", "--admin", admin, "--name", "vol-a");
        assertThat(refused.exit()).isEqualTo(1);
        assertThat(refused.err()).contains("volume vol-a holds up to").contains("not yet written back");

        // a client keeps writing and verifying vol-b until told to stop; a volume is added meanwhile
        Path started = dir.resolve("client.started");
        Path stop = dir.resolve("client.stop");
        String script = String.join("\n",
                "import os, time",
                "buf = bytes([7]) * 65536",
                "open('" + started + "', 'w').close()",
                "deadline = time.time() + 120",
                "n = 0",
                "while not os.path.exists('" + stop + "') and time.time() < deadline:",
                "    off = (n % 32) * 65536",
                "    if n < 32:",  // this server does not write back: write 2 MiB once, then read it over and over
                "        h.pwrite(buf, off)",
                "    assert h.pread(65536, off) == buf",
                "    h.flush()",
                "    n += 1",
                "assert os.path.exists('" + stop + "'), 'never told to stop'",
                "print('ok', n)");
        Process client = new ProcessBuilder("/usr/bin/python3", "-m", "nbd", "-u", uri("vol-b"), "-c", script).redirectErrorStream(true)
                .redirectOutput(dir.resolve("client.out").toFile()).start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!Files.exists(started) && client.isAlive() && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertThat(Files.exists(started)).as("client started: %s", Files.readString(dir.resolve("client.out")))
                    .isTrue();
            ok(CliRun.pm("volume", "create", "--admin", admin, "--name", "vol-c", "--backing",
                    dir.resolve("c.img").toString(), "--backing-size", "4M", "--size", "12M", "--segment-size", "1M"));
            assertThat(Tools.run("nbdinfo", "--list", "nbd+unix:///?socket=" + socket()).expectSuccess())
                    .contains("vol-c");
            Path c = fixture.randomFile("c.src", 4 * MIB, 5); // fits: this server does not write back
            Tools.run("nbdcopy", c.toString(), uri("vol-c")).expectSuccess();
            assertExportHolds("vol-c", c);
            Files.createFile(stop);
            assertThat(client.waitFor(120, TimeUnit.SECONDS)).isTrue();
            assertThat(client.exitValue()).as("client: %s", Files.readString(dir.resolve("client.out"))).isZero();
        } finally {
            client.destroyForcibly();
        }

        // detach vol-a: written back to a.img, no longer served; vol-b keeps serving
        ok(CliRun.pm("detach", "--admin", admin, "--volume", "vol-a"));
        byte[] onDisk = Files.readAllBytes(dir.resolve("a.img"));
        assertThat(java.util.Arrays.mismatch(java.util.Arrays.copyOf(onDisk, (int) (8 * MIB)), Files.readAllBytes(a)))
                .isEqualTo(-1);
        String list = Tools.run("nbdinfo", "--list", "nbd+unix:///?socket=" + socket()).expectSuccess();
        assertThat(list).doesNotContain("vol-a").contains("vol-b");
        Tools.run("nbdcopy", uri("vol-b"), dir.resolve("b.now").toString()).expectSuccess();
        ok(CliRun.pm("volume", "remove", "--admin", admin, "--name", "vol-a"));
        CliRun.Result status = CliRun.pm("status", "--admin", admin, "--json");
        ok(status);
        assertThat(status.out()).contains("\"vol-b\"").contains("\"vol-c\"").doesNotContain("\"vol-a\"");
        java.net.http.HttpResponse<String> metrics = java.net.http.HttpClient.newHttpClient().send(
                java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://" + admin + "/metrics")).build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
        assertThat(metrics.statusCode()).isEqualTo(200);
        assertThat(metrics.body()).contains("pmcache_dirty_bytes{volume=\"vol-b\"}")
                .contains("pmcache_dirty_bytes{volume=\"vol-c\"}").doesNotContain("volume=\"vol-a\"")
                .contains("pmcache_nbd_connections ");
        ok(CliRun.pm("set", "gc-percent", "40", "--admin", admin, "--volume", "vol-b"));
        CliRun.Result which = CliRun.pm("set", "gc-percent", "40", "--admin", admin);
        assertThat(which.exit()).isEqualTo(1);
        assertThat(which.err()).contains("--volume NAME");
        ok(CliRun.pm("set", "writeback-target", "20", "--admin", admin, "--volume", "vol-c"));
        CliRun.Result volumes = CliRun.pm("volume", "list", "--admin", admin, "--json");
        ok(volumes);
        assertThat(volumes.out()).doesNotContain("vol-a").contains("vol-b").contains("vol-c");
    }

    /** The export's first bytes are {@code expected}'s (the export may be larger). */
    private void assertExportStartsWith(String export, Path expected) throws Exception {
        fixture.assertExportStartsWith(uri(export), expected);
    }

    private static Map<?, ?> volumesOf(CliRun.Result r) {
        ok(r);
        return (Map<?, ?>) ((Map<?, ?>) io.pmcache.admin.Json.parse(r.out())).get("volumes");
    }

    /**
     * A volume whose backing device is missing at start does not stop the server: the others serve,
     * status and volume list show it failed with the path and the reason, the log names it; once the
     * device is back, {@code volume attach} serves it with its data.
     */
    @Test
    void aVolumeWhoseBackingFailsToOpenLeavesTheOthersServingAndAttachServesItOnceFixed() throws Exception {
        Tools.require("nbdcopy", "nbdinfo");
        twoVolumes();
        Path b = fixture.randomFile("b.src", 8 * MIB, 21);
        ServeProcess first = serve();
        Tools.run("nbdcopy", b.toString(), uri("vol-b")).expectSuccess();
        assertThat(first.stop()).isZero();
        Path bImg = dir.resolve("b.img");
        Path moved = dir.resolve("b.moved");
        Files.move(bImg, moved); // the same file (inode) comes back later: the cache's identity check passes

        String admin = ServeFixture.freeAdminAddress();
        ServeProcess s = serve("--admin", admin);
        String list = Tools.run("nbdinfo", "--list", "nbd+unix:///?socket=" + socket()).expectSuccess();
        assertThat(list).contains("vol-a").doesNotContain("vol-b");
        Path a = fixture.randomFile("a.src", 8 * MIB, 22);
        Tools.run("nbdcopy", a.toString(), uri("vol-a")).expectSuccess();
        assertExportStartsWith("vol-a", a);
        assertThat(s.log()).contains("volume vol-b is not served").contains(bImg.toString())
                .contains("does not exist");

        Map<?, ?> status = volumesOf(CliRun.pm("status", "--admin", admin, "--json"));
        assertThat(((Map<?, ?>) status.get("vol-b")).get("state")).isEqualTo("failed");
        assertThat((String) ((Map<?, ?>) status.get("vol-b")).get("error")).contains(bImg.toString())
                .contains("does not exist");
        assertThat(((Map<?, ?>) status.get("vol-a")).containsKey("cache")).isTrue();
        Map<?, ?> listed = volumesOf(CliRun.pm("volume", "list", "--admin", admin, "--json"));
        assertThat(((Map<?, ?>) listed.get("vol-b")).get("served")).isEqualTo(false);
        assertThat((String) ((Map<?, ?>) listed.get("vol-b")).get("failed")).contains("does not exist");
        CliRun.Result table = CliRun.pm("status", "--admin", admin);
        ok(table);
        assertThat(table.out()).contains("failed");

        CliRun.Result stillMissing = CliRun.pm("volume", "attach", "--admin", admin, "--name", "vol-b");
        assertThat(stillMissing.exit()).isEqualTo(1);
        assertThat(stillMissing.err()).contains("does not exist");

        Files.move(moved, bImg);
        ok(CliRun.pm("volume", "attach", "--admin", admin, "--name", "vol-b"));
        assertThat(Tools.run("nbdinfo", "--list", "nbd+unix:///?socket=" + socket()).expectSuccess())
                .contains("vol-a").contains("vol-b");
        assertExportStartsWith("vol-b", b);
        assertExportStartsWith("vol-a", a);
        Map<?, ?> after = volumesOf(CliRun.pm("status", "--admin", admin, "--json"));
        assertThat(((Map<?, ?>) after.get("vol-b")).containsKey("cache")).isTrue();
        assertThat(s.stop()).isZero();
    }

    /**
     * A detached volume is served again by {@code volume attach} while a client keeps working on
     * another volume, which sees no error.
     */
    @Test
    void aDetachedVolumeIsAttachedAgainWhileAnotherVolumesClientWorks() throws Exception {
        Tools.require("nbdcopy", "nbdinfo");
        org.junit.jupiter.api.Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/python3"))
                && Tools.run("/usr/bin/python3", "-c", "import nbd").exit() == 0, "python3-libnbd is not installed");
        twoVolumes();
        String admin = ServeFixture.freeAdminAddress();
        serve("--admin", admin);
        Path a = fixture.randomFile("a.src", 8 * MIB, 31);
        Tools.run("nbdcopy", a.toString(), uri("vol-a")).expectSuccess();

        Path started = dir.resolve("client.started");
        Path stop = dir.resolve("client.stop");
        String script = String.join("\n",
                "import os, time",
                "buf = bytes([9]) * 65536",
                "open('" + started + "', 'w').close()",
                "deadline = time.time() + 120",
                "n = 0",
                "while not os.path.exists('" + stop + "') and time.time() < deadline:",
                "    off = (n % 32) * 65536",
                "    h.pwrite(buf, off)",
                "    assert h.pread(65536, off) == buf",
                "    h.flush()",
                "    n += 1",
                "assert os.path.exists('" + stop + "'), 'never told to stop'",
                "print('ok', n)");
        Process client = new ProcessBuilder("/usr/bin/python3", "-m", "nbd", "-u", uri("vol-b"), "-c", script)
                .redirectErrorStream(true).redirectOutput(dir.resolve("client.out").toFile()).start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!Files.exists(started) && client.isAlive() && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertThat(Files.exists(started)).as("client started: %s", Files.readString(dir.resolve("client.out")))
                    .isTrue();
            ok(CliRun.pm("detach", "--admin", admin, "--volume", "vol-a"));
            assertThat(Tools.run("nbdinfo", "--list", "nbd+unix:///?socket=" + socket()).expectSuccess())
                    .doesNotContain("vol-a");
            CliRun.Result attach = CliRun.pm("volume", "attach", "--admin", admin, "--name", "vol-a");
            ok(attach);
            assertThat(attach.out()).contains("attached volume vol-a");
            assertThat(Tools.run("nbdinfo", "--list", "nbd+unix:///?socket=" + socket()).expectSuccess())
                    .contains("vol-a").contains("vol-b");
            assertExportStartsWith("vol-a", a);
            Path a2 = fixture.randomFile("a2.src", 4 * MIB, 32);
            Tools.run("nbdcopy", a2.toString(), uri("vol-a")).expectSuccess();
            assertExportStartsWith("vol-a", a2);

            CliRun.Result again = CliRun.pm("volume", "attach", "--admin", admin, "--name", "vol-a");
            assertThat(again.exit()).isEqualTo(1);
            assertThat(again.err()).contains("served already");
            CliRun.Result unknown = CliRun.pm("volume", "attach", "--admin", admin, "--name", "vol-z");
            assertThat(unknown.exit()).isEqualTo(1);
            assertThat(unknown.err()).contains("no volume named 'vol-z'");

            Files.createFile(stop);
            assertThat(client.waitFor(120, TimeUnit.SECONDS)).isTrue();
            assertThat(client.exitValue()).as("client: %s", Files.readString(dir.resolve("client.out"))).isZero();
        } finally {
            client.destroyForcibly();
        }
        java.net.http.HttpResponse<String> metrics = java.net.http.HttpClient.newHttpClient().send(
                java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://" + admin + "/metrics")).build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
        assertThat(metrics.body()).contains("pmcache_dirty_bytes{volume=\"vol-a\"}");
    }

    private static String get(String admin, String path) throws Exception {
        java.net.http.HttpResponse<String> r = java.net.http.HttpClient.newHttpClient().send(
                java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://" + admin + path)).build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as("GET %s: %s", path, r.body()).isEqualTo(200);
        return r.body();
    }

    /** Every counter series ({@code pmcache_*_total}) of {@code volume} in a scrape, by its line's name and labels. */
    private static Map<String, Double> counters(String scrape, String volume) {
        Map<String, Double> out = new java.util.TreeMap<>();
        for (String line : scrape.split("\n")) {
            if (line.startsWith("pmcache_") && line.contains("_total{") && line.contains("volume=\"" + volume + "\"")) {
                int space = line.lastIndexOf(' ');
                out.put(line.substring(0, space), Double.parseDouble(line.substring(space + 1)));
            }
        }
        return out;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> cacheStatus(String admin, String volume) throws Exception {
        Map<String, Object> doc = (Map<String, Object>) io.pmcache.admin.Json.parse(get(admin, "/status?volume=" + volume));
        return (Map<String, Object>) ((Map<String, Object>) ((Map<String, Object>) doc.get("volumes")).get(volume))
                .get("cache");
    }

    /**
     * A volume's counters count since the start of the server, like a disk's: detached and attached
     * again, its {@code /metrics} counters and {@code /status} figures go on from where they were
     * (a Prometheus counter never goes backwards for one label set), and count on from there; so
     * too for a volume removed and created again under the same name.
     */
    @Test
    void aVolumesCountersCarryOnAcrossDetachAndAttach() throws Exception {
        Tools.require("nbdcopy");
        twoVolumes();
        String admin = ServeFixture.freeAdminAddress();
        serve("--admin", admin);
        Path a = fixture.randomFile("a.src", 4 * MIB, 41);
        Tools.run("nbdcopy", a.toString(), uri("vol-a")).expectSuccess();
        Tools.run("nbdcopy", uri("vol-a"), dir.resolve("a.back").toString()).expectSuccess();
        Map<String, Double> before = counters(get(admin, "/metrics"), "vol-a");
        assertThat(before).as("vol-a's counters").containsKey("pmcache_written_bytes_total{volume=\"vol-a\"}");
        assertThat(before.get("pmcache_written_bytes_total{volume=\"vol-a\"}")).isGreaterThanOrEqualTo(4.0 * MIB);
        Map<String, Object> statusBefore = cacheStatus(admin, "vol-a");

        ok(CliRun.pm("detach", "--admin", admin, "--volume", "vol-a"));
        ok(CliRun.pm("volume", "attach", "--admin", admin, "--name", "vol-a"));

        Map<String, Double> after = counters(get(admin, "/metrics"), "vol-a");
        assertThat(after.keySet()).isEqualTo(before.keySet());
        before.forEach((series, was) -> assertThat(after.get(series)).as(series).isGreaterThanOrEqualTo(was));
        Map<String, Object> statusAfter = cacheStatus(admin, "vol-a");
        for (String figure : List.of("writes", "write_bytes", "reads", "read_bytes", "ksets_sealed", "writeback_bytes")) {
            assertThat(((Number) statusAfter.get(figure)).longValue()).as(figure)
                    .isGreaterThanOrEqualTo(((Number) statusBefore.get(figure)).longValue());
        }
        assertThat(((Number) statusAfter.get("dirty_bytes")).longValue()).as("a gauge: detach wrote everything back")
                .isZero();

        Tools.run("nbdcopy", fixture.randomFile("a2.src", MIB, 42).toString(), uri("vol-a")).expectSuccess();
        Thread.sleep(2 * 200); // a scrape may read figures up to 200 ms old (StatusSource.MAX_AGE_MILLIS)
        assertThat(counters(get(admin, "/metrics"), "vol-a").get("pmcache_written_bytes_total{volume=\"vol-a\"}"))
                .as("counting on from there").isGreaterThanOrEqualTo(
                        after.get("pmcache_written_bytes_total{volume=\"vol-a\"}") + MIB);

        // The counts belong to the name: removed and created again, vol-a counts on too.
        Map<String, Double> beforeRemoval = counters(get(admin, "/metrics"), "vol-a");
        ok(CliRun.pm("detach", "--admin", admin, "--volume", "vol-a"));
        ok(CliRun.pm("volume", "remove", "--admin", admin, "--name", "vol-a"));
        ok(CliRun.pm("volume", "create", "--admin", admin, "--name", "vol-a", "--backing",
                dir.resolve("a.img").toString(), "--size", "24M", "--segment-size", "1M"));
        Map<String, Double> recreated = counters(get(admin, "/metrics"), "vol-a");
        beforeRemoval.forEach((series, was) -> assertThat(recreated.get(series)).as(series)
                .isGreaterThanOrEqualTo(was));
    }

    /** A volume over a remote (NBD) backing device has the remote-backing gauges, labelled with the volume. */
    @Test
    void remoteBackingGaugesAreLabelledWithTheVolume() throws Exception {
        io.pmcache.backing.Nbdkit.require();
        Path img = dir.resolve("remote.img");
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(32 * MIB);
        }
        try (io.pmcache.backing.Nbdkit remote = io.pmcache.backing.Nbdkit.start(dir.resolve("remote.sock"), "file",
                img.toString())) {
            ok(CliRun.pm("format", "--cache", cache().toString(), "--cache-size", "64M"));
            ok(CliRun.pm("volume", "create", "--cache", cache().toString(), "--name", "far", "--backing",
                    remote.uri("disk"), "--size", "24M", "--segment-size", "1M"));
            ok(CliRun.pm("volume", "create", "--cache", cache().toString(), "--name", "near", "--backing",
                    dir.resolve("n.img").toString(), "--backing-size", "16M", "--size", "24M", "--segment-size", "1M"));
            String admin = ServeFixture.freeAdminAddress();
            ServeProcess s = serve("--admin", admin);
            String metrics = java.net.http.HttpClient.newHttpClient().send(
                    java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://" + admin + "/metrics")).build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString()).body();
            assertThat(metrics).containsPattern("(?m)^pmcache_backing_remote_up\\{volume=\"far\"\\} 1\\.0$")
                    .containsPattern("(?m)^pmcache_backing_remote_links_lost\\{volume=\"far\"\\} 0\\.0$")
                    .doesNotContain("pmcache_backing_remote_up{volume=\"near\"}")
                    .contains("pmcache_dirty_bytes{volume=\"near\"}");
            assertThat(s.stop()).isZero();
        }
    }
}
