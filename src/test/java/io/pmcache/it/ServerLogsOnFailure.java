package io.pmcache.it;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * Prints the logs of the {@code pmcache serve} processes a failed test started (the files named
 * {@code serve-*} in its directory), so that a failure in CI shows what the servers said.
 */
final class ServerLogsOnFailure implements TestWatcher {
    private final Supplier<Path> dir;

    /** {@code dir} is asked for only when a test fails (a {@code @TempDir} field is set by then). */
    ServerLogsOnFailure(Supplier<Path> dir) {
        this.dir = dir;
    }

    @Override
    public void testFailed(ExtensionContext context, Throwable cause) {
        try (Stream<Path> logs = Files.list(dir.get())) {
            for (Path p : logs.filter(p -> p.getFileName().toString().startsWith("serve-")).sorted().toList()) {
                System.err.println("===== " + p.getFileName() + " =====\n" + Files.readString(p));
            }
        } catch (IOException e) {
            System.err.println("cannot print server logs: " + e);
        }
    }
}
