package io.pmcache.backing;

import io.pmcache.nbd.TestCertificates;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;

/**
 * The device contract over TLS: {@code nbds+unix://} against {@code nbdkit --tls=require
 * --tls-verify-peer memory}, the client presenting its certificate (certificates made by the test).
 */
class NbdBackingDeviceTlsContractTest extends NbdBackingDeviceContractTest {
    @TempDir
    static Path pki;
    static TestCertificates certs;

    @BeforeAll
    static void makeCertificates() throws Exception {
        Nbdkit.require();
        certs = TestCertificates.make(pki);
    }

    @Override
    protected String[] server(long size) {
        return new String[] {"--tls=require", "--tls-certificates=" + certs.server(), "--tls-verify-peer", "memory",
            String.valueOf(size)};
    }

    @Override
    protected String uri(Nbdkit k) {
        return "nbds+unix:///disk?socket=" + k.socket() + "&tls-certificates=" + certs.client();
    }
}
