package io.pmcache.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.nbd.TestCertificates;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** {@code pmcache serve --tls=require --tls-certificates DIR} as a process, with nbdinfo as the client. */
@Timeout(180)
class ServeTlsTest {
    @TempDir
    Path dir;

    @Test
    void serveRequiresTlsAndServesNbdsClients() throws Exception {
        Tools.require("nbdinfo");
        TestCertificates certs = TestCertificates.make(dir);
        try (ServeProcess serve = ServeProcess.start(dir, List.of("--cache", dir.resolve("cache.img").toString(),
                "--cache-size", "64M", "--segment-size", "4M", "--backing", dir.resolve("backing.img").toString(), "--backing-size", "32M",
                "--listen", "127.0.0.1:0", "--export", "disk", "--tls=require",
                "--tls-certificates", certs.server().toString()))) {
            assertThat(serve.uri()).startsWith("nbds://127.0.0.1:");
            String info = Tools.run("nbdinfo", "--json", serve.uri() + "disk?tls-certificates=" + certs.client())
                    .expectSuccess().replaceAll("\\s", "");
            assertThat(info).contains("\"TLS\":true", "\"export-size\":" + (32 << 20));
            Tools.Result plain = Tools.run("nbdinfo", serve.uri().replace("nbds://", "nbd://") + "disk");
            assertThat(plain.exit()).as(plain.output()).isNotZero();
        }
    }
}
