package io.pmcache.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.admin.Json;
import io.pmcache.cli.CliRun;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every cache mode with a real client ({@code qemu-io}) against a real {@code pmcache serve}
 * process started with {@code --cache-mode MODE --sequential-cutoff 1M --admin}: small writes and
 * reads; in writethrough, writearound and none the backing file holds a write as soon as qemu-io
 * got its reply; a sequential stream past the cutoff bypasses the cache; then at run time
 * {@code pmcache set cache-mode} to the next mode (the drain's progress streamed),
 * {@code pmcache set sequential-cutoff}, {@code pmcache invalidate --admin}; every byte reads back
 * right after each step and after a restart, which keeps the mode.
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class CacheModesClientsTest {
    private static final long MIB = 1L << 20;
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @TempDir
    Path dir;
    private final List<ServeProcess> servers = new ArrayList<>();

    @AfterEach
    void stop() throws InterruptedException {
        for (ServeProcess s : servers) {
            s.close();
        }
    }

    private ServeProcess serve(int admin, String... extra) throws IOException, InterruptedException {
        List<String> args = new ArrayList<>(List.of(
                "--cache", dir.resolve("cache.img").toString(), "--cache-size", "64M", "--segment-size", "1M",
                "--parallel", "2", "--backing", dir.resolve("backing.img").toString(), "--backing-size", "64M",
                "--socket", dir.resolve("nbd.sock").toString(), "--admin", "127.0.0.1:" + admin));
        args.addAll(List.of(extra));
        ServeProcess s = ServeProcess.start(dir, args);
        servers.add(s);
        return s;
    }

    @ParameterizedTest
    @ValueSource(strings = {"writeback", "writethrough", "writearound", "none"})
    void everyModeWithQemuIo(String mode) throws Exception {
        Tools.require("qemu-io");
        int admin = freePort();
        ServeProcess s = serve(admin, "--cache-mode", mode, "--sequential-cutoff", "1M");
        String uri = s.uri();
        assertThat(cache(admin).get("cache_mode")).isEqualTo(mode);
        assertThat(num(cache(admin), "sequential_cutoff")).isEqualTo(MIB);

        Tools.run("qemu-io", "-f", "raw", "-c", "write -P 0xab 1M 256k", "-c", "write -P 0x5c 6M 4k", uri)
                .expectSuccess();
        if (!mode.equals("writeback")) { // acknowledged only once on the backing device
            assertThat(backing(MIB, 256 * 1024)).as("backing file after a %s write", mode).containsOnly((byte) 0xab);
            assertThat(backing(6 * MIB, 4096)).containsOnly((byte) 0x5c);
        }
        Tools.run("qemu-io", "-f", "raw", "-r", "-c", "read -P 0xab 1M 256k", "-c", "read -P 0x5c 6M 4k",
                "-c", "read -P 0xab 1M 256k", uri).expectSuccess();
        Map<String, Object> c = awaitCache(admin, "the reads counted", m -> num(m, "reads") >= 3);
        if (mode.equals("writethrough")) {
            assertThat(num(c, "writethrough_writes")).isEqualTo(2);
        }
        assertThat(num(c, "direct_writes")).isEqualTo(mode.equals("writeback") ? 0 : 2);
        if (mode.equals("none")) {
            assertThat(num(c, "fill_bytes")).as("none fills nothing").isZero();
        }

        // a sequential stream of 8 MiB in 512 KiB writes: past the 1 MiB cutoff it bypasses the cache
        // (in writeback, not in the 4 MiB range where its first, cached, writes are still dirty)
        List<String> stream = new ArrayList<>(List.of("qemu-io", "-f", "raw"));
        for (int i = 0; i < 16; i++) {
            stream.addAll(List.of("-c", "write -P 0xcd " + (16 * MIB + i * 512 * 1024) + " 512k"));
        }
        stream.add(uri);
        Tools.run(stream.toArray(String[]::new)).expectSuccess();
        if (mode.equals("writeback") || mode.equals("writethrough")) {
            awaitCache(admin, "14 writes past the cutoff", m -> num(m, "sequential_bypass_writes") == 14);
        }
        assertThat(backing(20 * MIB, (int) (4 * MIB))).as("the bypassed part of the stream").containsOnly((byte) 0xcd);

        // run time: the next mode (leaving writeback drains first), the cutoff off, invalidate
        String next = switch (mode) {
            case "writeback" -> "writethrough";
            case "writethrough" -> "writearound";
            case "writearound" -> "none";
            default -> "writeback";
        };
        Tools.run("qemu-io", "-f", "raw", "-c", "write -P 0x77 30M 1M", uri).expectSuccess();
        CliRun.Result set = CliRun.pm("set", "cache-mode", next, "--admin", "127.0.0.1:" + admin);
        assertThat(set.exit()).as("set cache-mode: %s %s", set.out(), set.err()).isZero();
        assertThat(set.out()).contains("cache mode is now " + next);
        Map<String, Object> after = cache(admin);
        assertThat(after.get("cache_mode")).isEqualTo(next);
        if (mode.equals("writeback")) {
            assertThat(num(after, "dirty_bytes")).as("drained before switching").isZero();
            assertThat(backing(30 * MIB, (int) MIB)).containsOnly((byte) 0x77);
        }
        CliRun.Result cut = CliRun.pm("set", "sequential-cutoff", "0", "--admin", "127.0.0.1:" + admin);
        assertThat(cut.exit()).as("%s %s", cut.out(), cut.err()).isZero();
        assertThat(num(cache(admin), "sequential_cutoff")).isZero();
        CliRun.Result inv = CliRun.pm("invalidate", "--admin", "127.0.0.1:" + admin);
        assertThat(inv.exit()).as("%s %s", inv.out(), inv.err()).isZero();
        assertThat(inv.out()).contains("invalidated");
        Tools.run("qemu-io", "-f", "raw", "-c", "write -P 0x99 6M 4k", uri).expectSuccess();
        String[] readAll = {"qemu-io", "-f", "raw", "-r", "-c", "read -P 0xab 1M 256k", "-c", "read -P 0x99 6M 4k",
            "-c", "read -P 0xcd 16M 8M", "-c", "read -P 0x77 30M 1M", "-c", "read -P 0 40M 1M", uri};
        Tools.run(readAll).expectSuccess();

        // a restart keeps the mode (persisted in the cache); the cutoff is serve's default again
        assertThat(s.stop()).as("exit status; log:%n%s", s.log()).isZero();
        ServeProcess again = serve(admin);
        assertThat(cache(admin).get("cache_mode")).isEqualTo(next);
        assertThat(num(cache(admin), "sequential_cutoff")).isZero();
        Tools.run(readAll[0], readAll[1], readAll[2], readAll[3], readAll[4], readAll[5], readAll[6], readAll[7],
                readAll[8], readAll[9], readAll[10], readAll[11], again.uri()).expectSuccess();
        String metrics = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + admin + "/metrics"))
                .build(), HttpResponse.BodyHandlers.ofString()).body();
        assertThat(metrics).contains("pmcache_cache_mode{mode=\"" + next + "\"} 1.0", "pmcache_sequential_cutoff_bytes");
    }

    private byte[] backing(long offset, int length) throws IOException {
        byte[] b = new byte[length];
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve("backing.img").toFile(), "r")) {
            f.seek(offset);
            f.readFully(b);
        }
        return b;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> cache(int port) throws IOException, InterruptedException {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/status"))
                .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).isEqualTo(200);
        return (Map<String, Object>) ((Map<String, Object>) Json.parse(r.body())).get("cache");
    }

    /** Polls /status (whose snapshot may be up to 200 ms old) until {@code condition} holds, for at most 60 s. */
    private static Map<String, Object> awaitCache(int port, String what,
                                                  java.util.function.Predicate<Map<String, Object>> condition)
            throws IOException, InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        Map<String, Object> doc = cache(port);
        while (!condition.test(doc)) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("status did not show " + what + " within 60 s; last: " + doc);
            }
            Thread.sleep(50);
            doc = cache(port);
        }
        return doc;
    }

    private static long num(Map<String, Object> m, String key) {
        return m.get(key) instanceof Number n ? n.longValue() : -1;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}
