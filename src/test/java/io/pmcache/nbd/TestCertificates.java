package io.pmcache.nbd;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.List;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/**
 * Certificates made for a test with GnuTLS's {@code certtool} (as nbdkit's docs do), in the
 * directory layouts the tools expect: nbdkit's for the server ({@code ca-cert.pem},
 * {@code server-cert.pem}, {@code server-key.pem}) and GnuTLS's for libnbd and qemu clients
 * ({@code ca-cert.pem}, {@code client-cert.pem}, {@code client-key.pem}). The server key is RSA
 * (written PKCS#1 by certtool), the others ECDSA (SEC1), so both PEM key forms are exercised.
 *
 * @param server the server's directory
 * @param client a client with a certificate from the same CA
 * @param anonymous a client that trusts the CA but has no certificate
 * @param stranger a client whose certificate comes from another CA
 * @see #wrongCa()
 */
public record TestCertificates(Path server, Path client, Path anonymous, Path stranger) {

    /** Makes everything under {@code dir}; skips the test when certtool is missing. */
    public static TestCertificates make(Path dir) throws IOException, InterruptedException {
        assumeTrue(onPath("certtool"), "certtool (gnutls-bin) is not installed");
        Path work = Files.createDirectories(dir.resolve("pki"));
        Path ca = ca(work, "ca", "pmcache test CA");
        Path otherCa = ca(work, "other-ca", "some other CA");
        TestCertificates t = new TestCertificates(Files.createDirectories(dir.resolve("server")),
                Files.createDirectories(dir.resolve("client")), Files.createDirectories(dir.resolve("anonymous")),
                Files.createDirectories(dir.resolve("stranger")));
        for (Path d : List.of(t.server, t.client, t.anonymous, t.stranger)) {
            Files.copy(work.resolve("ca-cert.pem"), d.resolve("ca-cert.pem"));
        }
        leaf(work, ca, t.server, "server", "rsa", """
                organization = pmcache tests
                cn = localhost
                dns_name = localhost
                ip_address = 127.0.0.1
                ip_address = ::1
                tls_www_server
                encryption_key
                signing_key
                expiration_days = 2
                """);
        leaf(work, ca, t.client, "client", "ecdsa", clientTemplate("client"));
        leaf(work, otherCa, t.stranger, "client", "ecdsa", clientTemplate("stranger"));
        Path wrongCa = Files.createDirectories(t.wrongCa());
        Files.copy(work.resolve("other-ca-cert.pem"), wrongCa.resolve("ca-cert.pem"));
        for (String f : List.of("client-cert.pem", "client-key.pem")) {
            Files.copy(t.client.resolve(f), wrongCa.resolve(f));
        }
        return t;
    }

    /**
     * A client with the good client certificate that trusts only the other CA, so it must refuse
     * the server's certificate (made by {@link #make}).
     */
    public Path wrongCa() {
        return server.resolveSibling("wrong-ca");
    }

    /** A client trusting the test CA, with a {@code ca-crl.pem} (from certtool) that revokes the server's certificate. */
    public Path revokingServer() throws IOException, InterruptedException {
        Path work = server.resolveSibling("pki");
        Path d = Files.createDirectories(server.resolveSibling("revoking"));
        Files.copy(work.resolve("ca-cert.pem"), d.resolve("ca-cert.pem"),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        Path template = work.resolve("crl.info");
        Files.writeString(template, "crl_next_update = 2\ncrl_number = 1\n");
        Files.deleteIfExists(d.resolve("ca-crl.pem"));
        certtool("--generate-crl", "--load-ca-privkey", work.resolve("ca-key.pem").toString(),
                "--load-ca-certificate", work.resolve("ca-cert.pem").toString(),
                "--load-certificate", server.resolve("server-cert.pem").toString(),
                "--template", template.toString(), "--outfile", d.resolve("ca-crl.pem").toString());
        return d;
    }

    private static String clientTemplate(String cn) {
        return "cn = " + cn + "\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 2\n";
    }

    /** A self-signed CA: {@code NAME-key.pem} and {@code NAME-cert.pem} in {@code work}. */
    private static Path ca(Path work, String name, String cn) throws IOException, InterruptedException {
        Path key = work.resolve(name + "-key.pem");
        Path template = work.resolve(name + ".info");
        Files.writeString(template, "cn = " + cn + "\nca\ncert_signing_key\nexpiration_days = 2\n");
        certtool("--generate-privkey", "--key-type", "ecdsa", "--outfile", key.toString());
        certtool("--generate-self-signed", "--load-privkey", key.toString(), "--template", template.toString(),
                "--outfile", work.resolve(name + "-cert.pem").toString());
        return work.resolve(name);
    }

    private static void leaf(Path work, Path ca, Path dir, String role, String keyType, String templateText)
            throws IOException, InterruptedException {
        Path key = dir.resolve(role + "-key.pem");
        Path template = work.resolve(dir.getFileName() + ".info");
        Files.writeString(template, templateText);
        if (keyType.equals("rsa")) {
            certtool("--generate-privkey", "--key-type", "rsa", "--bits", "2048", "--outfile", key.toString());
        } else {
            certtool("--generate-privkey", "--key-type", keyType, "--outfile", key.toString());
        }
        certtool("--generate-certificate", "--load-ca-certificate", ca + "-cert.pem", "--load-ca-privkey",
                ca + "-key.pem", "--load-privkey", key.toString(), "--template", template.toString(),
                "--outfile", dir.resolve(role + "-cert.pem").toString());
    }

    private static void certtool(String... args) throws IOException, InterruptedException {
        String[] command = new String[args.length + 1];
        command[0] = "certtool";
        System.arraycopy(args, 0, command, 1, args.length);
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes());
        if (p.waitFor() != 0) {
            throw new IOException(String.join(" ", command) + " failed:\n" + out);
        }
    }

    private static boolean onPath(String tool) {
        for (String d : System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator)) {
            if (!d.isEmpty() && Files.isExecutable(Path.of(d, tool))) {
                return true;
            }
        }
        return false;
    }

    /** A JDK client context trusting the test CA, presenting {@code clientDir}'s certificate if it has one. */
    SSLContext javaClient(Path clientDir) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        try (InputStream in = Files.newInputStream(clientDir.resolve("ca-cert.pem"))) {
            trust.setCertificateEntry("ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        KeyManagerFactory kmf = null;
        if (Files.exists(clientDir.resolve("client-cert.pem"))) {
            KeyStore keys = KeyStore.getInstance("PKCS12");
            keys.load(null, null);
            List<X509Certificate> chain = PemFiles.certificates(clientDir.resolve("client-cert.pem"));
            keys.setKeyEntry("me", PemFiles.privateKey(clientDir.resolve("client-key.pem")), new char[0],
                    chain.toArray(X509Certificate[]::new));
            kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(keys, new char[0]);
        }
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(kmf != null ? kmf.getKeyManagers() : null, tmf.getTrustManagers(), null);
        return context;
    }
}
