package io.pmcache.backing;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * An {@code nbdkit} server on a unix socket, for tests: started in the foreground, ready once it
 * wrote its pid file (nbdkit writes it after the socket listens). Tests skip when nbdkit is missing.
 */
public final class Nbdkit implements AutoCloseable {
    private static final long READY_TIMEOUT_MILLIS = 30_000;

    private final Process process;
    private final Path socket;
    private final Path log;
    private final List<String> args;

    private Nbdkit(Process process, Path socket, Path log, List<String> args) {
        this.process = process;
        this.socket = socket;
        this.log = log;
        this.args = args;
    }

    /** Skips the calling test unless nbdkit is on the PATH. */
    public static void require() {
        assumeTrue(onPath("nbdkit"), "nbdkit is not installed");
    }

    public static boolean onPath(String tool) {
        for (String d : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            if (!d.isEmpty() && Files.isExecutable(Path.of(d, tool))) {
                return true;
            }
        }
        return false;
    }

    /**
     * Starts {@code nbdkit [args]} listening on {@code socket} (e.g. {@code "memory", "4M"} or
     * {@code "--filter=delay", "memory", "4M", "delay-write=2ms"}); its log goes next to the socket.
     */
    public static Nbdkit start(Path socket, String... args) throws IOException, InterruptedException {
        Files.deleteIfExists(socket);
        return launch(socket, List.of("-U", socket.toString()), args);
    }

    /**
     * Starts {@code nbdkit [args]} listening on TCP {@code address:port} (pid and log files named
     * after {@code name} in {@code dir}); {@link #socket()} is then null, and {@link #restart()}
     * is for unix sockets only.
     */
    public static Nbdkit startTcp(Path dir, String name, String address, int port, String... args)
            throws IOException, InterruptedException {
        return launch(dir.resolve(name), List.of("-i", address, "-p", String.valueOf(port)), args);
    }

    private static Nbdkit launch(Path socketOrName, List<String> listen, String... args)
            throws IOException, InterruptedException {
        require();
        Path socket = socketOrName;
        Path dir = socket.toAbsolutePath().getParent();
        Path pid = dir.resolve(socket.getFileName() + ".pid");
        Path log = dir.resolve(socket.getFileName() + ".log");
        Files.deleteIfExists(pid);
        List<String> cmd = new ArrayList<>(List.of("nbdkit", "--foreground"));
        cmd.addAll(listen);
        cmd.addAll(List.of("-P", pid.toString()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile())).start();
        p.getOutputStream().close();
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(READY_TIMEOUT_MILLIS);
        while (!(Files.exists(pid) && Files.size(pid) > 0)) {
            if (!p.isAlive()) {
                throw new IOException("nbdkit exited with " + p.exitValue() + ": " + Files.readString(log));
            }
            if (System.nanoTime() > deadline) {
                p.destroyForcibly();
                throw new IOException("nbdkit did not get ready within " + READY_TIMEOUT_MILLIS + " ms");
            }
            Thread.sleep(10);
        }
        return new Nbdkit(p, listen.getFirst().equals("-U") ? socket : null, log, List.of(args));
    }

    public Path socket() {
        return socket;
    }

    /** {@code nbd+unix:///EXPORT?socket=...}. */
    public String uri(String export) {
        return "nbd+unix:///" + export + "?socket=" + socket;
    }

    public String uri() {
        return uri("");
    }

    /** Starts the same server again (after {@link #kill()}) on the same socket. */
    public Nbdkit restart() throws IOException, InterruptedException {
        return start(socket, args.toArray(String[]::new));
    }

    /** SIGKILL, waiting for the process to be gone. */
    public void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(30, TimeUnit.SECONDS);
    }

    public String log() throws IOException {
        return Files.exists(log) ? Files.readString(log) : "";
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            kill();
        }
    }
}
