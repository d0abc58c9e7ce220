package io.pmcache.cli;

import java.io.Console;
import java.io.PrintStream;
import org.slf4j.Logger;

/**
 * Progress of a long offline job: a redrawn bar on stderr when the command runs on a terminal,
 * otherwise a log line at most every 5 seconds (so a service manager's journal is not flooded).
 */
final class ProgressBar implements AutoCloseable {
    private static final int WIDTH = 40;
    private final String label;
    private final Logger log;
    private final boolean terminal;
    private final PrintStream err = System.err;
    private final java.util.function.LongFunction<String> unit;
    private long lastDraw;
    private long lastLog = System.nanoTime();
    private boolean drawn;

    ProgressBar(String label, Logger log, java.util.function.LongFunction<String> unit) {
        this.label = label;
        this.log = log;
        this.unit = unit;
        Console c = System.console();
        this.terminal = c != null && c.isTerminal();
    }

    /** {@code done} of {@code total} units. */
    void update(long done, long total) {
        long now = System.nanoTime();
        double f = total <= 0 ? 1 : Math.min(1, Math.max(0, (double) done / total));
        if (terminal) {
            if (now - lastDraw < 100_000_000L && done < total) {
                return;
            }
            lastDraw = now;
            int filled = (int) Math.round(f * WIDTH);
            err.print("\r" + label + " [" + "#".repeat(filled) + " ".repeat(WIDTH - filled) + "] "
                    + String.format(java.util.Locale.ROOT, "%3d%%", Math.round(f * 100)) + "  "
                    + unit.apply(done) + " / " + unit.apply(total) + "   ");
            err.flush();
            drawn = true;
        } else if (now - lastLog >= 5_000_000_000L) {
            lastLog = now;
            log.info("{}: {}% ({} of {})", label, Math.round(f * 100), unit.apply(done), unit.apply(total));
        }
    }

    @Override
    public void close() {
        if (drawn) {
            err.println();
            err.flush();
        }
    }
}
