package io.pmcache.nbd;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Vector;
import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.AlertLevel;
import org.bouncycastle.tls.BasicTlsPSKExternal;
import org.bouncycastle.tls.CipherSuite;
import org.bouncycastle.tls.PSKTlsServer;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.PskIdentity;
import org.bouncycastle.tls.SecurityParameters;
import org.bouncycastle.tls.TlsPSKExternal;
import org.bouncycastle.tls.TlsPSKIdentityManager;
import org.bouncycastle.tls.TlsUtils;
import org.bouncycastle.tls.crypto.TlsCrypto;

/**
 * One connection's TLS-PSK policy for Bouncy Castle's {@code TlsServerProtocol}: which versions and
 * cipher suites, and the key of the user the client names.
 *
 * <ul>
 *   <li>TLS 1.3 with an external PSK and (EC)DHE ({@code psk_dhe_ke}: forward secrecy), AES-128-GCM:
 *       what GnuTLS ≥ 3.6.5 clients (libnbd, QEMU) negotiate;</li>
 *   <li>TLS 1.2 ECDHE-PSK and DHE-PSK suites (again forward secret) for older clients. Plain PSK
 *       suites without (EC)DHE are not offered.</li>
 * </ul>
 * The keys are those of the PSK file at the time of the handshake ({@link PskKeyFile#keys()}). A user
 * the file does not know gets a random key, as GnuTLS does: the handshake then fails exactly as with a
 * wrong key (decrypt_error), so a client cannot find out which user names exist. {@link #failure()}
 * tells the server's log which it was. Renegotiation is refused (Bouncy Castle's default policy).
 */
final class PskServer extends PSKTlsServer {
    /**
     * TLS 1.3's, then TLS 1.2's (EC)DHE-PSK. No ChaCha20-Poly1305: Bouncy Castle's JCA crypto does not
     * find it among the JDK's ciphers (it would drop those suites itself; a client offering only them is
     * refused with handshake_failure). No TLS 1.3 SHA-384 suite: an external PSK is bound to
     * SHA-256 (RFC 8446 4.2.11; GnuTLS's and {@link BasicTlsPSKExternal}'s default), and Bouncy Castle
     * 1.83 would pick TLS_AES_256_GCM_SHA384 when the client prefers it and then derive keys the
     * client cannot decrypt with.
     */
    private static final int[] SUITES = {
        CipherSuite.TLS_AES_128_GCM_SHA256,
        CipherSuite.TLS_DHE_PSK_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_DHE_PSK_WITH_AES_256_GCM_SHA384,
        CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256,
        CipherSuite.TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384,
    };
    private static final Map<Integer, String> SUITE_NAMES = Map.ofEntries(
            Map.entry(CipherSuite.TLS_AES_128_GCM_SHA256, "TLS_AES_128_GCM_SHA256"),
            Map.entry(CipherSuite.TLS_DHE_PSK_WITH_AES_128_GCM_SHA256, "TLS_DHE_PSK_WITH_AES_128_GCM_SHA256"),
            Map.entry(CipherSuite.TLS_DHE_PSK_WITH_AES_256_GCM_SHA384, "TLS_DHE_PSK_WITH_AES_256_GCM_SHA384"),
            Map.entry(CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256, "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256"),
            Map.entry(CipherSuite.TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384, "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384"));

    private final PskKeyFile file;
    /** The user the client named (escaped for logs), once it has. */
    private volatile String user;
    /** Why the handshake failed, for the log: an unknown user, the key file, or the TLS alert. */
    private volatile String failure;

    /** TLS 1.2's PSK key exchange asks here. */
    private final TlsPSKIdentityManager keys = new TlsPSKIdentityManager() {
        @Override
        public byte[] getHint() {
            return null;
        }

        @Override
        public byte[] getPSK(byte[] identity) {
            try {
                return keyFor(identity);
            } catch (IOException e) {
                return null; // Bouncy Castle answers unknown_psk_identity; failure() says why
            }
        }
    };

    PskServer(TlsCrypto crypto, PskKeyFile file) {
        super(crypto, null); // TLS 1.2 asks getPSKIdentityManager(), below
        this.file = file;
    }

    @Override
    public TlsPSKIdentityManager getPSKIdentityManager() {
        return keys;
    }

    @Override
    protected ProtocolVersion[] getSupportedVersions() {
        return ProtocolVersion.TLSv13.downTo(ProtocolVersion.TLSv12);
    }

    @Override
    protected int[] getSupportedCipherSuites() {
        return TlsUtils.getSupportedCipherSuites(getCrypto(), SUITES);
    }

    /** TLS 1.3: the key for the first identity the client offers (GnuTLS clients offer one). */
    @Override
    public TlsPSKExternal getExternalPSK(@SuppressWarnings("rawtypes") Vector identities) {
        if (identities.isEmpty()) {
            return null;
        }
        byte[] identity = ((PskIdentity) identities.get(0)).getIdentity();
        try {
            return new BasicTlsPSKExternal(identity, getCrypto().createSecret(keyFor(identity)));
        } catch (IOException e) {
            return null; // the key file is unusable: no PSK, the handshake fails (failure says why)
        }
    }

    /** The user's key, or a random one for an unknown user (see class comment). */
    private byte[] keyFor(byte[] identity) throws IOException {
        String name = new String(identity, StandardCharsets.UTF_8);
        user = LogText.escape(name);
        byte[] key;
        try {
            key = file.keys().key(name);
        } catch (IOException e) {
            failure = e.getMessage();
            throw e;
        }
        if (key == null) {
            failure = "unknown PSK user '" + user + "' (not in " + file.path() + ")";
            key = new byte[32];
            getCrypto().getSecureRandom().nextBytes(key);
        }
        return key;
    }

    @Override
    public void notifyAlertRaised(short level, short description, String message, Throwable cause) {
        if (level == AlertLevel.fatal && failure == null) {
            failure = (description == AlertDescription.decrypt_error || description == AlertDescription.bad_record_mac)
                    && user != null ? "wrong key for PSK user '" + user + "'"
                    : "TLS alert " + AlertDescription.getText(description) + (message != null ? ": " + message : "");
        }
    }

    @Override
    public void notifyAlertReceived(short level, short description) {
        if (level == AlertLevel.fatal && failure == null) {
            failure = "the client sent TLS alert " + AlertDescription.getText(description);
        }
    }

    /** For the log, once the handshake is done: the protocol and the cipher suite. */
    String describe() {
        SecurityParameters p = context.getSecurityParametersConnection();
        if (p == null) {
            return "TLS (handshake not done)";
        }
        return p.getNegotiatedVersion() + " " + SUITE_NAMES.getOrDefault(p.getCipherSuite(),
                "cipher suite 0x" + Integer.toHexString(p.getCipherSuite()));
    }

    /** The user the client named, or null. */
    String user() {
        return user;
    }

    /** Why the handshake failed, or null. */
    String failure() {
        return failure;
    }
}
