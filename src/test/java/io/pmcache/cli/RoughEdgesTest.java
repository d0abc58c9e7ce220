package io.pmcache.cli;

import static io.pmcache.cli.CliRun.pm;
import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.pmcache.admin.AdminServer;
import io.pmcache.admin.StatusSource;
import io.pmcache.cache.Cache;
import io.pmcache.cli.CliRun.Result;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a new user meets first (issue 14, "Rough edges"): usage errors exit 2; errors name the
 * file and the reason and come before anything is created or replayed; a failed command removes
 * what it created; small caches get a fitting segment size; the next step is said.
 */
class RoughEdgesTest {
    @TempDir
    Path dir;

    private String cache() {
        return dir.resolve("cache.img").toString();
    }

    private String backing() {
        return dir.resolve("backing.img").toString();
    }

    private String sock() {
        return dir.resolve("s.sock").toString();
    }

    private void assertNothingCreated() {
        assertThat(dir.resolve("cache.img")).doesNotExist();
        assertThat(dir.resolve("backing.img")).doesNotExist();
    }

    @Test
    void usageErrorsExit2AndCreateNothing() {
        Result noSocket = pm("serve", "--cache", cache(), "--cache-size", "64M", "--backing", backing(),
                "--backing-size", "64M");
        assertThat(noSocket.exit()).isEqualTo(2);
        assertThat(noSocket.err()).contains("--socket").contains("Usage:");
        Result parallel = pm("serve", "--cache", cache(), "--cache-size", "64M", "--backing", backing(),
                "--backing-size", "64M", "--socket", sock(), "--parallel", "200");
        assertThat(parallel.exit()).isEqualTo(2);
        assertThat(parallel.err()).contains("--parallel").contains("1..128");
        Result gc = pm("serve", "--cache", cache(), "--cache-size", "64M", "--backing", backing(),
                "--backing-size", "64M", "--socket", sock(), "--gc-percent", "95");
        assertThat(gc.exit()).isEqualTo(2);
        assertThat(gc.err()).contains("--gc-percent").contains("0..90");
        Result busyPoll = pm("serve", "--cache", cache(), "--cache-size", "64M", "--backing", backing(),
                "--backing-size", "64M", "--socket", sock(), "--busy-poll", "5000");
        assertThat(busyPoll.exit()).isEqualTo(2);
        assertThat(busyPoll.err()).contains("--busy-poll").contains("0..1000 µs, got 5000");
        Result zero = pm("serve", "--cache", cache(), "--cache-size", "0", "--backing", backing(),
                "--backing-size", "64M", "--socket", sock());
        assertThat(zero.exit()).isEqualTo(2);
        assertThat(zero.err()).contains("--cache-size");
        Result formatZero = pm("format", "--cache", cache(), "--cache-size", "0", "--backing", backing(),
                "--backing-size", "64M");
        assertThat(formatZero.exit()).isEqualTo(2);
        Result badAdmin = pm("status", "--admin", "localhost:http");
        assertThat(badAdmin.exit()).isEqualTo(2);
        assertNothingCreated();
    }

    @Test
    void aSocketInAMissingDirectoryIsNamedBeforeAnythingIsCreated() {
        Result r = pm("serve", "--cache", cache(), "--cache-size", "64M", "--backing", backing(),
                "--backing-size", "64M", "--socket", dir.resolve("no/such/dir/s.sock").toString());
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).contains(dir.resolve("no/such/dir").toString()).contains("does not exist")
                .contains("mkdir -p");
        assertNothingCreated();
    }

    @Test
    void aBusyAdminPortIsNamedBeforeAnythingIsCreated() throws IOException {
        try (java.net.ServerSocket busy = new java.net.ServerSocket(0, 1,
                java.net.InetAddress.getLoopbackAddress())) {
            Result r = pm("serve", "--cache", cache(), "--cache-size", "64M", "--backing", backing(),
                    "--backing-size", "64M", "--socket", sock(), "--admin", "127.0.0.1:" + busy.getLocalPort());
            assertThat(r.exit()).isEqualTo(1);
            assertThat(r.err()).contains("cannot listen on 127.0.0.1:" + busy.getLocalPort()).contains("--admin");
        }
        assertNothingCreated();
    }

    @Test
    void aMissingCacheSizeIsFoundBeforeTheBackingFileIsCreated() {
        Result r = pm("serve", "--cache", cache(), "--backing", backing(), "--backing-size", "64M", "--socket",
                sock());
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).contains("give --cache-size").doesNotContain("created sparse backing file");
        assertNothingCreated();
    }

    @Test
    void aFailedServeRemovesTheFilesItCreated() {
        // Fails in Cache.open, after both files were created and the cache formatted.
        Result tooParallel = pm("serve", "--cache", cache(), "--cache-size", "64M", "--backing", backing(),
                "--backing-size", "64M", "--socket", sock(), "--parallel", "64");
        assertThat(tooParallel.exit()).isEqualTo(1);
        assertThat(tooParallel.err()).contains("parallel 64 needs at least 256 segments");
        assertNothingCreated();
        // Fails in format: the segment size given is too large for the cache; the hint names one that fits.
        Result tooBig = pm("serve", "--cache", cache(), "--cache-size", "64M", "--backing", backing(),
                "--backing-size", "64M", "--socket", sock(), "--segment-size", "16M");
        assertThat(tooBig.exit()).isEqualTo(1);
        assertThat(tooBig.err()).contains("--segment-size 8M");
        assertNothingCreated();
    }

    @Test
    void aFailedServeLeavesFilesItDidNotCreate() throws IOException {
        assertThat(pm("format", "--cache", cache(), "--cache-size", "64M", "--backing", backing(),
                "--backing-size", "64M").exit()).isZero();
        byte[] before = Files.readAllBytes(Path.of(cache()));
        Result r = pm("serve", "--cache", cache(), "--backing", backing(), "--socket", sock(), "--parallel", "64");
        assertThat(r.exit()).isEqualTo(1);
        assertThat(Files.readAllBytes(Path.of(cache()))).isEqualTo(before);
        assertThat(Path.of(backing())).exists();
    }

    @Test
    void smallCachesGetAFittingSegmentSize() {
        Result f = pm("format", "--cache", cache(), "--cache-size", "64M", "--backing", backing(),
                "--backing-size", "1G");
        assertThat(f.exit()).as(f.err()).isZero();
        // The default volume takes the medium less the volume table's 2 MiB: 62 MiB, 61 segments and the metadata.
        assertThat(f.out()).contains("61 segments of 1 MiB");
        Result big = pm("format", "--cache", dir.resolve("big.img").toString(), "--cache-size", "1G", "--backing",
                dir.resolve("b2.img").toString(), "--backing-size", "1G");
        assertThat(big.exit()).as(big.err()).isZero();
        assertThat(big.out()).as("the default stays 16M where it fits").contains("segments of 16 MiB");
        Result tiny = pm("format", "--cache", dir.resolve("tiny.img").toString(), "--cache-size", "4M",
                "--backing", backing());
        assertThat(tiny.exit()).isEqualTo(1);
        assertThat(tiny.err()).contains("the smallest cache is");
        assertThat(dir.resolve("tiny.img")).doesNotExist();
    }

    @Test
    void dashVOnEverySubcommandPrintsTheVersion() {
        for (String[] cmd : new String[][] {{"format"}, {"serve"}, {"status"}, {"check"}, {"detach"}, {"set"},
                {"set", "gc-percent"}}) {
            String[] args = java.util.Arrays.copyOf(cmd, cmd.length + 1);
            args[cmd.length] = "-V";
            Result v = pm(args);
            assertThat(v.exit()).as(String.join(" ", cmd)).isZero();
            assertThat(v.out()).as(String.join(" ", cmd)).startsWith("pmcache ");
        }
    }

    @Test
    void statusAcceptsTheUrlTheServerLogs() throws Exception {
        try (Cache c = Cache.openOrCreate(dir.resolve("cache.img"), 64 << 20, newBacking(64 << 20));
             AdminServer admin = AdminServer.start(new InetSocketAddress("127.0.0.1", 0), StatusSource.of(c, null),
                     c::gcPercent, c::setGcPercent)) {
            for (String spec : List.of(admin.url(), admin.url() + "/")) {
                Result r = pm("status", "--admin", spec, "--json");
                assertThat(r.exit()).as(spec + ": " + r.err()).isZero();
                assertThat(r.out()).contains("\"source\"");
            }
            Result set = pm("set", "gc-percent", "40", "--admin", admin.url());
            assertThat(set.exit()).as(set.err()).isZero();
            assertThat(c.gcPercent()).isEqualTo(40);
        }
    }

    @Test
    void fileErrorsSayWhy() {
        assertThat(Errors.describe(new AccessDeniedException("/x/ro.img"))).isEqualTo("/x/ro.img: permission denied");
        assertThat(Errors.describe(new java.nio.file.NoSuchFileException("/x/a.img", null, "cache file does not "
                + "exist"))).isEqualTo("/x/a.img: cache file does not exist");
    }

    /**
     * A read-only backing file, for real: root ignores file modes, so the command runs as root
     * without the capabilities that let it (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH);
     * a non-root user runs it as is.
     */
    @Test
    void aReadOnlyBackingFileIsNamedWithTheReasonBeforeTheCacheIsCreated() throws Exception {
        Path ro = dir.resolve("ro.img");
        Files.write(ro, new byte[1 << 20]);
        Files.setPosixFilePermissions(ro, PosixFilePermissions.fromString("r--r--r--"));
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
        Process p = withoutDacOverride("serve", "--cache", cache(), "--cache-size", "64M", "--backing",
                ro.toString(), "--socket", sock());
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
        String err = new String(p.getErrorStream().readAllBytes());
        assertThat(p.exitValue()).as(err).isEqualTo(1);
        assertThat(err).contains("pmcache: error: " + ro).contains("read-only").contains("permission denied");
        assertThat(dir.resolve("cache.img")).as("checked before the cache is created").doesNotExist();

        Path roDir = dir.resolve("locked");
        Files.createDirectory(roDir);
        Files.setPosixFilePermissions(roDir, PosixFilePermissions.fromString("r-xr-xr-x"));
        Process q = withoutDacOverride("format", "--cache", roDir.resolve("c.img").toString(), "--cache-size",
                "64M", "--backing", ro.toString());
        assertThat(q.waitFor(60, TimeUnit.SECONDS)).isTrue();
        String qerr = new String(q.getErrorStream().readAllBytes());
        assertThat(q.exitValue()).as(qerr).isEqualTo(1);
        assertThat(qerr).contains("permission denied");
    }

    /** docs/pmcache.service runs a JDK 25 (not Debian's /usr/bin/java, Java 17) with options serve accepts. */
    @Test
    void theSystemdUnitNamesAJdk25AndValidServeOptions() throws IOException {
        String unit = Files.readString(Path.of("docs/pmcache.service"));
        String exec = unit.lines().filter(l -> l.startsWith("ExecStart=")).findFirst().orElseThrow();
        StringBuilder command = new StringBuilder(exec.substring("ExecStart=".length()));
        List<String> lines = unit.lines().toList();
        for (int i = lines.indexOf(exec); lines.get(i).endsWith("\\"); i++) {
            command.setLength(command.length() - 1);
            command.append(' ').append(lines.get(i + 1).strip());
        }
        List<String> words = List.of(command.toString().trim().split("\\s+"));
        assertThat(words.getFirst()).doesNotStartWith("/usr/bin/").contains("25");
        List<String> serveArgs = words.subList(words.indexOf("serve") + 1, words.size());
        picocli.CommandLine cl = Main.commandLine();
        cl.parseArgs(java.util.stream.Stream.concat(java.util.stream.Stream.of("serve"), serveArgs.stream())
                .toArray(String[]::new)); // throws on an option serve does not know
    }

    private Path newBacking(long size) throws IOException {
        Path b = Path.of(backing());
        try (var f = new java.io.RandomAccessFile(b.toFile(), "rw")) {
            f.setLength(size);
        }
        return b;
    }

    private static Process withoutDacOverride(String... args) throws IOException {
        List<String> cmd = new ArrayList<>();
        if ("root".equals(System.getProperty("user.name"))) {
            assumeTrue(Files.isExecutable(Path.of("/usr/bin/setpriv")), "setpriv (util-linux) is needed as root");
            cmd.addAll(List.of("/usr/bin/setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"));
        }
        cmd.addAll(List.of(ProcessHandle.current().info().command().orElse("java"),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                "io.pmcache.cli.Main"));
        cmd.addAll(List.of(args));
        return new ProcessBuilder(cmd).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
    }
}
