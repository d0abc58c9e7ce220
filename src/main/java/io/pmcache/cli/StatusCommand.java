package io.pmcache.cli;

import io.pmcache.admin.Json;
import io.pmcache.cache.Checker;
import io.pmcache.media.MappedFileMedium;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code pmcache status}: live figures from a running server's admin endpoint, or offline figures
 * read from a cache file (read-only mapping; the file is never modified).
 */
@Command(name = "status", mixinStandardHelpOptions = true,
        description = {"Show a cache's figures: live from a running server (--admin) or offline from a "
                + "cache file that is not in use (--cache).",
            "Offline figures come from reading the metadata and the key log without replaying it; "
                + "the file is mapped read-only and never modified. Offline status is refused (exit 1) while a "
                + "serve, detach or format uses the cache: ask a running server with --admin."})
public final class StatusCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    static final class Source {
        @Option(names = "--admin", paramLabel = "HOST:PORT", required = true, description = AdminClient.OPTION_HELP)
        String admin;

        @Option(names = "--cache", paramLabel = "FILE", required = true,
                description = "Cache file to read offline.")
        Path cache;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Source source;

    @Option(names = "--json", description = "Print JSON instead of a table.")
    boolean json;

    @Option(names = "--volume", paramLabel = "NAME",
            description = "Only this volume (default: every volume of the medium).")
    String volume;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        if (source.admin != null) {
            AdminClient.Response r = AdminClient.of(spec, source.admin).get(volume == null ? "/status"
                    : "/status?volume=" + java.net.URLEncoder.encode(volume, java.nio.charset.StandardCharsets.UTF_8));
            if (r.code() != 200) {
                throw new IOException("admin endpoint answered " + r.code() + ": " + r.body().strip());
            }
            if (json) {
                out.print(r.body());
            } else {
                Object doc = Json.parse(r.body());
                if (!(doc instanceof Map<?, ?> map)) {
                    throw new IOException("admin endpoint sent something other than a JSON object");
                }
                Table.print(out, map);
            }
            out.flush();
            return 0;
        }
        Map<String, Object> doc;
        Preflight.file(source.cache, "cache file", false, false);
        try (MappedFileMedium m = MappedFileMedium.openReadOnly(source.cache)) {
            doc = volume == null && !io.pmcache.volume.VolumeMedium.isVolumeMedium(m)
                    ? offline(source.cache, Checker.check(m, null, false, null)) // a single-cache medium, as ever
                    : offlineVolumes(source.cache, io.pmcache.volume.VolumeMedium.open(m), volume);
        }
        if (json) {
            out.print(Json.write(doc));
        } else {
            Table.print(out, doc);
        }
        out.flush();
        return 0;
    }

    /** The offline status document (also used by {@code check --json}). */
    static Map<String, Object> offline(Path file, Checker.Report r) {
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("source", "offline");
        doc.put("cache_file", file.toString());
        if (r.superblock() != null) {
            var sb = r.superblock();
            Map<String, Object> s = new LinkedHashMap<>();
            s.put("format_version", sb.version());
            s.put("medium_size", sb.mediumSize());
            s.put("segment_size", sb.segmentSize());
            s.put("segments_total", sb.segmentCount());
            s.put("backing_size", sb.backingSize());
            s.put("backing_fingerprint", Long.toHexString(sb.backingFingerprint()));
            s.put("cache_id", Long.toHexString(sb.cacheId()));
            s.put("created_millis", sb.createdMillis());
            s.put("data_crc", sb.dataCrc());
            doc.put("superblock", s);
        }
        if (r.cacheInfo() != null) {
            Map<String, Object> c = new LinkedHashMap<>();
            c.put("sequence", r.cacheInfo().sequence());
            c.put("slots", r.cacheInfoSlots());
            c.put("gc_percent", r.cacheInfo().gcPercent());
            c.put("key_tail", String.valueOf(r.keyTail()));
            c.put("dirty_tail", String.valueOf(r.dirtyTail()));
            c.put("cache_mode", io.pmcache.cache.CacheMode.values()[r.cacheInfo().cacheMode()].label());
            long untrusted = r.cacheInfo().cleanUntrustedBefore();
            c.put("clean_keys_untrusted_before", untrusted == io.pmcache.format.CacheInfo.CLEAN_UNTRUSTED_ALL ? "all"
                    : untrusted == 0 ? "none" : "kset #" + untrusted);
            doc.put("cache_info", c);
            Map<String, Object> seg = new LinkedHashMap<>();
            seg.put("total", r.segmentsTotal());
            seg.put("used", r.segmentsUsed());
            seg.put("key_log", r.logSegments());
            doc.put("segments", seg);
            Map<String, Object> log = new LinkedHashMap<>();
            log.put("ksets", r.ksets());
            log.put("ksets_unsealed", r.ksetsUnsealed());
            log.put("log_bytes", r.logBytes());
            log.put("keys", r.keys());
            log.put("live_keys", r.liveKeys());
            log.put("stale_keys", r.staleKeys());
            log.put("dirty_keys", r.dirtyKeys());
            log.put("dirty_bytes_upper_bound", r.dirtyBytes());
            log.put("log_end", String.valueOf(r.logEnd()));
            doc.put("key_log", log);
        }
        doc.put("findings", r.findings().stream().map(Checker.Finding::toString).toList());
        doc.put("clean", r.clean());
        if (r.wrongBacking() != null) {
            doc.put("wrong_backing", r.wrongBacking().reason());
            doc.put("wrong_backing_next", r.wrongBacking().nextStep());
        }
        return doc;
    }

    /** The offline status of a volume medium: every volume (or the one named), each as {@link #offline}. */
    static Map<String, Object> offlineVolumes(Path file, io.pmcache.volume.VolumeMedium vm, String only) {
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("source", "offline");
        doc.put("cache_file", file.toString());
        Map<String, Object> volumes = new LinkedHashMap<>();
        List<io.pmcache.volume.Volume> chosen = only == null ? vm.volumes() : List.of(vm.volume(only));
        for (io.pmcache.volume.Volume v : chosen) {
            Map<String, Object> one = VolumeCommand.describe(v);
            Map<String, Object> cache = offline(file, Checker.check(v.medium(), null, false, null));
            cache.remove("source");
            cache.remove("cache_file");
            one.putAll(cache);
            volumes.put(v.name(), one);
        }
        doc.put("volumes", volumes);
        if (only == null) {
            doc.put("free_bytes", vm.freeBytes());
        }
        return doc;
    }

    static List<String> lines(Checker.Report r) {
        return r.findings().stream().map(Checker.Finding::toString).toList();
    }
}
