package io.pmcache.nbd;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the X.509 TLS tests share: certificates made once per class ({@link TestCertificates}), a
 * {@value #SIZE}-byte RAM export named {@code disk}, and a server on 127.0.0.1 stopped after
 * each test.
 */
abstract class X509ServerTest {
    static final long SIZE = 16 << 20;

    @TempDir
    static Path pki;
    static TestCertificates certs;

    @TempDir
    Path dir;
    final MemoryBlockDevice device = new MemoryBlockDevice(SIZE);
    NbdServer server;
    InetSocketAddress address;

    @BeforeAll
    static void makeCertificates() throws Exception {
        certs = TestCertificates.make(pki);
    }

    /** Serves {@link #device} on a free TCP port ({@link #address}) with TLS {@code mode}. */
    void start(TlsMode mode, boolean verifyPeer) throws IOException {
        TlsConfig tls = mode == TlsMode.OFF ? TlsConfig.off() : TlsConfig.x509(mode, certs.server(), verifyPeer);
        device.streamWrites(40 << 10); // large WRITEs streamed from TLS straight into the device, as the cache does
        server = NbdServer.builder().device(device).exportName("disk").tls(tls).build();
        address = server.listenTcp("127.0.0.1", 0);
    }

    @AfterEach
    void stopServer() {
        if (server != null) {
            server.close();
        }
    }
}
