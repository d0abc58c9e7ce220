package io.pmcache.nbd;

import static io.pmcache.nbd.RealClientsTest.requireTool;
import static io.pmcache.nbd.RealClientsTest.run;
import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Real TLS clients against the server on TCP, with certificates made by the test
 * ({@link TestCertificates}): libnbd's nbdinfo and nbdcopy with {@code nbds://} URIs, and qemu-io
 * with a {@code tls-creds-x509} object. Skipped where a tool is missing (CI installs gnutls-bin,
 * libnbd-bin and qemu-utils).
 */
@Timeout(120)
class TlsClientsTest extends X509ServerTest {
    private String nbds(Path clientDir) {
        return "nbds://127.0.0.1:" + address.getPort() + "/disk?tls-certificates=" + clientDir;
    }

    @Test
    void nbdinfoAndNbdcopyOverTls() throws Exception {
        requireTool("nbdinfo");
        start(TlsMode.REQUIRE, false);
        String info = run("nbdinfo", "--json", nbds(certs.client())).expectSuccess().replaceAll("\\s", "");
        assertThat(info).contains("\"export-size\":" + SIZE, "\"TLS\":true");
        requireTool("nbdcopy");
        Path src = dir.resolve("src.img");
        byte[] data = new byte[(int) SIZE];
        new java.util.Random(7).nextBytes(data);
        java.nio.file.Files.write(src, data);
        run("nbdcopy", src.toString(), nbds(certs.client())).expectSuccess();
        byte[] stored = new byte[(int) SIZE];
        device.read(0, MemorySegment.ofArray(stored));
        assertThat(stored).isEqualTo(data);
    }

    @Test
    void qemuIoWithX509Credentials() throws Exception {
        requireTool("qemu-io");
        start(TlsMode.REQUIRE, false);
        String out = run("qemu-io", "--object", "tls-creds-x509,id=tls0,dir=" + certs.client() + ",endpoint=client",
                "--image-opts", "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=" + address.getPort()
                        + ",export=disk,tls-creds=tls0",
                "-c", "write -P 0xab 0 1M", "-c", "read -P 0xab 0 1M",
                "-c", "aio_write -P 0x11 2M 64k", "-c", "aio_write -P 0x22 3M 64k", "-c", "aio_flush",
                "-c", "read -P 0x22 3M 64k").expectSuccess();
        assertThat(out).doesNotContainIgnoringCase("fail").doesNotContainIgnoringCase("error")
                .contains("read 1048576/1048576 bytes at offset 0");
        byte[] stored = new byte[65536];
        device.read(2 << 20, MemorySegment.ofArray(stored));
        assertThat(stored).containsOnly(0x11);
    }

    @Test
    void plainClientIsRefusedWhenTlsIsRequired() throws Exception {
        requireTool("nbdinfo");
        start(TlsMode.REQUIRE, false);
        RealClientsTest.Result plain = run("nbdinfo", "nbd://127.0.0.1:" + address.getPort() + "/disk");
        assertThat(plain.exit()).as(plain.output()).isNotZero();
        assertThat(plain.output()).containsIgnoringCase("tls");
    }

    @Test
    void tlsOnServesPlainAndTlsClients() throws Exception {
        requireTool("nbdinfo");
        start(TlsMode.ON, false);
        assertThat(run("nbdinfo", "--json", "nbd://127.0.0.1:" + address.getPort() + "/disk").expectSuccess()
                .replaceAll("\\s", "")).contains("\"TLS\":false");
        assertThat(run("nbdinfo", "--json", nbds(certs.client())).expectSuccess()
                .replaceAll("\\s", "")).contains("\"TLS\":true");
    }

    @Test
    void verifyPeerRefusesClientsWithoutACertificateOrFromAnotherCa() throws Exception {
        requireTool("nbdinfo");
        start(TlsMode.REQUIRE, true);
        run("nbdinfo", nbds(certs.client())).expectSuccess();
        for (Path who : new Path[] {certs.anonymous(), certs.stranger()}) {
            RealClientsTest.Result r = run("nbdinfo", nbds(who));
            assertThat(r.exit()).as("%s: %s", who.getFileName(), r.output()).isNotZero();
        }
    }

    @Test
    void qemuIoUnderVerifyPeerNeedsTheCasClientCertificate() throws Exception {
        requireTool("qemu-io");
        start(TlsMode.REQUIRE, true);
        run("qemu-io", "--object", "tls-creds-x509,id=tls0,dir=" + certs.client() + ",endpoint=client",
                "--image-opts", "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=" + address.getPort()
                        + ",export=disk,tls-creds=tls0", "-c", "write -P 0x5a 0 64k").expectSuccess();
        byte[] stored = new byte[65536];
        device.read(0, MemorySegment.ofArray(stored));
        assertThat(stored).containsOnly(0x5a);
        RealClientsTest.Result r = run("qemu-io", "--object",
                "tls-creds-x509,id=tls0,dir=" + certs.anonymous() + ",endpoint=client",
                "--image-opts", "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=" + address.getPort()
                        + ",export=disk,tls-creds=tls0", "-c", "read 0 4k");
        assertThat(r.exit()).as(r.output()).isNotZero();
    }
}
