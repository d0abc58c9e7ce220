package io.pmcache.nbd;

import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.CRLException;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509CRL;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * An NBD client's TLS setup (X.509), as libnbd's URI parameters and GnuTLS's certificate
 * directory (the layout nbdkit documents for clients) define it:
 * <ul>
 *   <li>{@code DIR/ca-cert.pem}: the CAs that sign the server's certificate (required while the
 *       server is verified);</li>
 *   <li>{@code DIR/client-cert.pem} and {@code DIR/client-key.pem} (unencrypted): this client's
 *       certificate, for servers that verify their clients ({@code nbdkit --tls-verify-peer});
 *       optional, but one needs the other;</li>
 *   <li>{@code DIR/ca-crl.pem}: optional; certificates it revokes are refused.</li>
 * </ul>
 * Without a directory the JDK's default trust store (the system's CAs) verifies the server and no
 * client certificate is sent. The server is verified by its chain and, when a host name is known
 * (the TCP host, or {@code tls-hostname}), by that name (subjectAltName, the HTTPS rules); a unix
 * socket has no host name, so there only the chain is checked. {@code verifyPeer == false} turns
 * all of that off (libnbd's {@code tls-verify-peer=false}): encrypted, but anyone in the middle can
 * pose as the server.
 *
 * <p>The files are read once, by {@link #x509}, so a bad one fails at open, named. Each connection
 * gets a new {@link SSLEngine} and runs the handshake over {@link TlsTransport}, the server's
 * transport, in client mode.
 */
public final class TlsClientConfig {
    static final String CLIENT_CERT = "client-cert.pem";
    static final String CLIENT_KEY = "client-key.pem";
    static final String CA_CRL = "ca-crl.pem";
    private static final String[] PROTOCOLS = {"TLSv1.3", "TLSv1.2"};

    private final SSLContext context;
    private final boolean verifyPeer;
    private final String description;

    private TlsClientConfig(SSLContext context, boolean verifyPeer, String description) {
        this.context = context;
        this.verifyPeer = verifyPeer;
        this.description = description;
    }

    /**
     * Reads {@code dir} (null: the JDK's default CAs, no client certificate). IOException naming
     * the file when one is missing, unreadable or not what it should be.
     */
    public static TlsClientConfig x509(Path dir, boolean verifyPeer) throws IOException {
        if (dir != null && !Files.isDirectory(dir)) {
            throw new IOException(dir + ": the TLS certificates directory does not exist (it holds "
                    + TlsConfig.CA_CERT + " and, for a server that verifies clients, " + CLIENT_CERT + " and "
                    + CLIENT_KEY + ")");
        }
        try {
            KeyManagerFactory kmf = null;
            String identity = "no client certificate";
            if (dir != null) {
                Path cert = dir.resolve(CLIENT_CERT);
                Path key = dir.resolve(CLIENT_KEY);
                if (Files.exists(cert) || Files.exists(key)) {
                    List<X509Certificate> chain = PemFiles.certificates(existing(cert));
                    KeyStore keys = KeyStore.getInstance("PKCS12");
                    keys.load(null, null);
                    keys.setKeyEntry("client", PemFiles.privateKey(existing(key)), new char[0],
                            chain.toArray(X509Certificate[]::new));
                    kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
                    kmf.init(keys, new char[0]);
                    identity = "client certificate " + chain.getFirst().getSubjectX500Principal().getName();
                }
            }
            TrustManager trust;
            String trusted;
            if (!verifyPeer) {
                trust = new TrustingAnyone();
                trusted = "server NOT verified (tls-verify-peer=false)";
            } else if (dir == null) {
                trust = new Explained(defaultTrust(null), "the JDK's default CAs", List.of());
                trusted = "server verified against the JDK's default CAs";
            } else {
                Path caFile = existing(dir.resolve(TlsConfig.CA_CERT));
                KeyStore store = KeyStore.getInstance("PKCS12");
                store.load(null, null);
                List<X509Certificate> cas = PemFiles.certificates(caFile);
                for (int i = 0; i < cas.size(); i++) {
                    store.setCertificateEntry("ca" + i, cas.get(i));
                }
                trust = new Explained(defaultTrust(store), caFile.toString(), crls(dir.resolve(CA_CRL), cas));
                trusted = "server verified against " + caFile;
            }
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(kmf != null ? kmf.getKeyManagers() : null, new TrustManager[] {trust}, null);
            return new TlsClientConfig(context, verifyPeer, "X.509, " + trusted + ", " + identity);
        } catch (GeneralSecurityException e) {
            throw new IOException((dir != null ? dir + ": " : "") + "cannot set up TLS: " + e.getMessage(), e);
        }
    }

    public boolean verifiesPeer() {
        return verifyPeer;
    }

    /** For logs: what verifies the server and what identifies this client. */
    @Override
    public String toString() {
        return description;
    }

    /**
     * Runs the client's side of the TLS handshake on {@code ch} (just after the server acknowledged
     * {@code NBD_OPT_STARTTLS}) and returns the encrypted transport. {@code host} is the name the
     * server's certificate must carry (null: chain only); {@code where} names the server in
     * errors, which say why the handshake failed. Blocking: the caller bounds it by closing
     * {@code ch}.
     */
    public Transport handshake(java.nio.channels.SocketChannel ch, String host, int port, String where)
            throws IOException {
        SSLEngine engine = host != null ? context.createSSLEngine(host, port) : context.createSSLEngine();
        engine.setUseClientMode(true);
        SSLParameters p = engine.getSSLParameters();
        p.setProtocols(PROTOCOLS);
        if (verifyPeer && host != null) {
            p.setEndpointIdentificationAlgorithm("HTTPS");
        }
        engine.setSSLParameters(p);
        TlsTransport t = new TlsTransport(SocketStream.blocking(ch), engine);
        try {
            t.handshake();
        } catch (SSLException e) {
            throw new IOException(where + ": TLS handshake failed: " + e.getMessage() + hint(e), e);
        } catch (java.io.EOFException e) {
            throw new IOException(where + ": the server closed the connection during the TLS handshake (a server "
                    + "that verifies clients does so when it does not trust this client's certificate, or gets none)",
                    e);
        }
        return t;
    }

    private static String hint(SSLException e) {
        String m = String.valueOf(e.getMessage());
        if (m.contains("certificate_required") || m.contains("bad_certificate") || m.contains("unknown_ca")
                || m.contains("handshake_failure")) {
            return " (the server refused this client: a server that verifies clients needs "
                    + "tls-certificates=DIR with " + CLIENT_CERT + " and " + CLIENT_KEY + " signed by a CA it trusts)";
        }
        return "";
    }

    private static Path existing(Path file) throws IOException {
        if (!Files.isReadable(file)) {
            throw new IOException(file + ": " + (Files.exists(file) ? "not readable" : "missing")
                    + " (the client's layout: " + TlsConfig.CA_CERT + ", and optionally " + CLIENT_CERT + " with "
                    + CLIENT_KEY + ", " + CA_CRL + ")");
        }
        return file;
    }

    private static X509ExtendedTrustManager defaultTrust(KeyStore store) throws GeneralSecurityException {
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(store);
        for (TrustManager t : tmf.getTrustManagers()) {
            if (t instanceof X509ExtendedTrustManager x) {
                return x;
            }
        }
        throw new GeneralSecurityException("the JDK offers no X.509 trust manager");
    }

    /** The CRLs of {@code file} (none when it does not exist), each checked to be signed by one of {@code cas}. */
    private static List<X509CRL> crls(Path file, List<X509Certificate> cas) throws IOException {
        if (!Files.exists(file)) {
            return List.of();
        }
        List<X509CRL> out = new ArrayList<>();
        try (InputStream in = Files.newInputStream(existing(file))) {
            for (var c : CertificateFactory.getInstance("X.509").generateCRLs(in)) {
                X509CRL crl = (X509CRL) c;
                boolean signed = false;
                for (X509Certificate ca : cas) {
                    try {
                        crl.verify(ca.getPublicKey());
                        signed = true;
                        break;
                    } catch (GeneralSecurityException e) {
                        // not this CA's
                    }
                }
                if (!signed) {
                    throw new IOException(file + ": the CRL of " + crl.getIssuerX500Principal().getName()
                            + " is signed by no CA in " + TlsConfig.CA_CERT);
                }
                out.add(crl);
            }
        } catch (CertificateException | CRLException e) {
            throw new IOException(file + ": not a valid CRL: " + e.getMessage(), e);
        }
        return List.copyOf(out);
    }

    /** A client's trust manager: it checks servers only, and refuses any client check. */
    private abstract static class ServerCertificateCheck extends X509ExtendedTrustManager {
        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
                throws CertificateException {
            throw new CertificateException("a client's trust manager checks no clients");
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
                throws CertificateException {
            throw new CertificateException("a client's trust manager checks no clients");
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            throw new CertificateException("a client's trust manager checks no clients");
        }
    }

    /**
     * The JDK's PKIX checks, with errors that say which certificate was refused and against what,
     * and the revocation list.
     */
    private static final class Explained extends ServerCertificateCheck {
        private final X509ExtendedTrustManager pkix;
        private final String trusted;
        private final List<X509CRL> crls;

        Explained(X509ExtendedTrustManager pkix, String trusted, List<X509CRL> crls) {
            this.pkix = pkix;
            this.trusted = trusted;
            this.crls = crls;
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
                throws CertificateException {
            try {
                pkix.checkServerTrusted(chain, authType, engine);
            } catch (CertificateException e) {
                throw explain(chain, e);
            }
            revoked(chain);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
                throws CertificateException {
            try {
                pkix.checkServerTrusted(chain, authType, socket);
            } catch (CertificateException e) {
                throw explain(chain, e);
            }
            revoked(chain);
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            try {
                pkix.checkServerTrusted(chain, authType);
            } catch (CertificateException e) {
                throw explain(chain, e);
            }
            revoked(chain);
        }

        private CertificateException explain(X509Certificate[] chain, CertificateException e) {
            String why = String.valueOf(e.getMessage());
            if (why.contains("unable to find valid certification path") || why.contains("PKIX path")) {
                why = "it is not signed by a CA in " + trusted;
            } else if (e instanceof java.security.cert.CertificateExpiredException) {
                why = "it has expired (" + why + ")";
            } else if (e instanceof java.security.cert.CertificateNotYetValidException) {
                why = "it is not valid yet (" + why + ")";
            }
            return new CertificateException(certificate(chain) + " refused: " + why, e);
        }

        private void revoked(X509Certificate[] chain) throws CertificateException {
            for (X509Certificate c : chain) {
                for (X509CRL crl : crls) {
                    if (crl.getIssuerX500Principal().equals(c.getIssuerX500Principal()) && crl.isRevoked(c)) {
                        throw new CertificateException("the server's certificate " + c.getSubjectX500Principal()
                                .getName() + " is revoked by " + CA_CRL);
                    }
                }
            }
        }

        private static String certificate(X509Certificate[] chain) {
            if (chain == null || chain.length == 0) {
                return "the server's (empty) certificate chain";
            }
            return "the server's certificate (subject " + chain[0].getSubjectX500Principal().getName()
                    + ", issued by " + chain[0].getIssuerX500Principal().getName() + ")";
        }

        @Override
        public X509Certificate[] getAcceptedIssuers() {
            return pkix.getAcceptedIssuers();
        }
    }

    /** {@code tls-verify-peer=false}: every server certificate is accepted. */
    private static final class TrustingAnyone extends ServerCertificateCheck {
        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine) {
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket) {
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType) {
        }

        @Override
        public X509Certificate[] getAcceptedIssuers() {
            return new X509Certificate[0];
        }
    }
}
