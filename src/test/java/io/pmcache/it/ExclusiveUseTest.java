package io.pmcache.it;

import static io.pmcache.cli.CliRun.pm;

import io.pmcache.cli.CliRun.Result;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real {@code pmcache serve} process holds its cache and backing files: {@code format --force},
 * {@code detach}, {@code check}, offline {@code status} and a second {@code serve} (run in this JVM,
 * another process to the server) are refused with exit 1 and one line naming the file; once the
 * server stopped, all of them work again.
 */
@Timeout(120)
class ExclusiveUseTest {
    @TempDir
    Path dir;
    private final List<ServeProcess> servers = new ArrayList<>();

    @AfterEach
    void stopServers() throws InterruptedException {
        for (ServeProcess s : servers) {
            s.close();
        }
    }

    /** Exit 1 and exactly one line on stderr that names {@code file} and says it is in use. */
    private static void assertRefused(Result r, Path file, String what) {
        assertThat(r.exit()).as("%s: exit status; stderr: %s", what, r.err()).isEqualTo(1);
        assertThat(r.err().strip().lines().toList()).as("%s: one line", what).hasSize(1);
        assertThat(r.err()).as(what).startsWith("pmcache: error: ").contains(file.toString())
                .contains("in use by another pmcache process").doesNotContain("Exception").doesNotContain("\tat ");
    }

    @Test
    void commandsAreRefusedWhileServeRunsAndWorkAfterItStopped() throws Exception {
        Path cache = dir.resolve("cache.img");
        Path backing = dir.resolve("backing.img");
        String c = cache.toString();
        String b = backing.toString();
        assertThat(pm("format", "--cache", c, "--cache-size", "16M", "--segment-size", "1M", "--backing", b,
                "--backing-size", "32M").exit()).isZero();
        ServeProcess serve = ServeProcess.start(dir, List.of("--cache", c, "--backing", b, "--socket",
                dir.resolve("s.sock").toString(), "--parallel", "1"));
        servers.add(serve);
        byte[] before = Files.readAllBytes(cache);

        assertRefused(pm("format", "--cache", c, "--backing", b, "--segment-size", "1M", "--force"), cache,
                "format --force");
        assertRefused(pm("format", "--cache", c, "--cache-size", "8M", "--backing", b, "--force"), cache,
                "format --force with a resize");
        assertThat(Files.size(cache)).as("a refused format does not resize the file").isEqualTo(16L << 20);
        assertRefused(pm("detach", "--cache", c, "--backing", b), cache, "detach");
        assertRefused(pm("check", "--cache", c, "--backing", b), cache, "check");
        assertRefused(pm("status", "--cache", c), cache, "status --cache");
        assertRefused(pm("serve", "--cache", c, "--backing", b, "--socket", dir.resolve("t.sock").toString()),
                backing, "a second serve of the same files");

        // Another cache in front of the same backing file is refused too: two caches would write back into it.
        Path other = dir.resolve("other.img");
        assertRefused(pm("serve", "--cache", other.toString(), "--cache-size", "16M", "--segment-size", "1M",
                "--backing", b, "--socket", dir.resolve("u.sock").toString()), backing, "serve of another cache");
        assertThat(Files.readAllBytes(cache)).as("nothing touched the served cache file").isEqualTo(before);
        assertThat(serve.isAlive()).isTrue();

        assertThat(serve.stop()).as(serve.log()).isZero();
        Result check = pm("check", "--cache", c, "--backing", b);
        assertThat(check.exit()).as(check.err()).isZero();
        assertThat(pm("status", "--cache", c).exit()).isZero();
        Result detach = pm("detach", "--cache", c, "--backing", b);
        assertThat(detach.exit()).as(detach.err()).isZero();
        Result format = pm("format", "--cache", c, "--backing", b, "--segment-size", "1M", "--force");
        assertThat(format.exit()).as(format.err()).isZero();
    }
}
