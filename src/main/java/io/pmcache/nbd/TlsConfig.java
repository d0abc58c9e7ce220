package io.pmcache.nbd;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.util.List;
import java.util.Objects;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.TrustManagerFactory;
import org.bouncycastle.tls.crypto.TlsCrypto;
import org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider;

/**
 * A server's TLS setup, following nbdkit's options and files:
 * <ul>
 *   <li>{@code --tls=off|on|require}: the {@link TlsMode};</li>
 *   <li>{@code --tls-certificates=DIR}: {@code DIR/server-cert.pem} (the server's certificate, a
 *       chain may follow it), {@code DIR/server-key.pem} (its unencrypted private key) and
 *       {@code DIR/ca-cert.pem} (the CA that signs client certificates; needed only with
 *       {@code --tls-verify-peer});</li>
 *   <li>{@code --tls-verify-peer}: a client must present a certificate signed by that CA.</li>
 *   <li>{@code --tls-psk=FILE}: pre-shared keys instead of certificates ({@link PskKeyFile}), with
 *       Bouncy Castle's TLS ({@link PskTransport}): the JDK's TLS has no external PSK.</li>
 * </ul>
 * TLS 1.3 and 1.2 (the NBD spec requires 1.2) with the JDK's {@link SSLEngine} and its default
 * cipher suites. The files are read once, by {@link #x509} or {@link #psk}, so a bad file fails at
 * start with its name, not at the first client (the PSK file is then looked at again per handshake,
 * as nbdkit does).
 */
public final class TlsConfig {
    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(TlsConfig.class);
    static final String CA_CERT = "ca-cert.pem";
    static final String SERVER_CERT = "server-cert.pem";
    static final String SERVER_KEY = "server-key.pem";
    private static final String[] PROTOCOLS = {"TLSv1.3", "TLSv1.2"};
    private static final TlsConfig OFF = new TlsConfig(TlsMode.OFF, null, false, null, null, "off");

    private final TlsMode mode;
    /** X.509: the JDK's TLS. Null with PSK. */
    private final SSLContext context;
    private final boolean verifyPeer;
    /** PSK: the key file and Bouncy Castle's crypto (thread-safe, shared). Null with X.509. */
    private final PskKeyFile pskFile;
    private final TlsCrypto pskCrypto;
    private final String description;

    private TlsConfig(TlsMode mode, SSLContext context, boolean verifyPeer, PskKeyFile pskFile, TlsCrypto pskCrypto,
                      String description) {
        this.mode = mode;
        this.context = context;
        this.verifyPeer = verifyPeer;
        this.pskFile = pskFile;
        this.pskCrypto = pskCrypto;
        this.description = description;
    }

    /** No TLS (the default). */
    public static TlsConfig off() {
        return OFF;
    }

    /**
     * X.509 TLS from nbdkit's certificate directory (see class comment). {@code mode} must be ON or
     * REQUIRE. IOException naming the file when one is missing or unreadable.
     */
    public static TlsConfig x509(TlsMode mode, Path dir, boolean verifyPeer) throws IOException {
        Objects.requireNonNull(dir, "dir");
        if (mode == TlsMode.OFF) {
            throw new IllegalArgumentException("TLS mode is off: no certificates are used");
        }
        if (!Files.isDirectory(dir)) {
            throw new IOException(dir + ": the TLS certificates directory does not exist (it holds "
                    + SERVER_CERT + ", " + SERVER_KEY + " and, for --tls-verify-peer, " + CA_CERT + ")");
        }
        // TLS 1.2 renegotiation would stall writers mid-reply (TlsTransport waits for no handshake
        // while sending); no NBD client needs it. Read by the JDK when its TLS classes load.
        if (System.getProperty("jdk.tls.rejectClientInitiatedRenegotiation") == null) {
            System.setProperty("jdk.tls.rejectClientInitiatedRenegotiation", "true");
        }
        Path certFile = dir.resolve(SERVER_CERT);
        Path keyFile = dir.resolve(SERVER_KEY);
        Path caFile = dir.resolve(CA_CERT);
        List<X509Certificate> chain = PemFiles.certificates(existing(certFile));
        warnIfNotValid(certFile, chain, java.time.Instant.now());
        PrivateKey key = PemFiles.privateKey(existing(keyFile));
        try {
            KeyStore keys = KeyStore.getInstance("PKCS12");
            keys.load(null, null);
            char[] none = new char[0];
            keys.setKeyEntry("server", key, none, chain.toArray(X509Certificate[]::new));
            KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(keys, none);
            TrustManagerFactory tmf = null;
            if (verifyPeer) {
                KeyStore trust = KeyStore.getInstance("PKCS12");
                trust.load(null, null);
                int i = 0;
                for (X509Certificate ca : PemFiles.certificates(existing(caFile))) {
                    trust.setCertificateEntry("ca" + i++, ca);
                }
                tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
                tmf.init(trust);
            }
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(kmf.getKeyManagers(), tmf != null ? tmf.getTrustManagers() : null, null);
            String subject = chain.getFirst().getSubjectX500Principal().getName();
            return new TlsConfig(mode, context, verifyPeer, null, null, mode.name().toLowerCase(java.util.Locale.ROOT)
                    + ", X.509 certificate " + subject + (verifyPeer ? ", client certificates verified against "
                    + caFile : ""));
        } catch (GeneralSecurityException e) {
            throw new IOException(certFile + ", " + keyFile + ": cannot set up TLS: " + e.getMessage(), e);
        }
    }

    /**
     * TLS with the pre-shared keys of nbdkit's {@code username:hexkey} file (see {@link PskKeyFile}).
     * {@code mode} must be ON or REQUIRE. IOException naming the file (and line) when it is unusable.
     */
    public static TlsConfig psk(TlsMode mode, Path file) throws IOException {
        if (mode == TlsMode.OFF) {
            throw new IllegalArgumentException("TLS mode is off: no pre-shared keys are used");
        }
        PskKeyFile keys = PskKeyFile.open(file);
        // The JDK's crypto behind Bouncy Castle's TLS: AES-GCM with the CPU's AES instructions, and
        // no security provider registered JVM-wide.
        TlsCrypto crypto = new JcaTlsCryptoProvider().create(new SecureRandom());
        return new TlsConfig(mode, null, false, keys, crypto, mode.name().toLowerCase(java.util.Locale.ROOT)
                + ", pre-shared keys from " + file + " (" + keys.keys() + ")");
    }

    /**
     * Logs a WARN for each certificate of {@code file} (the server's, and the chain after it) that
     * is not valid at {@code now}: expired, or not valid yet. Clients that verify the server (libnbd
     * and qemu by default) refuse it then, with an error about the certificate, not about pmcache.
     * A warning, not a refusal, as nbdkit and TLS servers generally do: the dates are not a property
     * of the files the way a bad file is (a clock that is wrong at boot, before NTP, would otherwise
     * keep the storage, and the writeback of its dirty data, down), clients that do not verify the
     * server still work, and a certificate can expire while a server runs however it was checked at
     * start.
     */
    private static void warnIfNotValid(Path file, List<X509Certificate> certs, java.time.Instant now) {
        for (int i = 0; i < certs.size(); i++) {
            X509Certificate c = certs.get(i);
            java.time.Instant from = c.getNotBefore().toInstant();
            java.time.Instant until = c.getNotAfter().toInstant();
            String which = (i == 0 ? "the server's certificate" : "certificate " + (i + 1) + " of the chain") + " ("
                    + c.getSubjectX500Principal().getName() + ", valid from " + from + " until " + until + ")";
            String why;
            if (now.isAfter(until)) {
                why = which + " expired on " + until;
            } else if (now.isBefore(from)) {
                why = which + " is not valid yet: it is valid from " + from + " (if that is in the past, this host's "
                        + "clock is wrong: it says " + now + ")";
            } else {
                continue;
            }
            log.warn("{}: {}; clients that verify the server (libnbd, qemu: by default) refuse every TLS "
                    + "connection until it is replaced with a valid one and serve restarted", file, why);
        }
    }

    private static Path existing(Path file) throws IOException {
        if (!Files.isReadable(file)) {
            throw new IOException(file + ": " + (Files.exists(file) ? "not readable" : "missing")
                    + " (nbdkit's layout: " + CA_CERT + ", " + SERVER_CERT + ", " + SERVER_KEY + ")");
        }
        return file;
    }

    public TlsMode mode() {
        return mode;
    }

    /** For logs: the mode and what authenticates the server (and the clients). */
    @Override
    public String toString() {
        return description;
    }

    /** The TLS side of one connection over {@code socket}, before its handshake. */
    SecureTransport newTransport(SocketStream socket) {
        return pskFile != null ? new PskTransport(socket, new PskServer(pskCrypto, pskFile))
                : new TlsTransport(socket, newEngine());
    }

    /** A server-side engine for one connection (X.509 only). */
    SSLEngine newEngine() {
        SSLEngine engine = context.createSSLEngine();
        engine.setUseClientMode(false);
        SSLParameters p = engine.getSSLParameters();
        p.setProtocols(PROTOCOLS);
        p.setNeedClientAuth(verifyPeer);
        engine.setSSLParameters(p);
        return engine;
    }
}
