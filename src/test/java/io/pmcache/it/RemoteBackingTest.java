package io.pmcache.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.pmcache.admin.Json;
import io.pmcache.backing.NbdBackingDevice;
import io.pmcache.backing.NbdClientOptions;
import io.pmcache.backing.NbdUri;
import io.pmcache.backing.Nbdkit;
import io.pmcache.cli.CliRun;
import io.pmcache.nbd.TestCertificates;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * pmcache in front of a remote NBD export ({@code nbdkit file} on a unix socket, so the test can
 * read the remote image directly): data larger than the cache goes through and ends up on the
 * remote; the remote killed in the middle of writeback and restarted 10 s later: pmcache keeps serving
 * what it holds, a read miss fails meanwhile, writeback resumes, and after detach the remote holds
 * exactly what was written.
 */
@Timeout(300)
@ExtendWith(RandomSeed.class)
class RemoteBackingTest {
    static final long REMOTE_SIZE = 64L << 20;
    /** How long the remote stays away in the kill test, from the kill to the restart (issue 13: 10 s). */
    static final Duration OUTAGE = Duration.ofSeconds(10);

    @TempDir
    Path dir;

    @RegisterExtension
    final ServeFixture fixture = new ServeFixture(() -> dir);

    @BeforeEach
    void requireNbdkit() {
        Nbdkit.require();
    }

    private Path cache() throws IOException {
        return fixture.scratch().resolve("cache.img");
    }

    private Path remoteImage() throws IOException {
        Path img = dir.resolve("remote.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(REMOTE_SIZE);
        }
        return img;
    }

    private ServeProcess serve(String backingUri, String... extra) throws IOException, InterruptedException {
        List<String> args = new ArrayList<>(List.of("--cache", cache().toString(),
                "--segment-size", "1M", "--parallel", "1", "--backing", backingUri,
                "--socket", dir.resolve("pmcache.sock").toString()));
        if (!List.of(extra).contains("--cache-size")) {
            args.addAll(List.of("--cache-size", "16M"));
        }
        args.addAll(List.of(extra));
        return fixture.serve(args);
    }

    @Test
    void dataLargerThanTheCacheEndsUpOnTheRemoteFile(Seed seed) throws Exception {
        Tools.require("nbdcopy");
        Path img = remoteImage();
        Nbdkit remote = fixture.closeLater(Nbdkit.start(dir.resolve("remote.sock"), "file", img.toString()));
        String backing = remote.uri("disk");

        byte[] data = new byte[40 << 20]; // 2.5 x the cache
        seed.random().nextBytes(data);
        Path in = dir.resolve("data.bin");
        Files.write(in, data);

        ServeProcess s = serve(backing);
        Tools.run("nbdcopy", in.toString(), s.uri()).expectSuccess();
        Path out = dir.resolve("readback.bin");
        Tools.run("nbdcopy", s.uri(), out.toString()).expectSuccess();
        byte[] back = Files.readAllBytes(out);
        assertThat(back.length).isEqualTo((int) REMOTE_SIZE);
        assertThat(MemorySegment.ofArray(back).asSlice(0, data.length).mismatch(MemorySegment.ofArray(data)))
                .as("first byte read back through pmcache that differs (%s)", seed).isEqualTo(-1L);
        assertThat(s.stop()).as("exit status; log:%n%s", s.log()).isZero();

        CliRun.Result detach = CliRun.pm("detach", "--cache", cache().toString(),
                "--backing", backing);
        assertThat(detach.exit()).as("detach: %s%s", detach.out(), detach.err()).isZero();
        remote.close();
        assertRemoteHolds(img, data, 0, seed);
    }

    @Test
    void remoteKilledMidWritebackAndRestarted(Seed seed) throws Exception {
        Path img = remoteImage();
        // A slow remote (500 ms a write, 16 at a time in nbdkit), and writeback paced at exactly 1 MiB/s
        // (min = max rate) with neither of the pacing rules that mean full speed in reach: the idle
        // delay is longer than the test, and the cache (32 MiB) is large enough that 8 MiB dirty is
        // no pressure. Writeback then takes about 8 s for the 8 MiB, so when the poll below sees it
        // under way, most of the data is still dirty and the kill lands mid-writeback. (Unpaced, or
        // paced with a 16 MiB cache, where 8 MiB dirty is pressure, or with a 5 s idle delay that a
        // slow poll outlasts, writeback could drain everything before the kill.) After the outage
        // the test turns full speed on through the admin endpoint, to drain.
        String[] server = {"--filter=delay", "file", img.toString(), "delay-write=500ms"};
        Nbdkit remote = Nbdkit.start(dir.resolve("remote.sock"), server);
        fixture.closeLater(() -> closeCurrent());
        current = remote;
        String backing = remote.uri("disk");
        int admin = freePort();
        ServeProcess s = serve(backing, "--admin", "127.0.0.1:" + admin, "--writeback-max-rate", "1M",
                "--writeback-min-rate", "1M", "--writeback-idle-delay", "600000", "--cache-size", "32M");

        byte[] model = new byte[(int) REMOTE_SIZE];
        SplittableRandom r = seed.random();
        long start = System.nanoTime();
        NbdClientOptions clientOptions = NbdClientOptions.defaults().withConnections(1);
        try (NbdBackingDevice client = NbdBackingDevice.open(NbdUri.parse(s.uri()), clientOptions)) {
            // 8 MiB of 64 KiB writes in the first 32 MiB: writeback starts.
            // Flushes seal a kset every 16 writes, so writeback takes them in several batches (of 4 MiB).
            for (int i = 0; i < 128; i++) {
                writeRandom(client, model, r, r.nextInt(32 * 16) * 65536L, 65536);
                if (i % 16 == 15) {
                    client.flush();
                }
            }
            // Waits for a state that, once reached, stays (bytes written back only grow): polling
            // for "written back and still dirty" raced the end of writeback on a loaded machine
            // (CI flake). With the pacing above data is still dirty here; the writes below, made
            // while the remote is down, are dirty in any case.
            Map<String, Object> before = awaitStatus(admin, "writeback under way",
                    doc -> num(doc, "cache", "writeback_bytes") > 0);
            remote.kill();
            System.out.println(elapsed(start) + ": remote killed; before the kill " + num(before, "cache",
                    "writeback_bytes") + " bytes were written back and " + num(before, "cache", "dirty_bytes")
                    + " dirty");
            long outageEnd = System.nanoTime() + OUTAGE.toNanos();

            // Down: writes and reads of what the cache holds go on; writeback fails and retries.
            List<Long> written = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                long at = r.nextInt(32 * 16) * 65536L;
                writeRandom(client, model, r, at, 65536);
                written.add(at);
            }
            client.flush();
            for (long at : written) {
                assertRange(client, model, (int) at, 65536, seed);
            }
            awaitStatus(admin, "writeback failing and the remote down", doc -> num(doc, "cache", "backing_errors") > 0
                    && "down".equals(sub(doc, "backing").get("state")));
            String metrics = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + admin + "/metrics"))
                    .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString()).body();
            assertThat(metrics).containsPattern("(?m)^pmcache_backing_remote_up 0\\.0$");
            byte[] miss = new byte[65536];
            assertThatThrownBy(() -> client.read(48L << 20, MemorySegment.ofArray(miss)))
                    .as("a read miss while the remote is down").isInstanceOf(IOException.class)
                    .hasMessageContaining("EIO");

            // The rest of the outage (10 s from the kill, as the issue asks): clients keep working on
            // what the cache holds. Each round overwrites one of the ranges written while down, reads
            // another back, flushes every fourth round, and checks the remote is still shown down.
            // The writes are bounded (at most 64 rounds of 64 KiB over 1 MiB of ranges: gc reclaims
            // what they overwrite, so the dirty data stays well inside the 32 MiB cache and no write
            // waits for space), the rounds are spaced by at most 100 ms so that they spread over the
            // outage instead of racing through; then it is reads and status until the 10 s are up.
            int rounds = 0;
            while (System.nanoTime() < outageEnd) {
                if (rounds < 64) {
                    writeRandom(client, model, r, written.get(r.nextInt(written.size())), 65536);
                    if (rounds % 4 == 3) {
                        client.flush();
                    }
                }
                long at = written.get(r.nextInt(written.size()));
                assertRange(client, model, (int) at, 65536, seed);
                assertThat(sub(status(admin), "backing").get("state")).as("the remote's state %d rounds into the "
                        + "outage", rounds).isEqualTo("down");
                rounds++;
                long left = outageEnd - System.nanoTime();
                if (left > 0) {
                    // pacing (see above), not a wait for a state
                    Thread.sleep(Math.min(100, TimeUnit.NANOSECONDS.toMillis(left) + 1));
                }
            }
            client.flush();
            System.out.println(elapsed(start) + ": " + rounds + " rounds of cached reads and writes during the "
                    + OUTAGE.toSeconds() + " s outage");
            assertThat(rounds).as("rounds of client I/O served from the cache during the outage").isPositive();

            // Back after the outage: writeback resumes, the miss is served.
            current = remote.restart();
            System.out.println(elapsed(start) + ": remote restarted");
            HttpResponse<String> fullSpeed = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + admin
                    + "/writeback")).timeout(Duration.ofSeconds(10)).POST(HttpRequest.BodyPublishers.ofString(
                    "{\"full_speed\": true}")).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(fullSpeed.statusCode()).as("POST /writeback: %s", fullSpeed.body()).isEqualTo(200);
            awaitStatus(admin, "the remote up and everything written back", doc -> num(doc, "cache", "dirty_bytes") == 0
                    && "up".equals(sub(doc, "backing").get("state")));
            System.out.println(elapsed(start) + ": remote up and everything written back");
            assertRange(client, model, 32 << 20, 32 << 20, seed);
            writeRandom(client, model, r, 40L << 20, 1 << 20);
            client.flush();
            assertRange(client, model, 0, (int) REMOTE_SIZE, seed);
            System.out.println(elapsed(start) + ": all of the export read back");
        }
        assertThat(s.stop()).as("exit status; log:%n%s", s.log()).isZero();
        assertThat(s.log()).contains("connection lost", "reconnected");
        CliRun.Result detach = CliRun.pm("detach", "--cache", cache().toString(),
                "--backing", backing);
        assertThat(detach.exit()).as("detach: %s%s", detach.out(), detach.err()).isZero();
        System.out.println(elapsed(start) + ": stopped and detached");
        closeCurrent();
        assertRemoteHolds(img, model, 0, seed);
    }

    @Test
    void nbdinfoMapThroughPmcacheShowsTheRemotesHoles() throws Exception {
        Tools.require("nbdinfo");
        // A sparse remote (nbdkit data: a 32 KiB page of data at 1 MiB and at 4 MiB, holes elsewhere).
        Nbdkit remote = fixture.closeLater(Nbdkit.start(dir.resolve("remote.sock"), "data", "@1048576 1 2 3 @4194304 9",
                "size=" + REMOTE_SIZE));
        ServeProcess s = serve(remote.uri("disk"));
        long mib = 1 << 20;
        try (NbdBackingDevice client = NbdBackingDevice.open(NbdUri.parse(s.uri()),
                NbdClientOptions.defaults().withConnections(1))) {
            assertThat(map(s.uri())).as("the remote's map, through pmcache").containsExactly(
                    new long[] {0, mib, 3}, new long[] {mib, 32 << 10, 0}, new long[] {mib + (32 << 10),
                        3 * mib - (32 << 10), 3}, new long[] {4 * mib, 32 << 10, 0},
                    new long[] {4 * mib + (32 << 10), REMOTE_SIZE - 4 * mib - (32 << 10), 3});
            // What the cache holds hides the remote's map: written data at 6 MiB, the remote's data at
            // 4 MiB trimmed (both dirty in the cache).
            client.write(6 * mib, MemorySegment.ofArray(new byte[65536]).fill((byte) 5), false);
            client.trim(4 * mib, 32 << 10);
            client.flush();
            assertThat(map(s.uri())).as("the cache's own extents over the remote's map").containsExactly(
                    new long[] {0, mib, 3}, new long[] {mib, 32 << 10, 0},
                    new long[] {mib + (32 << 10), 5 * mib - (32 << 10), 3}, new long[] {6 * mib, 65536, 0},
                    new long[] {6 * mib + 65536, REMOTE_SIZE - 6 * mib - 65536, 3});
        }
        assertThat(s.stop()).as("exit status; log:%n%s", s.log()).isZero();
    }

    @Test
    void aTlsRemoteThroughServeAndDetachAndAnUntrustedOneRefused(@TempDir Path pki, Seed seed) throws Exception {
        TestCertificates certs = TestCertificates.make(pki);
        Path img = remoteImage();
        Nbdkit remote = fixture.closeLater(Nbdkit.start(dir.resolve("remote.sock"), "--tls=require",
                "--tls-certificates=" + certs.server(), "--tls-verify-peer", "file", img.toString()));
        String base = "nbds+unix:///disk?socket=" + remote.socket() + "&tls-certificates=";

        // A server certificate from a CA the client does not trust: format refuses, naming why.
        String untrusted = base + certs.wrongCa();
        CliRun.Result refused = CliRun.pm("format", "--cache", cache().toString(),
                "--cache-size", "16M", "--backing", untrusted);
        assertThat(refused.exit()).as("format against an untrusted server: %s%s", refused.out(), refused.err())
                .isNotZero();
        assertThat(refused.err()).contains(untrusted, "not signed by a CA in");

        String backing = base + certs.client();
        ServeProcess s = serve(backing);
        byte[] data = new byte[4 << 20];
        seed.random().nextBytes(data);
        try (NbdBackingDevice client = NbdBackingDevice.open(NbdUri.parse(s.uri()),
                NbdClientOptions.defaults().withConnections(1))) {
            client.write(1 << 20, MemorySegment.ofArray(data), false);
            client.flush();
        }
        assertThat(s.stop()).as("exit status; log:%n%s", s.log()).isZero();
        CliRun.Result detach = CliRun.pm("detach", "--cache", cache().toString(),
                "--backing", backing);
        assertThat(detach.exit()).as("detach: %s%s", detach.out(), detach.err()).isZero();
        remote.close();
        assertRemoteHolds(img, data, 1 << 20, seed);
    }

    /** {@code nbdinfo --map}: (offset, length, type) per line, neighbours of the same type merged. */
    private static List<long[]> map(String uri) throws IOException, InterruptedException {
        List<long[]> out = new ArrayList<>();
        for (String line : Tools.run("nbdinfo", "--map", uri).expectSuccess().split("\n")) {
            String[] f = line.trim().split("\s+");
            if (f.length < 3 || !f[0].matches("\\d+")) {
                continue;
            }
            long[] e = {Long.parseLong(f[0]), Long.parseLong(f[1]), Long.parseLong(f[2])};
            long[] last = out.isEmpty() ? null : out.getLast();
            if (last != null && last[2] == e[2] && last[0] + last[1] == e[0]) {
                last[1] += e[1];
            } else {
                out.add(e);
            }
        }
        return out;
    }

    private Nbdkit current;

    private void closeCurrent() throws InterruptedException {
        if (current != null) {
            current.close();
            current = null;
        }
    }

    private static void writeRandom(NbdBackingDevice d, byte[] model, SplittableRandom r, long offset, int length)
            throws IOException {
        byte[] b = new byte[length];
        r.nextBytes(b);
        d.write(offset, MemorySegment.ofArray(b), false);
        System.arraycopy(b, 0, model, (int) offset, length);
    }

    private static void assertRange(NbdBackingDevice d, byte[] model, int offset, int length, Seed seed)
            throws IOException {
        byte[] b = new byte[length];
        d.read(offset, MemorySegment.ofArray(b));
        assertThat(MemorySegment.ofArray(b).mismatch(MemorySegment.ofArray(model).asSlice(offset, length)))
                .as("first byte differing in [%d, +%d) (%s)", offset, length, seed).isEqualTo(-1L);
    }

    private static void assertRemoteHolds(Path img, byte[] expected, int offset, Seed seed) throws IOException {
        byte[] remote = Files.readAllBytes(img);
        assertThat(remote.length).isEqualTo((int) REMOTE_SIZE);
        byte[] want = new byte[(int) REMOTE_SIZE];
        System.arraycopy(expected, 0, want, offset, expected.length);
        assertThat(MemorySegment.ofArray(remote).mismatch(MemorySegment.ofArray(want)))
                .as("first byte of the remote image that differs from what was written (%s)", seed).isEqualTo(-1L);
    }

    // ---- the admin endpoint ----

    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @SuppressWarnings("unchecked")
    private static Map<String, Object> status(int port) throws IOException, InterruptedException {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/status"))
                .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).isEqualTo(200);
        return (Map<String, Object>) Json.parse(r.body());
    }

    private static String elapsed(long start) {
        return String.format("%.1f s", (System.nanoTime() - start) / 1e9);
    }

    /**
     * Polls /status until {@code condition} holds, for at most 120 s (a wait for a state, not a
     * sleep); returns the status that showed it.
     */
    private static Map<String, Object> awaitStatus(int port, String what, Predicate<Map<String, Object>> condition)
            throws IOException, InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
        Map<String, Object> doc = status(port);
        while (!condition.test(doc)) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("status did not show " + what + " within 120 s; last status: " + doc);
            }
            Thread.sleep(50);
            doc = status(port);
        }
        return doc;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> sub(Map<String, Object> doc, String key) {
        Object v = doc.get(key);
        return v instanceof Map<?, ?> m ? (Map<String, Object>) m : Map.of();
    }

    private static long num(Map<String, Object> doc, String section, String key) {
        Object v = sub(doc, section).get(key);
        return v instanceof Number n ? n.longValue() : -1;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}
