package io.pmcache.it;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A real {@code pmcache serve} process (a separate JVM on the test classpath, running
 * {@code io.pmcache.cli.Main} exactly as {@code bin/pmcache} does from the jar; the jar itself is
 * only built in the {@code package} phase, after the tests).
 *
 * <p>stdout and stderr go to files in the test's directory: {@link #start} waits (with a timeout)
 * for the first stdout line, the NBD URI, and fails with the server's stderr if the process exits
 * or stays silent; {@link #log()} returns stderr for failure reports. {@link #close()} kills the
 * process if it is still alive, so a test can always call it from {@code @AfterEach}.
 */
final class ServeProcess implements AutoCloseable {
    static final Duration STARTUP_TIMEOUT = Duration.ofSeconds(60);

    private final Process process;
    private final Path stdout;
    private final Path stderr;
    private final String uri;

    private ServeProcess(Process process, Path stdout, Path stderr, String uri) {
        this.process = process;
        this.stdout = stdout;
        this.stderr = stderr;
        this.uri = uri;
    }

    /** Starts {@code pmcache serve args...}; logs go to {@code logDir/serve-N.{out,err}}. */
    static ServeProcess start(Path logDir, List<String> args) throws IOException, InterruptedException {
        int n = 1;
        while (Files.exists(logDir.resolve("serve-" + n + ".err"))) {
            n++;
        }
        Path out = logDir.resolve("serve-" + n + ".out");
        Path err = logDir.resolve("serve-" + n + ".err");
        List<String> cmd = new ArrayList<>(List.of(javaBinary(), "--enable-native-access=ALL-UNNAMED", "-Xmx512m",
                "-cp", classpath(), "io.pmcache.cli.Main", "serve"));
        cmd.addAll(args);
        Files.writeString(err, "$ pmcache serve " + String.join(" ", args) + "\n");
        Process p = new ProcessBuilder(cmd).redirectOutput(out.toFile())
                .redirectError(ProcessBuilder.Redirect.appendTo(err.toFile())).start();
        p.getOutputStream().close();
        long deadline = System.nanoTime() + STARTUP_TIMEOUT.toNanos();
        while (true) {
            String text = Files.exists(out) ? Files.readString(out) : "";
            int nl = text.indexOf('\n');
            if (nl > 0) {
                return new ServeProcess(p, out, err, text.substring(0, nl).trim());
            }
            if (!p.isAlive()) {
                throw new AssertionError("pmcache serve exited with " + p.exitValue()
                        + " before printing its URI; stderr:\n" + Files.readString(err));
            }
            if (System.nanoTime() > deadline) {
                p.destroyForcibly();
                throw new AssertionError("pmcache serve printed no URI within " + STARTUP_TIMEOUT
                        + "; stderr:\n" + Files.readString(err));
            }
            Thread.sleep(20);
        }
    }

    String uri() {
        return uri;
    }

    /** Every line the server printed on stdout so far (its URIs, printed at once when it listens). */
    List<String> stdoutLines() throws IOException {
        return Files.readAllLines(stdout);
    }

    long pid() {
        return process.pid();
    }

    boolean isAlive() {
        return process.isAlive();
    }

    /** Sends SIGTERM and returns the exit status (fails if the process does not exit in time). */
    int stop() throws InterruptedException, IOException {
        process.destroy(); // SIGTERM on Linux
        if (!process.waitFor(60, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new AssertionError("pmcache serve did not exit within 60 s of SIGTERM; stderr:\n" + log());
        }
        return process.exitValue();
    }

    /** SIGKILL: the process dies without running any of its code. */
    void kill9() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(30, TimeUnit.SECONDS);
    }

    String log() throws IOException {
        return Files.readString(stderr) + (Files.exists(stdout) ? "--- stdout:\n" + Files.readString(stdout) : "");
    }

    @Override
    public void close() throws InterruptedException {
        if (process.isAlive()) {
            process.destroyForcibly();
            process.waitFor(30, TimeUnit.SECONDS);
        }
    }

    private static String javaBinary() {
        return Path.of(System.getProperty("java.home"), "bin", "java").toString();
    }

    /**
     * The test JVM's class path (surefire puts the real one in java.class.path) without the test
     * classes, so the server logs with the product's logback.xml, not the tests' configuration.
     */
    private static String classpath() {
        String cp = System.getProperty("java.class.path");
        if (cp == null || !cp.contains("classes")) {
            throw new IllegalStateException("cannot find the main classes on java.class.path: " + cp);
        }
        return java.util.Arrays.stream(cp.split(java.io.File.pathSeparator))
                .filter(e -> !e.endsWith("test-classes") && !e.endsWith("test-classes/"))
                .collect(java.util.stream.Collectors.joining(java.io.File.pathSeparator));
    }
}
