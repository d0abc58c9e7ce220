package io.pmcache.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Real NBD clients (libnbd's nbdinfo and nbdcopy, QEMU's qemu-io and qemu-img, fio's nbd engine)
 * against the server on a unix socket in a temp dir. Tools are looked up on PATH; a test whose tool
 * is missing is skipped (CI installs qemu-utils, libnbd-bin and fio, so there they all run).
 */
@Timeout(120)
class RealClientsTest {
    private static final long SIZE = 64 << 20;

    @TempDir
    Path dir;
    MemoryBlockDevice device;
    NbdServer server;
    String uri;

    @BeforeEach
    void start() throws IOException {
        device = new MemoryBlockDevice(SIZE);
        device.streamWrites(40 << 10); // large WRITEs read from the socket straight into the device, as the cache does
        server = NbdServer.builder().device(device).exportName("pmcache").description("test export").build();
        server.listenUnix(dir.resolve("nbd.sock"));
        uri = server.uri();
    }

    @AfterEach
    void stop() {
        server.close();
    }

    @Test
    void nbdinfoShowsSizeFlagsAndMap() throws Exception {
        requireTool("nbdinfo");
        String json = run("nbdinfo", "--json", uri).expectSuccess();
        assertThat(json.replaceAll("\\s", ""))
                .contains("\"export-size\":" + SIZE)
                .contains("\"structured\":true")
                .contains("\"is_read_only\":false")
                .contains("\"can_flush\":true", "\"can_fua\":true", "\"can_trim\":true", "\"can_zero\":true")
                .contains("\"can_fast_zero\":true", "\"can_multi_conn\":true", "\"can_cache\":true")
                .contains("\"block_size_minimum\":1", "\"block_size_preferred\":4096",
                        "\"block_size_maximum\":33554432");
        assertThat(run("nbdinfo", "--map", uri).expectSuccess().trim()).matches("0\\s+" + SIZE + "\\s+0\\s+data");
        assertThat(run("nbdinfo", "--list", uri).expectSuccess()).contains("pmcache");
    }

    @Test
    void nbdinfoSeesNoWriteFlagsOnAReadOnlyExport() throws Exception {
        requireTool("nbdinfo");
        try (NbdServer ro = NbdServer.builder().device(device).exportName("ro").readOnly(true).build()) {
            ro.listenUnix(dir.resolve("ro.sock"));
            String json = run("nbdinfo", "--json", ro.uri()).expectSuccess().replaceAll("\\s", "");
            assertThat(json).contains("\"is_read_only\":true", "\"can_flush\":true", "\"can_cache\":true",
                    "\"can_fua\":false", "\"can_trim\":false", "\"can_zero\":false", "\"can_fast_zero\":false");
        }
    }

    /**
     * {@link NbdServer#uris(String)} gives, per listener, a URI nbdinfo reaches the named export
     * with, among several (where the default URI finds none), also for a name that needs
     * percent-encoding.
     */
    @Test
    void theUriOfANamedExportReachesItAtEveryListener() throws Exception {
        requireTool("nbdinfo");
        try (NbdServer two = NbdServer.builder().startEmpty().build()) {
            two.addExport("vol-a", "a", new MemoryBlockDevice(1 << 20), false);
            two.addExport("vol b/ü%", "b", new MemoryBlockDevice(2 << 20), false);
            two.listenUnix(dir.resolve("two.sock"));
            two.listenTcp("127.0.0.1", 0);
            assertThat(two.uris("vol b/ü%")).hasSize(2).allSatisfy(u -> assertThat(u).contains("vol%20b/%C3%BC%25"));
            for (String name : List.of("vol-a", "vol b/ü%")) {
                for (String u : two.uris(name)) {
                    String json = run("nbdinfo", "--json", u).expectSuccess().replaceAll("\\s", "");
                    assertThat(json).as(u).contains("\"export-name\":\"" + name.replace(" ", "") + "\"")
                            .contains("\"export-size\":" + (name.equals("vol-a") ? 1 << 20 : 2 << 20));
                }
            }
            assertThat(run("nbdinfo", "--json", two.uri()).exit()).as("the empty name finds none of two").isNotZero();
        }
    }

    /**
     * A client over the connection limit hears why (the server refuses its options with
     * NBD_REP_ERR_POLICY and a message, instead of closing before the greeting): qemu prints the
     * message; libnbd says that the server's policy prevents NBD_OPT_GO and gives the message in its
     * debug output (python's debug callback, LIBNBD_DEBUG=1 for nbdinfo). Once the served
     * connection ends, the same client is served.
     */
    @Test
    void aClientOverTheConnectionLimitIsToldWhy() throws Exception {
        requireTool("qemu-img");
        requireTool("nbdinfo");
        assumeTrue(Files.isExecutable(Path.of("/usr/bin/python3"))
                && run("/usr/bin/python3", "-c", "import nbd").exit() == 0, "python3-libnbd is not installed");
        String why = "too many connections: this server serves at most 1 at once (its --max-connections) and all "
                + "are in use; try again when one has ended";
        Path socket = dir.resolve("one.sock");
        try (NbdServer one = NbdServer.builder().device(device).exportName("pmcache").maxConnections(1).build()) {
            one.listenUnix(socket);
            try (NbdTestClient holder = NbdTestClient.open(socket, false, false)) {
                Result qemu = run("qemu-img", "info", one.uri());
                assertThat(qemu.exit()).as(qemu.output()).isNotZero();
                assertThat(qemu.output()).contains("Denied by server for option 7 (go)", "server reported: " + why);
                String script = String.join("\n",
                        "import nbd, sys",
                        "h = nbd.NBD()",
                        "h.set_debug_callback(lambda context, msg: print('debug:', msg))",
                        "h.set_debug(True)",
                        "try:",
                        "    h.connect_uri(sys.argv[1])",
                        "    print('connected')",
                        "except nbd.Error as e:",
                        "    print('nbd.Error:', e.string)");
                Result py = run("/usr/bin/python3", "-c", script, one.uri());
                assertThat(py.output()).contains("nbd.Error: nbd_connect_uri: handshake: server policy prevents "
                        + "NBD_OPT_GO").contains("debug: handshake: server error message: " + why)
                        .doesNotContain("connected\n");
                Result info = run("env", "LIBNBD_DEBUG=1", "nbdinfo", one.uri());
                assertThat(info.exit()).isNotZero();
                assertThat(info.output()).contains("server error message: " + why);
                assertThat(one.stats().snapshot().connectionsAccepted()).as("refused, never served").isEqualTo(1);
                assertThat(one.stats().snapshot().connectionsRefused()).as("one per client").isEqualTo(3);
            }
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (one.stats().snapshot().connectionsActive() > 0) { // the holder's slot frees once the server sees it go
                assertThat(System.nanoTime()).as("the slot freed within 10 s").isLessThan(deadline);
                Thread.sleep(1);
            }
            run("nbdinfo", one.uri()).expectSuccess();
        }
    }

    @Test
    void qemuIoWritesPatternsAndReadsThemBack() throws Exception {
        requireTool("qemu-io");
        String out = run("qemu-io", "-f", "raw",
                "-c", "write -P 0xab 0 1M",
                "-c", "read -P 0xab 0 1M",
                "-c", "aio_write -P 0x11 1M 64k", "-c", "aio_write -P 0x22 2M 64k",
                "-c", "aio_write -P 0x33 3M 64k", "-c", "aio_write -P 0x44 4M 64k",
                "-c", "aio_flush",
                "-c", "read -P 0x11 1M 64k", "-c", "read -P 0x44 4M 64k",
                "-c", "write -z 0 4k", "-c", "read -P 0 0 4k",
                "-c", "discard 8k 4k", "-c", "read -P 0xab 12k 4k",
                uri).expectSuccess();
        assertThat(out).doesNotContainIgnoringCase("fail").doesNotContainIgnoringCase("error")
                .contains("read 1048576/1048576 bytes at offset 0");
        assertThat(bytesAt(3 << 20, 65536)).containsOnly(0x33);
        assertThat(bytesAt(4096 * 3, 4096)).containsOnly(0xab);
        assertThat(bytesAt(0, 4096)).containsOnly(0);
        assertThat(device.streamedWrites()).as("the 1 MiB write's payload was read straight into the device")
                .isPositive();
        // and across connections: a fresh qemu-io sees what the previous one wrote
        assertThat(run("qemu-io", "-f", "raw", "-r", "-c", "read -P 0x22 2M 64k", uri).expectSuccess())
                .doesNotContainIgnoringCase("fail");
    }

    @Test
    void qemuImgConvertRoundTripsAnImage() throws Exception {
        requireTool("qemu-img");
        Path src = randomImage(16 << 20, 1);
        run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src.toString(), uri).expectSuccess();
        run("qemu-img", "compare", "-f", "raw", "-F", "raw", src.toString(), uri).expectSuccess();
        Path back = dir.resolve("back.img");
        run("qemu-img", "convert", "-f", "raw", "-O", "raw", uri, back.toString()).expectSuccess();
        assertThat(Files.size(back)).isEqualTo(SIZE);
        assertThat(Arrays.copyOf(Files.readAllBytes(back), 16 << 20)).isEqualTo(Files.readAllBytes(src));
    }

    @Test
    void nbdcopyBothWays() throws Exception {
        requireTool("nbdcopy");
        Path src = randomImage(SIZE, 2);
        run("nbdcopy", src.toString(), uri).expectSuccess();
        assertThat(bytesAt(SIZE - 4096, 4096)).isEqualTo(Arrays.copyOfRange(Files.readAllBytes(src),
                (int) SIZE - 4096, (int) SIZE));
        Path back = dir.resolve("back.img");
        Files.createFile(back);
        run("nbdcopy", "--connections=4", uri, back.toString()).expectSuccess();
        assertThat(Files.mismatch(src, back)).isEqualTo(-1);
    }

    @Test
    void fioRandomReadWriteVerifies() throws Exception {
        requireTool("fio");
        String out = run("fio", "--name=verify", "--ioengine=nbd", "--uri=" + uri, "--rw=randrw", "--bs=4k",
                "--size=32M", "--iodepth=32", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
                "--verify_state_save=0", "--output-format=terse").expectSuccess();
        assertThat(out).doesNotContain("verify: bad");
        NbdStats.Snapshot s = server.stats().snapshot();
        assertThat(s.requests("write")).isPositive();
        assertThat(s.requests("read")).isPositive();
        assertThat(s.errors().values()).allMatch(n -> n == 0);
    }

    private byte[] bytesAt(long offset, int length) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(length);
            device.read(offset, seg);
            return seg.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        }
    }

    private Path randomImage(long size, long seed) throws IOException {
        byte[] data = new byte[(int) size];
        new Random(seed).nextBytes(data);
        Arrays.fill(data, 4096, 65536, (byte) 0); // a zero run for the clients' sparse paths
        return Files.write(dir.resolve("src-" + seed + ".img"), data);
    }

    static void requireTool(String tool) {
        assumeTrue(onPath(tool), tool + " is not installed");
    }

    static boolean onPath(String tool) {
        String path = System.getenv().getOrDefault("PATH", "");
        for (String d : path.split(File.pathSeparator)) {
            if (!d.isEmpty() && Files.isExecutable(Path.of(d, tool))) {
                return true;
            }
        }
        return false;
    }

    record Result(List<String> command, int exit, String output) {
        String expectSuccess() {
            assertThat(exit).as("%s exited with %d:%n%s", String.join(" ", command), exit, output).isZero();
            return output;
        }
    }

    static Result run(String... command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes());
        return new Result(List.of(command), p.waitFor(), out);
    }
}
