package io.pmcache.cli;

import io.pmcache.nbd.TlsConfig;
import io.pmcache.nbd.TlsMode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import picocli.CommandLine.Option;

/**
 * {@code serve}'s TLS options, named and laid out as nbdkit's so that users and scripts can carry
 * them over: {@code --tls=off|on|require}, {@code --tls-certificates=DIR} (ca-cert.pem,
 * server-cert.pem, server-key.pem), {@code --tls-verify-peer}, {@code --tls-psk=FILE}.
 */
final class TlsOptions {
    @Option(names = "--tls", paramLabel = "off|on|require", defaultValue = "off",
            description = "TLS for NBD clients, as nbdkit: off (default), on (clients may use TLS), "
                    + "require (clients must: every option before NBD_OPT_STARTTLS is refused).")
    String mode;

    @Option(names = "--tls-certificates", paramLabel = "DIR",
            description = "Directory with server-cert.pem, server-key.pem (unencrypted) and, for --tls-verify-peer, "
                    + "ca-cert.pem (nbdkit's layout).")
    Path certificates;

    @Option(names = "--tls-verify-peer",
            description = "Require a client certificate signed by DIR/ca-cert.pem.")
    boolean verifyPeer;

    @Option(names = "--tls-psk", paramLabel = "FILE",
            description = "Pre-shared keys (nbdkit's username:hexkey lines). Not supported yet: see docs/nbd.md.")
    Path psk;

    /** The server's TLS setup; the files are read now, so a bad one fails at start, named. */
    TlsConfig config() throws IOException {
        TlsMode m = switch (mode.toLowerCase(Locale.ROOT)) {
            case "off" -> TlsMode.OFF;
            case "on" -> TlsMode.ON;
            case "require" -> TlsMode.REQUIRE;
            default -> throw new IllegalArgumentException("--tls wants off, on or require, got '" + mode + "'");
        };
        if (psk != null) {
            throw new IllegalArgumentException("--tls-psk " + psk + ": TLS with pre-shared keys is not supported yet "
                    + "(the JDK's TLS has no external PSK; see docs/nbd.md); use --tls-certificates");
        }
        if (m == TlsMode.OFF) {
            if (certificates != null || verifyPeer) {
                throw new IllegalArgumentException((certificates != null ? "--tls-certificates" : "--tls-verify-peer")
                        + " needs --tls=on or --tls=require");
            }
            return TlsConfig.off();
        }
        if (certificates == null) {
            throw new IllegalArgumentException("--tls=" + mode + " needs --tls-certificates DIR");
        }
        return TlsConfig.x509(m, certificates, verifyPeer);
    }
}
