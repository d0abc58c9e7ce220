package io.pmcache.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;

/**
 * {@link ServeFixture} after a test: what was registered is closed (last first), the scratch
 * directory is gone, and a failed test's server logs are printed. Runs {@link Probe}, a test that
 * fails on purpose, through the JUnit launcher (only from here: it skips itself otherwise).
 */
class ServeFixtureTest {
    private static volatile boolean probing;
    private static final List<String> events = new ArrayList<>();
    private static volatile Path probeScratch;

    static class Probe {
        @TempDir
        Path dir;

        @RegisterExtension
        final ServeFixture fixture = new ServeFixture(() -> dir);

        @Test
        void failsWithAServerLog() throws Exception {
            Assumptions.assumeTrue(probing, "run by ServeFixtureTest only");
            Files.writeString(dir.resolve("serve-1.err"), "$ pmcache serve ...\nwhat the server said\n");
            probeScratch = fixture.scratch();
            Files.writeString(probeScratch.resolve("cache.img"), "x");
            fixture.closeLater(() -> events.add("first"));
            fixture.closeLater(() -> events.add("second"));
            throw new AssertionError("failed on purpose");
        }
    }

    @Test
    void afterAFailedTestTheServerLogsArePrintedAndEverythingIsClosed() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream saved = System.err;
        SummaryGeneratingListener summary = new SummaryGeneratingListener();
        probing = true;
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            LauncherFactory.create().execute(LauncherDiscoveryRequestBuilder.request()
                    .selectors(selectClass(Probe.class)).build(), summary);
        } finally {
            System.setErr(saved);
            probing = false;
        }
        assertThat(summary.getSummary().getTotalFailureCount()).as("the probe failed").isEqualTo(1);
        assertThat(err.toString(StandardCharsets.UTF_8)).contains("===== serve-1.err =====")
                .contains("what the server said").doesNotContain("cannot print server logs");
        assertThat(events).containsExactly("second", "first");
        assertThat(probeScratch).isNotNull();
        assertThat(Files.exists(probeScratch)).as("scratch %s deleted", probeScratch).isFalse();
    }
}
