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
import picocli.CommandLine.Mixin;
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

    @Mixin
    KnobTarget target;

    @Override
    public Integer call() throws Exception {
        Usage.check(spec, "MODE", () -> CacheMode.parse(mode));
        String[] outcome = {null};
        String[] error = {null};
        try (ProgressBar bar = new ProgressBar("writing back", log, SizeConverter::human)) {
            long[] total = {0};
            StringBuilder answer = new StringBuilder();
            int code = AdminClient.of(spec, target.admin).postLines(target.path("/cache-mode"),
                    Json.write(Map.of("cache_mode", CacheMode.parse(mode).label())), line -> {
                        answer.append(line).append('\n');
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
            if (code != 200) { // a refusal is one document, not progress lines
                error[0] = new AdminClient.Response(code, answer.toString()).reason() + " (HTTP " + code + ")";
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

        @Mixin
        KnobTarget target;

        @Override
        public Integer call() throws Exception {
            if (value < 0) {
                throw Usage.error(spec, "invalid value for SIZE: must be 0 (off) or more");
            }
            AdminClient.of(spec, target.admin).postOrThrow(target.path("/sequential-cutoff"),
                    Json.write(Map.of("sequential_cutoff", value)), "sequential cutoff " + value);
            spec.commandLine().getOut().println("sequential cutoff is now "
                    + (value == 0 ? "off" : SizeConverter.human(value) + " (" + value + " bytes)"));
            spec.commandLine().getOut().flush();
            return 0;
        }
    }
}
