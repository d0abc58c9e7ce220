package io.pmcache.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.admin.Json;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole operator path, process by process, on the packaged jar ({@code target/pmcache.jar}),
 * as an operator would run it:
 * format → serve --admin (with --no-writeback, so the data stays dirty in the cache and the
 * backing file provably gets it from detach) → writes through NBD → /metrics shows the writes and
 * the dirty bytes → {@code set gc-percent} shows in /status → SIGTERM, exit 0 → {@code check}
 * clean → {@code detach} → the backing file alone holds exactly what was written.
 *
 * <p>Runs under maven-failsafe in the {@code integration-test} phase, after {@code package}, so
 * the jar exists; the serve process gets a real SIGTERM ({@link Process#destroy()}). The NBD
 * writes use a minimal client in test code (independent of qemu-io being installed).
 */
class OperatorPathIT {
    private static final long BACKING = 32L << 20;
    private final List<Process> started = new ArrayList<>();

    @TempDir
    Path dir;

    @AfterEach
    void killLeftovers() {
        for (Process p : started) {
            p.destroyForcibly();
        }
    }

    record Run(int exit, String out, String err) {
    }

    private static List<String> java() {
        String java = ProcessHandle.current().info().command().orElse("java");
        Path jar = Path.of("target", "pmcache.jar").toAbsolutePath();
        assertThat(jar).as("the packaged jar (mvn package runs before integration-test)").exists();
        return new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED", "-jar", jar.toString()));
    }

    private ProcessBuilder builder(String... args) {
        List<String> cmd = java();
        cmd.addAll(Arrays.asList(args));
        return new ProcessBuilder(cmd).directory(dir.toFile());
    }

    private Run run(String... args) throws Exception {
        Process p = builder(args).redirectErrorStream(false).start();
        started.add(p);
        var out = p.getInputStream().readAllBytes();
        var err = p.getErrorStream().readAllBytes();
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
        Run r = new Run(p.exitValue(), new String(out, StandardCharsets.UTF_8), new String(err, StandardCharsets.UTF_8));
        System.out.println("$ pmcache " + String.join(" ", args) + "  -> " + r.exit + "\n" + r.out + r.err);
        return r;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static String get(String url) throws Exception {
        HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(url)).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as(url).isEqualTo(200);
        return r.body();
    }

    /** The value of an unlabelled or labelled sample, e.g. {@code pmcache_dirty_bytes}. */
    private static double metric(String text, String sample) {
        Matcher m = Pattern.compile("^" + Pattern.quote(sample) + " (\\S+)$", Pattern.MULTILINE).matcher(text);
        assertThat(m.find()).as("metric %s in:%n%s", sample, text).isTrue();
        return Double.parseDouble(m.group(1));
    }

    @Test
    void formatServeWriteObserveTuneStopCheckDetach() throws Exception {
        Path cache = dir.resolve("cache.img");
        Path backing = dir.resolve("backing.img");
        Path socket = dir.resolve("pmcache.sock");

        Run f = run("format", "--cache", cache.toString(), "--cache-size", "64M", "--backing", backing.toString(),
                "--backing-size", "32M", "--segment-size", "1M");
        assertThat(f.exit).isZero();
        assertThat(f.out).contains("formatted");

        int port = freePort();
        String admin = "127.0.0.1:" + port;
        Process serve = builder("serve", "--cache", cache.toString(), "--backing", backing.toString(), "--socket",
                socket.toString(), "--admin", admin, "--no-writeback").redirectError(dir.resolve("serve.err").toFile())
                .start();
        started.add(serve);
        BufferedReader serveOut = new BufferedReader(new InputStreamReader(serve.getInputStream(),
                StandardCharsets.UTF_8));
        String uri = serveOut.readLine();
        assertThat(uri).as("serve prints its NBD URI once listening; stderr: %s",
                Files.exists(dir.resolve("serve.err")) ? Files.readString(dir.resolve("serve.err")) : "").startsWith("nbd");

        // Writes through NBD, remembered in an image of the whole device.
        byte[] expected = new byte[(int) BACKING];
        Random rnd = new Random(42);
        long[][] extents = {{0, 4096}, {1 << 20, 256 << 10}, {(5 << 20) + 512, 70_000}, {BACKING - 8192, 8192}};
        long written = 0;
        try (MiniNbdClient nbd = new MiniNbdClient(socket, "pmcache")) {
            assertThat(nbd.size()).isEqualTo(BACKING);
            for (long[] e : extents) {
                byte[] data = new byte[(int) e[1]];
                rnd.nextBytes(data);
                nbd.write(e[0], data);
                System.arraycopy(data, 0, expected, (int) e[0], data.length);
                written += data.length;
            }
            nbd.flush();
            assertThat(nbd.read(1 << 20, 256 << 10))
                    .isEqualTo(Arrays.copyOfRange(expected, 1 << 20, (1 << 20) + (256 << 10)));
        }

        String metrics = get("http://" + admin + "/metrics");
        assertThat(metric(metrics, "pmcache_writes_total")).isEqualTo(extents.length);
        assertThat(metric(metrics, "pmcache_written_bytes_total")).isEqualTo(written);
        assertThat(metric(metrics, "pmcache_dirty_bytes")).isEqualTo(written);
        assertThat(metric(metrics, "pmcache_nbd_requests_total{command=\"write\"}")).isEqualTo(extents.length);
        assertThat(metric(metrics, "pmcache_segments")).isGreaterThan(0);

        Run set = run("set", "gc-percent", "33", "--admin", admin);
        assertThat(set.exit).isZero();
        Map<?, ?> status = (Map<?, ?>) Json.parse(get("http://" + admin + "/status"));
        assertThat(((Map<?, ?>) status.get("cache")).get("gc_percent")).isEqualTo(33L);
        Run liveStatus = run("status", "--admin", admin);
        assertThat(liveStatus.exit).isZero();
        assertThat(liveStatus.out).containsPattern("gc_percent\\s+33");

        serve.destroy(); // SIGTERM
        assertThat(serve.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(serve.exitValue()).as("clean stop on SIGTERM; stderr: %s",
                Files.readString(dir.resolve("serve.err"))).isZero();

        Run check = run("check", "--cache", cache.toString(), "--backing", backing.toString());
        assertThat(check.exit).isZero();
        assertThat(check.out).contains("clean").doesNotContain("error:");

        Run offline = run("status", "--cache", cache.toString(), "--json");
        assertThat(offline.exit).isZero();
        // format --backing made a volume medium: its one volume, default, under "volumes"
        Map<?, ?> off = (Map<?, ?>) ((Map<?, ?>) ((Map<?, ?>) Json.parse(offline.out)).get("volumes")).get("default");
        assertThat(((Map<?, ?>) off.get("cache_info")).get("gc_percent")).isEqualTo(33L);
        assertThat(((Number) ((Map<?, ?>) off.get("key_log")).get("dirty_bytes_upper_bound")).longValue())
                .isEqualTo(written);
        assertThat(Files.readAllBytes(backing)).as("nothing written back yet (--no-writeback)")
                .isNotEqualTo(expected);

        Run detach = run("detach", "--cache", cache.toString(), "--backing", backing.toString());
        assertThat(detach.exit).isZero();

        byte[] onDisk = Files.readAllBytes(backing);
        assertThat(onDisk.length).isEqualTo(expected.length);
        assertThat(Arrays.mismatch(onDisk, expected)).as("first differing byte of the backing file").isEqualTo(-1);

        Run after = run("status", "--cache", cache.toString(), "--json");
        Map<?, ?> segs = (Map<?, ?>) ((Map<?, ?>) ((Map<?, ?>) ((Map<?, ?>) Json.parse(after.out)).get("volumes"))
                .get("default")).get("segments");
        assertThat(segs.get("used")).as("detach leaves the cache empty").isEqualTo(1L);
        assertThat(run("check", "--cache", cache.toString(), "--backing", backing.toString()).exit).isZero();
    }
}
