package io.pmcache.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Running external tools (qemu-io, nbdinfo, fio, mount, ...) from the integration tests. */
final class Tools {
    private Tools() {
    }

    static void require(String... tools) {
        for (String tool : tools) {
            assumeTrue(onPath(tool), tool + " is not installed");
        }
    }

    static boolean onPath(String tool) {
        String path = System.getenv().getOrDefault("PATH", "") + File.pathSeparator + "/usr/sbin:/sbin";
        for (String d : path.split(File.pathSeparator)) {
            if (!d.isEmpty() && Files.isExecutable(Path.of(d, tool))) {
                return true;
            }
        }
        return false;
    }

    record Result(List<String> command, int exit, String output) {
        String expectSuccess() {
            assertThat(exit).as("%s exited with %d:%n%s", String.join(" ", command), exit, output).isZero();
            return output;
        }
    }

    /** Runs a command to completion (stdin closed, stderr merged into stdout), at most 120 s. */
    static Result run(String... command) throws IOException, InterruptedException {
        return run(null, command);
    }

    /** Like {@link #run(String...)}, with stdin from {@code stdin} when not null. */
    static Result run(Path stdin, String... command) throws IOException, InterruptedException {
        Path out = Files.createTempFile("pmcache-tool", ".out");
        try {
            ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(out.toFile());
            if (stdin != null) {
                pb.redirectInput(stdin.toFile());
            }
            Process p = pb.start();
            if (stdin == null) {
                p.getOutputStream().close();
            }
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor();
                throw new AssertionError(String.join(" ", command) + " did not finish within 120 s:\n"
                        + Files.readString(out));
            }
            return new Result(List.of(command), p.exitValue(), Files.readString(out));
        } finally {
            Files.deleteIfExists(out);
        }
    }
}
