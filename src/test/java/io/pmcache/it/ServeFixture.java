package io.pmcache.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * What a process test keeps around its {@code pmcache serve} processes, registered with
 * {@code @RegisterExtension} next to the test's {@code @TempDir}:
 * <ul>
 * <li>{@link #scratch()}: a directory for cache media, on /dev/shm when it is writable (memory, as a
 * pmem medium would be), else under the test's directory; made on first use, deleted after the test;
 * <li>{@link #serve}: starts a server ({@link ServeProcess}, logs in the test's directory);
 * <li>{@link #closeLater}: what else the test must release (clients, mounts, remote servers);
 * <li>{@link #randomFile} and {@link #assertExportStartsWith}: data for an export, and checking it.
 * </ul>
 * After each test (after its own {@code @AfterEach} methods) everything registered is closed, the last
 * registered first, so a client or mount goes before the server it uses; a failure of one close does not
 * keep the others from closing. When a test fails, the logs of the servers it started are printed
 * (the files {@code serve-*} of its directory), so that a failure in CI shows what they said: then,
 * not in a {@code TestWatcher}, which JUnit calls after it deleted the test's {@code @TempDir}.
 */
final class ServeFixture implements BeforeEachCallback, AfterEachCallback {
    private final Supplier<Path> dir;
    private String scratchPrefix;
    private final List<AutoCloseable> open = new ArrayList<>();
    private Path scratch;

    /** {@code dir} (the test's {@code @TempDir}) is asked for only while a test runs, when JUnit has set it. */
    ServeFixture(Supplier<Path> dir) {
        this.dir = dir;
    }

    /** The directory for this test's cache media (see the class comment). */
    Path scratch() throws IOException {
        if (scratch == null) {
            Path shm = Path.of("/dev/shm");
            scratch = Files.isDirectory(shm) && Files.isWritable(shm)
                    ? Files.createTempDirectory(shm, scratchPrefix) : Files.createDirectory(dir.get().resolve("cache"));
        }
        return scratch;
    }

    /** Starts {@code pmcache serve args...} (logs in the test's directory); it is killed after the test if alive. */
    ServeProcess serve(List<String> args) throws IOException, InterruptedException {
        return closeLater(ServeProcess.start(dir.get(), args));
    }

    /** {@code c}, closed after the test (before what was registered earlier). */
    <T extends AutoCloseable> T closeLater(T c) {
        open.add(c);
        return c;
    }

    /** A file of {@code size} random bytes (from {@code seed}) named {@code name} in the test's directory. */
    Path randomFile(String name, long size, long seed) throws IOException {
        byte[] b = new byte[Math.toIntExact(size)];
        new Random(seed).nextBytes(b);
        return Files.write(dir.get().resolve(name), b);
    }

    /**
     * The export at {@code uri} begins with {@code expected}'s bytes (it may be larger): read back with
     * nbdcopy into {@code expected}'s name + ".back" in the test's directory.
     */
    void assertExportStartsWith(String uri, Path expected) throws IOException, InterruptedException {
        Path back = dir.get().resolve(expected.getFileName() + ".back");
        Files.deleteIfExists(back);
        Tools.run("nbdcopy", uri, back.toString()).expectSuccess();
        byte[] want = Files.readAllBytes(expected);
        assertThat(Arrays.mismatch(Arrays.copyOf(Files.readAllBytes(back), want.length), want))
                .as("%s differs from %s, which was written to it", uri, expected.getFileName()).isEqualTo(-1);
    }

    /** An address on loopback with a port that was free a moment ago, for {@code serve --admin}. */
    static String freeAdminAddress() throws IOException {
        try (ServerSocket free = new ServerSocket(0)) {
            return "127.0.0.1:" + free.getLocalPort();
        }
    }

    /** Names the /dev/shm directory after the test class, so that a leftover says which test made it. */
    @Override
    public void beforeEach(ExtensionContext context) {
        scratchPrefix = "pmcache-" + context.getRequiredTestClass().getSimpleName() + "-";
    }

    @Override
    public void afterEach(ExtensionContext context) throws Exception {
        Exception failure = null;
        for (AutoCloseable c : open.reversed()) {
            try {
                c.close();
            } catch (Exception e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        open.clear();
        if (context.getExecutionException().isPresent()) {
            printServerLogs();
        }
        if (scratch != null) {
            try (Stream<Path> files = Files.walk(scratch)) {
                for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
            scratch = null;
        }
        if (failure != null) {
            throw failure;
        }
    }

    private void printServerLogs() {
        try (Stream<Path> logs = Files.list(dir.get())) {
            for (Path p : logs.filter(p -> p.getFileName().toString().startsWith("serve-")).sorted().toList()) {
                System.err.println("===== " + p.getFileName() + " =====\n" + Files.readString(p));
            }
        } catch (IOException e) {
            System.err.println("cannot print server logs: " + e);
        }
    }
}
