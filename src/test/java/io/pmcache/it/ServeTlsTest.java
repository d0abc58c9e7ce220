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

    /**
     * A server certificate outside its validity dates: serve starts (a warning, not a refusal: see
     * TlsConfig) and its log names the file, the dates and what clients will do; nbdinfo then
     * fails on that certificate. The same certificate made with dates around now: no warning, and
     * nbdinfo connects, so the dates alone make the difference.
     */
    @Test
    void aServerCertificateOutsideItsDatesIsWarnedAboutAtStart() throws Exception {
        Tools.require("nbdinfo", "openssl");
        java.time.Instant now = java.time.Instant.now();
        java.time.format.DateTimeFormatter asn1 = java.time.format.DateTimeFormatter.ofPattern("yyyyMMddHHmmss'Z'")
                .withZone(java.time.ZoneOffset.UTC);
        record Case(String name, java.time.Instant from, java.time.Instant until, String warning) {
        }
        java.time.Instant pastFrom = now.minus(java.time.Duration.ofDays(60)).truncatedTo(java.time.temporal.ChronoUnit.SECONDS);
        java.time.Instant pastUntil = now.minus(java.time.Duration.ofDays(30)).truncatedTo(java.time.temporal.ChronoUnit.SECONDS);
        java.time.Instant futureFrom = now.plus(java.time.Duration.ofDays(30)).truncatedTo(java.time.temporal.ChronoUnit.SECONDS);
        java.time.Instant futureUntil = now.plus(java.time.Duration.ofDays(60)).truncatedTo(java.time.temporal.ChronoUnit.SECONDS);
        java.time.Instant validFrom = now.minus(java.time.Duration.ofDays(1)).truncatedTo(java.time.temporal.ChronoUnit.SECONDS);
        for (Case c : List.of(
                new Case("expired", pastFrom, pastUntil, "expired on " + pastUntil),
                new Case("not-yet-valid", futureFrom, futureUntil, "is not valid yet: it is valid from " + futureFrom),
                new Case("valid", validFrom, futureUntil, null))) {
            Path certs = opensslCertificate(dir.resolve(c.name()), asn1.format(c.from()), asn1.format(c.until()));
            Path certFile = certs.resolve("server-cert.pem");
            try (ServeProcess serve = ServeProcess.start(dir, List.of("--cache", dir.resolve(c.name() + ".img").toString(),
                    "--cache-size", "64M", "--segment-size", "4M", "--backing", dir.resolve(c.name() + ".back").toString(),
                    "--backing-size", "32M", "--listen", "127.0.0.1:0", "--export", "disk", "--tls=require",
                    "--tls-certificates", certs.toString()))) {
                Tools.Result client = Tools.run("nbdinfo", "--json", serve.uri() + "disk?tls-certificates=" + certs);
                if (c.warning() == null) {
                    assertThat(client.expectSuccess().replaceAll("\\s", "")).contains("\"TLS\":true");
                    assertThat(serve.log()).as("a valid certificate: no warning").doesNotContain(certFile + ":");
                    continue;
                }
                assertThat(client.exit()).as("%s: %s", c.name(), client.output()).isNotZero();
                assertThat(serve.log()).as(c.name()).contains("WARN").contains(certFile + ": the server's certificate "
                        + "(CN=localhost, valid from " + c.from() + " until " + c.until() + ") " + c.warning())
                        .contains("clients that verify the server (libnbd, qemu: by default) refuse every TLS "
                                + "connection until it is replaced with a valid one and serve restarted");
            }
        }
    }

    /**
     * A self-signed certificate for localhost and 127.0.0.1 valid from {@code from} until
     * {@code until} (ASN.1 times), made by openssl ({@code req} cannot set past dates, {@code ca}
     * can), in {@code dir} as both the server's files and the CA a client trusts.
     */
    private static Path opensslCertificate(Path dir, String from, String until) throws Exception {
        java.nio.file.Files.createDirectories(dir);
        java.nio.file.Files.writeString(dir.resolve("ca.cnf"), String.join("\n",
                "[ca]", "default_ca = d", "[d]", "database = " + dir.resolve("index.txt"),
                "new_certs_dir = " + dir, "serial = " + dir.resolve("serial"), "default_md = sha256",
                "policy = p", "copy_extensions = none", "x509_extensions = ext", "[p]", "commonName = supplied",
                "[ext]", "basicConstraints = critical, CA:true", "keyUsage = critical, digitalSignature, keyCertSign",
                "extendedKeyUsage = serverAuth", "subjectAltName = DNS:localhost, IP:127.0.0.1", ""));
        java.nio.file.Files.writeString(dir.resolve("index.txt"), "");
        java.nio.file.Files.writeString(dir.resolve("serial"), "01\n");
        Tools.run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                "-keyout", dir.resolve("server-key.pem").toString(), "-out", dir.resolve("req.csr").toString())
                .expectSuccess();
        Tools.run("openssl", "ca", "-batch", "-notext", "-selfsign", "-config", dir.resolve("ca.cnf").toString(),
                "-keyfile", dir.resolve("server-key.pem").toString(), "-in", dir.resolve("req.csr").toString(),
                "-out", dir.resolve("server-cert.pem").toString(), "-startdate", from, "-enddate", until)
                .expectSuccess();
        java.nio.file.Files.copy(dir.resolve("server-cert.pem"), dir.resolve("ca-cert.pem"));
        return dir;
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
