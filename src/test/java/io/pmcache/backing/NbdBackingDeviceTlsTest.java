package io.pmcache.backing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.pmcache.nbd.TestCertificates;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code nbds+unix://} backing devices against {@code nbdkit --tls=require} with certificates made
 * by the test ({@link TestCertificates}, GnuTLS's certtool): data goes through, a reconnection
 * runs TLS again, and every way the server can fail to be trusted, or not offer TLS, is refused
 * with a message naming the server and the reason, never carried on in plain text.
 */
@Timeout(120)
class NbdBackingDeviceTlsTest extends RemoteDeviceTest {
    @TempDir
    static Path pki;
    static TestCertificates certs;

    @BeforeAll
    static void makeCertificates() throws Exception {
        Nbdkit.require();
        certs = TestCertificates.make(pki);
    }

    /** nbdkit requiring TLS with the test server's certificate; {@code verifyPeer} wants client certificates. */
    private Nbdkit tlsServer(boolean verifyPeer, String... plugin) throws Exception {
        List<String> args = new ArrayList<>(List.of("--tls=require", "--tls-certificates=" + certs.server()));
        if (verifyPeer) {
            args.add("--tls-verify-peer");
        }
        args.addAll(List.of(plugin));
        return Nbdkit.start(dir.resolve("r.sock"), args.toArray(String[]::new));
    }

    private String nbds(Path clientDir, String extra) {
        return "nbds+unix:///disk?socket=" + server.socket() + "&tls-certificates=" + clientDir + extra;
    }

    private NbdBackingDevice open(String uri) throws IOException {
        return open(uri, fast());
    }

    @Test
    void dataGoesThroughTlsWithAClientCertificateAndAReconnectionRunsTlsAgain() throws Exception {
        server = tlsServer(true, "file", image(8 << 20).toString());
        NbdBackingDevice d = open(nbds(certs.client(), ""));
        assertThat(d.info().tls()).isTrue();
        assertThat(d.state()).containsEntry("tls", true);
        assertThat(d.describe()).contains("tls");
        byte[] data = random(3 << 20, 1); // several TLS records per request, on every connection
        d.write(1 << 20, MemorySegment.ofArray(data), false);
        d.flush();
        byte[] got = new byte[data.length];
        d.read(1 << 20, MemorySegment.ofArray(got));
        assertThat(got).isEqualTo(data);

        server.kill();
        assertThatThrownBy(() -> d.read(0, MemorySegment.ofArray(new byte[4096]))).isInstanceOf(IOException.class);
        server = server.restart();
        await("reconnected", d::isUp);
        assertThat(d.info().tls()).isTrue();
        got = new byte[data.length];
        d.read(1 << 20, MemorySegment.ofArray(got));
        assertThat(got).isEqualTo(data);
        assertThat(d.state()).containsEntry("reconnects", 1L);
    }

    @Test
    void aServerCertificateFromAnotherCaIsRefusedNamingTheServerAndTheReason() throws Exception {
        server = tlsServer(false, "memory", "4M");
        String uri = nbds(certs.wrongCa(), "");
        assertThatThrownBy(() -> open(uri)).isInstanceOf(IOException.class)
                .hasMessageContaining(uri)
                .hasMessageContaining("TLS handshake failed")
                .hasMessageContaining("CN=localhost")
                .hasMessageContaining("not signed by a CA in " + certs.wrongCa().resolve("ca-cert.pem"));
    }

    @Test
    void aRevokedServerCertificateIsRefused() throws Exception {
        server = tlsServer(false, "memory", "4M");
        String uri = nbds(certs.revokingServer(), "");
        assertThatThrownBy(() -> open(uri)).isInstanceOf(IOException.class).hasMessageContaining(uri)
                .hasMessageContaining("is revoked by ca-crl.pem");
    }

    @Test
    void withoutVerificationAnyCertificateIsAccepted() throws Exception {
        server = tlsServer(false, "memory", "4M");
        NbdBackingDevice d = open(nbds(certs.wrongCa(), "&tls-verify-peer=false"));
        d.write(0, MemorySegment.ofArray(random(4096, 2)), true);
        assertThat(d.info().tls()).isTrue();
    }

    @Test
    void theHostNameIsCheckedWhenOneIsGiven() throws Exception {
        server = tlsServer(false, "memory", "4M");
        open(nbds(certs.client(), "&tls-hostname=localhost")).flush();
        String wrong = nbds(certs.client(), "&tls-hostname=elsewhere.example");
        assertThatThrownBy(() -> open(wrong)).isInstanceOf(IOException.class).hasMessageContaining(wrong)
                .hasMessageContaining("elsewhere.example");
    }

    @Test
    void overTcpTheServersCertificateMustNameTheHost() throws Exception {
        // The test server's certificate names localhost, 127.0.0.1 and ::1 (not 127.0.0.2).
        String[] args = {"--tls=require", "--tls-certificates=" + certs.server(), "memory", "4M"};
        int port = freePort();
        cleanups.add(Nbdkit.startTcp(dir, "tcp1", "127.0.0.1", port, args));
        open("nbds://127.0.0.1:" + port + "/disk?tls-certificates=" + certs.client())
                .write(0, MemorySegment.ofArray(random(4096, 6)), true);
        open("nbds://localhost:" + port + "/disk?tls-certificates=" + certs.client()).flush();
        int other = freePort();
        cleanups.add(Nbdkit.startTcp(dir, "tcp2", "127.0.0.2", other, args));
        String unnamed = "nbds://127.0.0.2:" + other + "/disk?tls-certificates=" + certs.client();
        assertThatThrownBy(() -> open(unnamed)).isInstanceOf(IOException.class).hasMessageContaining(unnamed)
                .hasMessageContaining("127.0.0.2");
        open(unnamed + "&tls-hostname=localhost").flush();
    }

    private static int freePort() throws IOException {
        try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    @Test
    void aServerThatWantsAClientCertificateRefusesAClientWithout() throws Exception {
        server = tlsServer(true, "memory", "4M");
        String uri = nbds(certs.anonymous(), "");
        assertThatThrownBy(() -> open(uri)).isInstanceOf(IOException.class).hasMessageContaining(uri)
                .hasMessageContaining("client-cert.pem");
    }

    @Test
    void aServerWithoutTlsIsRefusedNeverUsedInPlainText() throws Exception {
        server = Nbdkit.start(dir.resolve("r.sock"), "--tls=off", "memory", "4M");
        String uri = nbds(certs.client(), "");
        assertThatThrownBy(() -> open(uri)).isInstanceOf(IOException.class).hasMessageContaining(uri)
                .hasMessageContaining("does not offer TLS").hasMessageContaining("not going on in plain text");
    }

    @Test
    void plainNbdToAServerThatRequiresTlsSaysToUseNbds() throws Exception {
        server = tlsServer(false, "memory", "4M");
        String uri = server.uri("disk");
        assertThatThrownBy(() -> open(uri)).isInstanceOf(IOException.class).hasMessageContaining(uri)
                .hasMessageContaining("nbds://");
    }

    @Test
    void aStalledTlsServerIsFencedAndTheDeviceReconnectsOverTls() throws Exception {
        // As NbdBackingDeviceTest's stall, over TLS: the fence's half-close sends close_notify first.
        server = tlsServer(false, "--filter=delay", "memory", "4M", "delay-read=5");
        NbdClientOptions o = fast().withRequestTimeout(Duration.ofMillis(200)).withFenceTimeout(Duration.ofSeconds(20));
        NbdBackingDevice d = NbdBackingDevice.open(NbdUri.parse(nbds(certs.client(), "")), o);
        cleanups.add(d);
        assertThatThrownBy(() -> d.read(0, MemorySegment.ofArray(new byte[4096]))).isInstanceOf(IOException.class)
                .hasMessageContaining("no reply for");
        await("reconnected", d::isUp);
        d.write(4096, MemorySegment.ofArray(random(4096, 5)), true);
        assertThat(d.state()).containsEntry("links_lost", 1L).containsEntry("tls", true);
    }

    @Test
    void missingCertificateFilesAreNamedAtOpen() {
        Path empty = dir.resolve("empty");
        assertThatThrownBy(() -> NbdBackingDevice.open(NbdUri.parse("nbds+unix:///?socket=" + dir.resolve("x.sock")
                + "&tls-certificates=" + empty), fast())).isInstanceOf(IOException.class)
                .hasMessageContaining(empty.toString()).hasMessageContaining("does not exist");
    }
}
