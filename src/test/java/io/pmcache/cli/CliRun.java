package io.pmcache.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import picocli.CommandLine;

/** Runs the pmcache command in-process (tests): its exit code and what it printed. */
public final class CliRun {
    private CliRun() {
    }

    public record Result(int exit, String out, String err) {
    }

    public static Result pm(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = Main.commandLine();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int exit = cl.execute(args);
        return new Result(exit, out.toString(), err.toString());
    }

    /**
     * The cache a single-volume medium holds: the default volume of a medium {@code format --backing}
     * made (a volume medium), or the whole of a single-cache medium an older pmcache made.
     */
    public static io.pmcache.media.Medium cacheIn(io.pmcache.media.Medium m) throws java.io.IOException {
        return io.pmcache.volume.VolumeMedium.open(m).volume(null).medium();
    }

    /** Where in {@code file} the cache of {@link #cacheIn} starts (0 for a single-cache medium). */
    public static long cacheOffset(java.nio.file.Path file) throws java.io.IOException {
        try (io.pmcache.media.MappedFileMedium m = io.pmcache.media.MappedFileMedium.openReadOnly(file)) {
            io.pmcache.volume.Volume v = io.pmcache.volume.VolumeMedium.open(m).volume(null);
            return v.entry() == null ? 0 : v.entry().offset();
        }
    }
}
