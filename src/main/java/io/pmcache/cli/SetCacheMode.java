package io.pmcache.cli;

import io.pmcache.admin.Json;
import io.pmcache.cache.CacheMode;
import java.io.IOException;
import java.util.Map;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code pmcache set cache-mode MODE --admin HOST:PORT}: switches a running server's cache mode,
 * showing the drain's progress (leaving writeback writes back the dirty data first).
 */
@Command(name = "cache-mode", mixinStandardHelpOptions = true,
        description = {"Switch the cache mode: writeback, writethrough, writearound or none. Leaving writeback "
                + "first writes back all dirty data (progress shown), then switches; none also drops the clean "
                + "cached data. Persisted in the cache."})
final class SetCacheMode implements Callable<Integer> {
    private static final Logger log = LoggerFactory.getLogger(SetCacheMode.class);

    @Spec
    CommandSpec spec;

    @Parameters(paramLabel = "MODE", description = "writeback, writethrough, writearound or none.")
    String mode;

    @Option(names = "--admin", paramLabel = "HOST:PORT", required = true,
            description = "Admin endpoint of a running `pmcache serve --admin` (a bare PORT means 127.0.0.1).")
    String admin;

    @Override
    public Integer call() throws Exception {
        Usage.check(spec, "MODE", () -> CacheMode.parse(mode));
        String[] outcome = {null};
        String[] error = {null};
        try (ProgressBar bar = new ProgressBar("writing back", log, SizeConverter::human)) {
            long[] total = {0};
            int code = AdminClient.of(spec, admin).postLines("/cache-mode",
                    Json.write(Map.of("cache_mode", CacheMode.parse(mode).label())), line -> {
                        if (line.isBlank()) {
                            return;
                        }
                        Object doc;
                        try {
                            doc = Json.parse(line);
                        } catch (IllegalArgumentException notJson) {
                            error[0] = line;
                            return;
                        }
                        if (doc instanceof Map<?, ?> m) {
                            if (m.get("dirty_bytes") instanceof Long left) {
                                total[0] = Math.max(total[0], left);
                                bar.update(total[0] - left, total[0]);
                            } else if (m.get("error") != null) {
                                error[0] = String.valueOf(m.get("error"));
                            } else if (m.get("cache_mode") != null) {
                                outcome[0] = String.valueOf(m.get("cache_mode"));
                            }
                        }
                    });
            if (code != 200 && error[0] == null) {
                error[0] = "HTTP " + code;
            }
        }
        if (error[0] != null || outcome[0] == null) {
            throw new IOException("the server did not switch to cache mode " + mode + ": "
                    + (error[0] != null ? error[0] : "no answer (the connection ended)"));
        }
        spec.commandLine().getOut().println("cache mode is now " + outcome[0]);
        spec.commandLine().getOut().flush();
        return 0;
    }

    /** {@code pmcache set sequential-cutoff SIZE --admin HOST:PORT}. */
    @Command(name = "sequential-cutoff", mixinStandardHelpOptions = true,
            description = {"Sequential streams of I/O longer than SIZE bypass the cache (bcache's sequential_cutoff; "
                    + "e.g. 4M, the default of serve); 0 turns it off. Not persisted."})
    static final class SequentialCutoff implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Parameters(paramLabel = "SIZE", converter = SizeConverter.class, description = "Bytes (K, M, G suffixes); 0: off.")
        long value;

        @Option(names = "--admin", paramLabel = "HOST:PORT", required = true,
                description = "Admin endpoint of a running `pmcache serve --admin` (a bare PORT means 127.0.0.1).")
        String admin;

        @Override
        public Integer call() throws Exception {
            if (value < 0) {
                throw Usage.error(spec, "invalid value for SIZE: must be 0 (off) or more");
            }
            AdminClient.Response r = AdminClient.of(spec, admin).post("/sequential-cutoff",
                    Json.write(Map.of("sequential_cutoff", value)));
            if (r.code() != 200) {
                throw new IOException("the server refused sequential cutoff " + value + " (HTTP " + r.code() + "): "
                        + r.body().strip());
            }
            spec.commandLine().getOut().println("sequential cutoff is now "
                    + (value == 0 ? "off" : SizeConverter.human(value) + " (" + value + " bytes)"));
            spec.commandLine().getOut().flush();
            return 0;
        }
    }
}
