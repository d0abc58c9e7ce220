package io.pmcache.nbd;

import static io.pmcache.nbd.RealClientsTest.requireTool;
import static io.pmcache.nbd.RealClientsTest.run;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.HexFormat;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Real TLS-PSK clients against the server on TCP ({@code --tls-psk}, nbdkit's {@code username:hexkey}
 * file): libnbd's nbdinfo and nbdcopy with {@code nbds://USER@…?tls-psk-file=FILE}, qemu-io with a
 * {@code tls-creds-psk} object. A wrong key, an unknown user and a plain client under require are
 * refused; the key file is looked at again for each handshake, as nbdkit does. Skipped where a tool is
 * missing (CI installs libnbd-bin and qemu-utils).
 */
@Timeout(120)
class TlsPskClientsTest {
    private static final long SIZE = 16 << 20;
    private static final String ALICE = "alice";

    @TempDir
    Path dir;
    MemoryBlockDevice device = new MemoryBlockDevice(SIZE);
    NbdServer server;
    int port;
    Path serverKeys;
    String aliceKey = key(1);

    /** A 32-byte key in hex, as psktool makes; different seeds give different keys. */
    static String key(long seed) {
        byte[] k = new byte[32];
        new Random(seed).nextBytes(k);
        return HexFormat.of().formatHex(k);
    }

    /** A key file with {@code lines}, mode 0600; returns its path. */
    private Path keyFile(String name, String... lines) throws IOException {
        Path f = dir.resolve(name);
        Files.deleteIfExists(f);
        Files.createFile(f, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        return Files.writeString(f, String.join("\n", lines) + "\n");
    }

    /** A qemu tls-creds-psk directory: {@code DIR/keys.psk} with {@code line}. */
    private Path qemuDir(String name, String line) throws IOException {
        Path d = Files.createDirectories(dir.resolve(name));
        Files.writeString(d.resolve("keys.psk"), line + "\n");
        return d;
    }

    private void start(TlsMode mode) throws IOException {
        serverKeys = keyFile("server.psk", ALICE + ":" + aliceKey, "bob:" + key(2));
        server = NbdServer.builder().device(device).exportName("disk").tls(TlsConfig.psk(mode, serverKeys)).build();
        port = server.listenTcp("127.0.0.1", 0).getPort();
    }

    @AfterEach
    void stop() {
        if (server != null) {
            server.close();
        }
    }

    private String nbds(String user, Path keys) {
        return "nbds://" + user + "@127.0.0.1:" + port + "/disk?tls-psk-file=" + keys;
    }

    private RealClientsTest.Result qemuIo(Path credsDir, String user, String... commands)
            throws IOException, InterruptedException {
        String[] args = new String[5 + 2 * commands.length];
        args[0] = "qemu-io";
        args[1] = "--object";
        args[2] = "tls-creds-psk,id=tls0,endpoint=client,dir=" + credsDir + ",username=" + user;
        args[3] = "--image-opts";
        args[4] = "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=" + port + ",export=disk,tls-creds=tls0";
        for (int i = 0; i < commands.length; i++) {
            args[5 + 2 * i] = "-c";
            args[6 + 2 * i] = commands[i];
        }
        return run(args);
    }

    @Test
    void nbdinfoAndNbdcopyWithAPreSharedKey() throws Exception {
        requireTool("nbdinfo");
        start(TlsMode.REQUIRE);
        Path mine = keyFile("alice.psk", ALICE + ":" + aliceKey);
        String info = run("nbdinfo", "--json", nbds(ALICE, mine)).expectSuccess().replaceAll("\\s", "");
        assertThat(info).contains("\"export-size\":" + SIZE, "\"TLS\":true");
        requireTool("nbdcopy");
        byte[] data = new byte[(int) SIZE];
        new Random(7).nextBytes(data);
        Path src = Files.write(dir.resolve("src.img"), data);
        run("nbdcopy", src.toString(), nbds(ALICE, mine)).expectSuccess();
        byte[] stored = new byte[(int) SIZE];
        device.read(0, MemorySegment.ofArray(stored));
        assertThat(stored).isEqualTo(data);
        Path back = dir.resolve("back.img");
        run("nbdcopy", nbds(ALICE, mine), back.toString()).expectSuccess();
        assertThat(Files.readAllBytes(back)).isEqualTo(data);
    }

    @Test
    void qemuIoWithPskCredentials() throws Exception {
        requireTool("qemu-io");
        start(TlsMode.REQUIRE);
        String out = qemuIo(qemuDir("qemu", ALICE + ":" + aliceKey), ALICE,
                "write -P 0xab 0 1M", "read -P 0xab 0 1M",
                "aio_write -P 0x11 2M 64k", "aio_write -P 0x22 3M 64k", "aio_flush",
                "read -P 0x22 3M 64k").expectSuccess();
        assertThat(out).doesNotContainIgnoringCase("fail").doesNotContainIgnoringCase("error")
                .contains("read 1048576/1048576 bytes at offset 0");
        byte[] stored = new byte[65536];
        device.read(2 << 20, MemorySegment.ofArray(stored));
        assertThat(stored).containsOnly(0x11);
    }

    @Test
    void tls12ClientsUseAnEcdheOrDhePskSuite() throws Exception {
        requireTool("nbdinfo");
        start(TlsMode.REQUIRE);
        // GnuTLS's system configuration (read from this variable) can switch TLS 1.3 off for one process.
        Path config = Files.writeString(dir.resolve("gnutls.config"), "[overrides]\ndisabled-version = tls1.3\n");
        ProcessBuilder pb = new ProcessBuilder("nbdinfo", "--json", nbds(ALICE, keyFile("alice.psk", ALICE + ":" + aliceKey)))
                .redirectErrorStream(true);
        pb.environment().put("GNUTLS_SYSTEM_PRIORITY_FILE", config.toString());
        pb.environment().put("LIBNBD_DEBUG", "1");
        Process p = pb.start();
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor()).as(out).isZero();
        assertThat(out.replaceAll("\\s", "")).contains("\"TLS\":true");
        assertThat(out).containsPattern("connection is using TLS: cipher \\S+ \\(\\d+ bits\\) key exchange (ECDHE|DHE)-PSK");
    }

    @Test
    void aWrongKeyOrAnUnknownUserIsRefused() throws Exception {
        requireTool("nbdinfo");
        start(TlsMode.REQUIRE);
        RealClientsTest.Result wrong = run("nbdinfo", nbds(ALICE, keyFile("wrong.psk", ALICE + ":" + key(3))));
        assertThat(wrong.exit()).as(wrong.output()).isNotZero();
        RealClientsTest.Result unknown = run("nbdinfo", nbds("carol", keyFile("carol.psk", "carol:" + aliceKey)));
        assertThat(unknown.exit()).as(unknown.output()).isNotZero();
        // bob's own key works: the server holds more than one user
        run("nbdinfo", nbds("bob", keyFile("bob.psk", "bob:" + key(2)))).expectSuccess();
        if (RealClientsTest.onPath("qemu-io")) {
            RealClientsTest.Result q = qemuIo(qemuDir("qemu-wrong", ALICE + ":" + key(3)), ALICE, "read 0 4k");
            assertThat(q.exit()).as(q.output()).isNotZero();
        }
        byte[] stored = new byte[4096];
        device.read(0, MemorySegment.ofArray(stored));
        assertThat(stored).containsOnly(0);
    }

    @Test
    void plainClientIsRefusedWhenTlsIsRequired() throws Exception {
        requireTool("nbdinfo");
        start(TlsMode.REQUIRE);
        RealClientsTest.Result plain = run("nbdinfo", "nbd://127.0.0.1:" + port + "/disk");
        assertThat(plain.exit()).as(plain.output()).isNotZero();
        assertThat(plain.output()).containsIgnoringCase("tls");
    }

    @Test
    void tlsOnServesPlainAndPskClients() throws Exception {
        requireTool("nbdinfo");
        start(TlsMode.ON);
        assertThat(run("nbdinfo", "--json", "nbd://127.0.0.1:" + port + "/disk").expectSuccess()
                .replaceAll("\\s", "")).contains("\"TLS\":false");
        assertThat(run("nbdinfo", "--json", nbds(ALICE, keyFile("alice.psk", ALICE + ":" + aliceKey)))
                .expectSuccess().replaceAll("\\s", "")).contains("\"TLS\":true");
    }

    @Test
    void usersAreAddedAndRevokedByEditingTheFileWithoutARestart() throws Exception {
        requireTool("nbdinfo");
        start(TlsMode.REQUIRE);
        Path alice = keyFile("alice.psk", ALICE + ":" + aliceKey);
        Path dave = keyFile("dave.psk", "dave:" + key(4));
        run("nbdinfo", nbds(ALICE, alice)).expectSuccess();
        assertThat(run("nbdinfo", nbds("dave", dave)).exit()).isNotZero();
        Files.writeString(serverKeys, "dave:" + key(4) + "\n"); // alice revoked, dave added
        run("nbdinfo", nbds("dave", dave)).expectSuccess();
        assertThat(run("nbdinfo", nbds(ALICE, alice)).exit()).isNotZero();
        Files.writeString(serverKeys, "dave:not-hex\n"); // broken: every PSK client refused until fixed
        assertThat(run("nbdinfo", nbds("dave", dave)).exit()).isNotZero();
        Files.writeString(serverKeys, ALICE + ":" + aliceKey + "\n");
        run("nbdinfo", nbds(ALICE, alice)).expectSuccess();
    }
}
