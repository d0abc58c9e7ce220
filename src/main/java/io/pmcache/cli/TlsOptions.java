package io.pmcache.cli;

import io.pmcache.nbd.TlsConfig;
import io.pmcache.nbd.TlsMode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

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
            description = "Pre-shared keys instead of certificates: nbdkit's username:hexkey lines, as "
                    + "'psktool -u USER -p FILE' writes them. Needs --tls=on or --tls=require.")
    Path psk;

    @Spec(Spec.Target.MIXEE)
    CommandSpec spec;

    /**
     * The server's TLS setup; the files are read now, so a bad one fails at start, named (exit 1).
     * Options that do not go together are usage errors (exit 2).
     */
    TlsConfig config() throws IOException {
        TlsMode m = switch (mode.toLowerCase(Locale.ROOT)) {
            case "off" -> TlsMode.OFF;
            case "on" -> TlsMode.ON;
            case "require" -> TlsMode.REQUIRE;
            default -> throw usage("--tls wants off, on or require, got '" + mode + "'");
        };
        if (psk != null && (certificates != null || verifyPeer)) {
            // nbdkit lets --tls-psk silently win over certificates; one or the other is clearer.
            throw usage("--tls-psk cannot be combined with " + (certificates != null ? "--tls-certificates"
                    : "--tls-verify-peer") + ": a server authenticates with pre-shared keys or with X.509 "
                    + "certificates, not both");
        }
        if (m == TlsMode.OFF) {
            if (certificates != null || verifyPeer || psk != null) {
                throw usage((certificates != null ? "--tls-certificates" : psk != null ? "--tls-psk"
                        : "--tls-verify-peer") + " needs --tls=on or --tls=require");
            }
            return TlsConfig.off();
        }
        if (psk != null) {
            return TlsConfig.psk(m, psk);
        }
        if (certificates == null) {
            throw usage("--tls=" + mode + " needs --tls-certificates DIR or --tls-psk FILE");
        }
        return TlsConfig.x509(m, certificates, verifyPeer);
    }

    private RuntimeException usage(String message) {
        return spec != null ? Usage.error(spec, message) : new IllegalArgumentException(message);
    }
}
