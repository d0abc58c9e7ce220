package io.pmcache.cli;

import static io.pmcache.cli.CliRun.pm;
import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.cli.CliRun.Result;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code serve}'s TLS options are checked, with the file or option named, before anything is opened. */
class TlsOptionsTest {
    @TempDir
    Path dir;

    private Result serve(String... tls) {
        String[] args = new String[7 + tls.length];
        String[] base = {"serve", "--cache", dir.resolve("cache.img").toString(), "--backing",
            dir.resolve("backing.img").toString(), "--socket", dir.resolve("s.sock").toString()};
        System.arraycopy(base, 0, args, 0, base.length);
        System.arraycopy(tls, 0, args, base.length, tls.length);
        return pm(args);
    }

    @Test
    void badOptionsAreRefusedBeforeTheCacheIsTouched() throws Exception {
        assertThat(serve("--tls=maybe").err()).contains("--tls wants off, on or require, got 'maybe'");
        assertThat(serve("--tls=require").err()).contains("--tls=require needs --tls-certificates DIR or --tls-psk FILE");
        assertThat(serve("--tls-certificates", dir.toString()).err())
                .contains("--tls-certificates needs --tls=on or --tls=require");
        assertThat(serve("--tls=on", "--tls-verify-peer").err()).contains("needs --tls-certificates");
        Result missing = serve("--tls=on", "--tls-certificates", dir.resolve("nope").toString());
        assertThat(missing.exit()).isEqualTo(1);
        assertThat(missing.err()).contains(dir.resolve("nope") + ": the TLS certificates directory does not exist");
        assertThat(serve("--tls=on", "--tls-certificates", dir.toString()).err())
                .contains(dir.resolve("server-cert.pem") + ": missing");
        Files.writeString(dir.resolve("server-cert.pem"), "not a certificate");
        assertThat(serve("--tls=on", "--tls-certificates", dir.toString()).err())
                .contains(dir.resolve("server-cert.pem") + ": no PEM certificate");
        assertThat(dir.resolve("cache.img")).doesNotExist();
        assertThat(dir.resolve("backing.img")).doesNotExist();
    }

    @Test
    void optionsThatDoNotGoTogetherAreUsageErrors() {
        Result both = serve("--tls=require", "--tls-psk", "keys.psk", "--tls-certificates", dir.toString());
        assertThat(both.exit()).isEqualTo(2);
        assertThat(both.err()).contains("--tls-psk cannot be combined with --tls-certificates: a server "
                + "authenticates with pre-shared keys or with X.509 certificates, not both", "Usage:");
        Result verify = serve("--tls=require", "--tls-psk", "keys.psk", "--tls-verify-peer");
        assertThat(verify.exit()).isEqualTo(2);
        assertThat(verify.err()).contains("--tls-psk cannot be combined with --tls-verify-peer");
        Result off = serve("--tls-psk", "keys.psk");
        assertThat(off.exit()).isEqualTo(2);
        assertThat(off.err()).contains("--tls-psk needs --tls=on or --tls=require");
        assertThat(serve("--tls=maybe").exit()).isEqualTo(2);
        assertThat(dir.resolve("cache.img")).doesNotExist();
    }

    @Test
    void aBadPskFileIsNamedWithItsLineBeforeTheCacheIsTouched() throws Exception {
        Path psk = Files.writeString(dir.resolve("keys.psk"), "alice:0123456789abcdef0123456789abcdef\nbob\n");
        Result bad = serve("--tls=require", "--tls-psk", psk.toString());
        assertThat(bad.exit()).isEqualTo(1);
        assertThat(bad.err()).contains(psk + ":2: no ':' (expected username:hexkey)");
        Result missing = serve("--tls=on", "--tls-psk", dir.resolve("nope.psk").toString());
        assertThat(missing.exit()).isEqualTo(1);
        assertThat(missing.err()).contains(dir.resolve("nope.psk") + ": the PSK file does not exist");
        assertThat(dir.resolve("cache.img")).doesNotExist();
        assertThat(dir.resolve("backing.img")).doesNotExist();
    }
}
