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

    @Test
    void serveWithPreSharedKeysServesTheFilesUsersOnly() throws Exception {
        Tools.require("nbdinfo");
        String key = "f71c86d72e6d307f0b52c65523b58dbd9c97ac09b5d6e980058e27445f95deb8";
        Path keys = java.nio.file.Files.writeString(dir.resolve("keys.psk"), "alice:" + key + "\n");
        java.nio.file.Files.setPosixFilePermissions(keys, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        Path wrong = java.nio.file.Files.writeString(dir.resolve("wrong.psk"), "alice:" + key.replace('f', '0') + "\n");
        try (ServeProcess serve = ServeProcess.start(dir, List.of("--cache", dir.resolve("cache.img").toString(),
                "--cache-size", "64M", "--segment-size", "4M", "--backing", dir.resolve("backing.img").toString(),
                "--backing-size", "32M", "--listen", "127.0.0.1:0", "--export", "disk", "--tls=require",
                "--tls-psk", keys.toString()))) {
            String uri = serve.uri().replace("nbds://", "nbds://alice@");
            String info = Tools.run("nbdinfo", "--json", uri + "disk?tls-psk-file=" + keys)
                    .expectSuccess().replaceAll("\\s", "");
            assertThat(info).contains("\"TLS\":true", "\"export-size\":" + (32 << 20));
            Tools.Result refused = Tools.run("nbdinfo", uri + "disk?tls-psk-file=" + wrong);
            assertThat(refused.exit()).as(refused.output()).isNotZero();
            assertThat(serve.log()).contains("TLS require, pre-shared keys from " + keys + " (1 user)");
            long deadline = System.nanoTime() + 30_000_000_000L; // the server logs after the client has gone
            while (!serve.log().contains("wrong key for PSK user 'alice'") && System.nanoTime() < deadline) {
                Thread.sleep(20); // a bounded poll of the log file
            }
            assertThat(serve.log()).contains("TLS handshake failed: TLS-PSK: wrong key for PSK user 'alice'");
        }
    }
}
