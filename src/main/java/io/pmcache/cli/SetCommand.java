package io.pmcache.cli;

import io.pmcache.admin.Json;
import io.pmcache.cache.CacheOptions;
import java.io.IOException;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code pmcache set KNOB VALUE --admin HOST:PORT}: changes a run-time knob of a running server. */
@Command(name = "set", mixinStandardHelpOptions = true,
        description = "Change a run-time knob of a running server through its admin endpoint.",
        subcommands = {SetCommand.GcPercent.class})
public final class SetCommand implements Runnable {
    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(), "name a knob: gc-percent");
    }

    @Command(name = "gc-percent", mixinStandardHelpOptions = true,
            description = {"Start garbage collection when more than N%% of the segments are used (0..90). "
                    + "Persisted in the cache; takes effect at once."})
    static final class GcPercent implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Parameters(paramLabel = "N", description = "New gc_percent, 0..90.")
        int value;

        @Option(names = "--admin", paramLabel = "HOST:PORT", required = true,
                description = "Admin endpoint of a running `pmcache serve --admin` (a bare PORT means 127.0.0.1).")
        String admin;

        @Override
        public Integer call() throws Exception {
            Usage.check(spec, "N", () -> CacheOptions.checkGcPercent(value));
            AdminClient.Response r = AdminClient.of(spec, admin).post("/gc-percent", Integer.toString(value));
            if (r.code() != 200) {
                String msg = r.body().strip();
                try {
                    if (Json.parse(msg) instanceof Map<?, ?> m && m.get("error") != null) {
                        msg = String.valueOf(m.get("error"));
                    }
                } catch (IllegalArgumentException notJson) {
                    // keep the raw body
                }
                throw new IOException("the server refused gc_percent " + value + " (HTTP " + r.code() + "): " + msg);
            }
            spec.commandLine().getOut().println("gc_percent is now " + value);
            spec.commandLine().getOut().flush();
            return 0;
        }
    }
}
