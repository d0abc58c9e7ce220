package io.pmcache.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Fails the test class after which the test JVM's anonymous resident memory exceeds a bound, and
 * logs each class that grows it by {@value #REPORT_GROWTH_MIB} MiB or more.
 *
 * <p>Test media live in native memory ({@code Arena.allocate}), which no JVM flag limits: a
 * test that keeps or forgets to close them grows the process until the kernel's OOM killer ends
 * the whole run without naming anyone (it did, at 13.5 GB). The heap is capped at 4 GiB
 * (pom.xml); the bound leaves room for the JVM itself and the media tests hold at once. Before it
 * fails, the guard runs a GC so that memory only the GC frees ({@code Arena.ofAuto}) is freed.
 * Registered for every test class through {@code junit.jupiter.extensions.autodetection}.
 */
public final class NativeMemoryGuard implements BeforeAllCallback, AfterAllCallback {
    static final long LIMIT_BYTES = Long.getLong("pmcache.test.maxAnonRss", 10L << 30);
    static final long REPORT_GROWTH_MIB = 512;

    private static final Path STATUS = Path.of("/proc/self/status");
    private static final ExtensionContext.Namespace NS = ExtensionContext.Namespace.create(NativeMemoryGuard.class);

    @Override
    public void beforeAll(ExtensionContext context) throws IOException {
        context.getStore(NS).put("before", anonymousResidentBytes());
    }

    @Override
    public void afterAll(ExtensionContext context) throws Exception {
        long rss = anonymousResidentBytes();
        Long before = context.getStore(NS).get("before", Long.class);
        if (before != null && rss - before >= REPORT_GROWTH_MIB << 20) {
            System.err.printf("NativeMemoryGuard: anonymous memory grew by %d MiB to %d MiB during %s%n",
                    (rss - before) >> 20, rss >> 20, context.getDisplayName());
        }
        if (rss > LIMIT_BYTES) {
            System.gc();
            Thread.sleep(200); // the cleaner thread frees what the GC found unreachable
            rss = anonymousResidentBytes();
        }
        if (rss > LIMIT_BYTES) {
            throw new AssertionError(
                    "test JVM holds %d MiB of anonymous memory after %s (limit %d MiB): a test keeps or leaks"
                            .formatted(rss >> 20, context.getDisplayName(), LIMIT_BYTES >> 20)
                    + " native memory, e.g. media it never closes (see the NativeMemoryGuard lines above)");
        }
    }

    /** RssAnon from /proc/self/status, or 0 where there is no /proc (the guard then does nothing). */
    static long anonymousResidentBytes() throws IOException {
        if (!Files.isReadable(STATUS)) {
            return 0;
        }
        for (String line : Files.readAllLines(STATUS)) {
            if (line.startsWith("RssAnon:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) << 10; // the kernel reports kB
            }
        }
        return 0;
    }
}
