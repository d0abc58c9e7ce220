package io.pmcache.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Fails the test class after which the test JVM's anonymous resident memory exceeds a bound.
 *
 * <p>Test media live in native memory ({@code Arena.allocate}), which no JVM flag limits: a
 * test that forgets to close them grows the process until the kernel's OOM killer ends the
 * whole run without naming anyone. The heap is capped at 4 GiB (pom.xml), so anonymous memory
 * well beyond that is leaked native memory; this guard names the class that left it behind.
 * Registered for every test class through {@code junit.jupiter.extensions.autodetection}.
 */
public final class NativeMemoryGuard implements AfterAllCallback {
  /** Heap cap (4 GiB) + JIT, metaspace and thread stacks + the largest live test medium. */
  static final long LIMIT_BYTES = Long.getLong("pmcache.test.maxAnonRss", 7L << 30);

  private static final Path STATUS = Path.of("/proc/self/status");

  @Override
  public void afterAll(ExtensionContext context) throws IOException {
    long rss = anonymousResidentBytes();
    if (rss > LIMIT_BYTES) {
      throw new AssertionError(
          "test JVM holds %d MiB of anonymous memory after %s (limit %d MiB): a test leaks"
                  .formatted(rss >> 20, context.getDisplayName(), LIMIT_BYTES >> 20)
              + " native memory, e.g. media it never closes");
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
