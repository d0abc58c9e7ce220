package io.pmcache.cli;

import io.pmcache.admin.Json;
import io.pmcache.backing.BackingDevice;
import io.pmcache.backing.NbdUri;
import io.pmcache.cache.Checker;
import io.pmcache.cache.FormatOptions;
import io.pmcache.media.Medium;
import io.pmcache.media.MappedFileMedium;
import io.pmcache.volume.Volume;
import io.pmcache.volume.VolumeMedium;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code pmcache volume create|list|remove}: the volumes of a medium, offline ({@code --cache}: the
 * file is locked, so refused while a serve uses it) or through a running server's admin endpoint
 * ({@code --admin}: the server starts or stops serving the volume, the others' clients go on).
 */
@Command(name = "volume", mixinStandardHelpOptions = true,
        description = {"Create, list, remove and (live) attach the volumes of a cache medium (one cache per backing device, each "
                + "with its own share of the medium).",
            "Offline with --cache FILE (refused while a serve uses the file), or live with --admin HOST:PORT against "
                + "`pmcache serve --admin` (which then starts or stops serving the volume)."},
        subcommands = {VolumeCommand.Create.class, VolumeCommand.ListVolumes.class, VolumeCommand.Remove.class,
            VolumeCommand.Attach.class})
public final class VolumeCommand {
    private static final Logger log = LoggerFactory.getLogger(VolumeCommand.class);

    private VolumeCommand() {
    }

    /** The most a volume may hold dirty, summed over a medium's volumes (read-only; for refusals). */
    static long dirtyUpperBound(Medium m) throws IOException {
        long dirty = 0;
        for (Volume v : VolumeMedium.open(m).volumes()) {
            dirty += Checker.check(v.medium(), null, false, null).dirtyBytes();
        }
        return dirty;
    }

    /** How a backing device is recorded in the volume table: an NBD URI as given, a path made absolute. */
    static String recordedBacking(String backing) {
        return NbdUri.isUri(backing) ? backing : Path.of(backing).toAbsolutePath().normalize().toString();
    }

    /**
     * Where create, list and remove find the volumes: exactly one of a medium offline ({@code --cache}) or a
     * running server ({@code --admin}). A mixin, so that the group's rule and help are stated once.
     */
    static final class Target {
        static final class Where {
            @Option(names = "--cache", paramLabel = "FILE", required = true,
                    description = "The cache medium (formatted without --backing: `pmcache format --cache FILE --cache-size SIZE`).")
            Path cache;

            @Option(names = "--admin", paramLabel = "HOST:PORT", required = true, description = AdminClient.OPTION_HELP)
            String admin;
        }

        @ArgGroup(exclusive = true, multiplicity = "1")
        Where where;

        /** The medium, or null when the volumes are a running server's. */
        Path cache() {
            return where.cache;
        }

        /** The server's admin endpoint, or null when the volumes are a medium's. */
        String admin() {
            return where.admin;
        }
    }

    @Command(name = "create", mixinStandardHelpOptions = true,
            description = "Create a volume: a cache of --size bytes of the medium for one backing device.")
    static final class Create implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        Target target;

        @Option(names = "--name", paramLabel = "NAME", required = true,
                description = "Volume name (and NBD export name): 1..64 of A-Z a-z 0-9 . _ -, not starting with . or -.")
        String name;

        @Option(names = "--backing", paramLabel = "FILE|URI", required = true,
                description = "Backing file or block device, or a remote NBD export (nbd://..., nbd+unix://...).")
        String backing;

        @Option(names = "--backing-size", paramLabel = "SIZE", converter = SizeConverter.class,
                description = "Create the backing file sparse with this size when it does not exist.")
        Long backingSize;

        @Option(names = "--size", paramLabel = "SIZE", required = true, converter = SizeConverter.class,
                description = "The volume's share of the medium (rounded up to 2 MiB), e.g. 256M.")
        Long size;

        @Option(names = "--segment-size", paramLabel = "SIZE", converter = SizeConverter.class,
                description = "Segment size: a power of two, 1M..1G. Default: 16M, smaller on small volumes.")
        Long segmentSize;

        @Option(names = "--data-crc", description = "Verify data CRCs at replay and before writeback.")
        boolean dataCrc;

        @Override
        public Integer call() throws Exception {
            String problem = io.pmcache.format.VolumeEntry.nameProblem(name);
            if (problem != null) {
                throw Usage.error(spec, "invalid value for --name: " + problem);
            }
            if (size <= 0) {
                throw Usage.error(spec, "invalid value for --size: must be more than 0, got " + size);
            }
            if (backingSize != null && backingSize <= 0) {
                throw Usage.error(spec, "invalid value for --backing-size: must be more than 0, got " + backingSize);
            }
            if (segmentSize != null) {
                Usage.check(spec, "--segment-size", () -> new FormatOptions(segmentSize, dataCrc));
            }
            FormatOptions format = new FormatOptions(segmentSize != null ? segmentSize : FormatOptions.SEGMENT_SIZE_AUTO,
                    dataCrc);
            String recorded = recordedBacking(backing);
            PrintWriter out = spec.commandLine().getOut();
            if (target.admin() != null) {
                Map<String, Object> req = new LinkedHashMap<>();
                req.put("name", name);
                req.put("backing", recorded);
                if (backingSize != null) {
                    req.put("backing_size", backingSize);
                }
                req.put("size", size);
                req.put("segment_size", format.segmentSize());
                req.put("data_crc", dataCrc);
                out.println(adminCall(spec, target.admin(), "/volumes/create", req));
                out.flush();
                return 0;
            }
            Preflight.file(target.cache(), "cache file", true, false);
            Preflight.file(backing, "backing file", true, backingSize != null);
            try (MappedFileMedium m = MappedFileMedium.open(target.cache());
                 CacheFiles.Created created = new CacheFiles.Created();
                 BackingDevice disk = CacheFiles.openOrCreateBacking(backing, backingSize, false, created)) {
                Volume v = VolumeMedium.open(m).create(name, disk, recorded, size, format);
                created.keep();
                out.printf("created volume %s on %s: %s for %s (%s)%n", v.name(), target.cache(),
                        SizeConverter.human(v.medium().size()), recorded, SizeConverter.human(disk.size()));
                out.flush();
            }
            return 0;
        }
    }

    @Command(name = "list", mixinStandardHelpOptions = true, description = "List the volumes of a medium.")
    static final class ListVolumes implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        Target target;

        @Option(names = "--json", description = "Print JSON instead of a table.")
        boolean json;

        @Override
        public Integer call() throws Exception {
            PrintWriter out = spec.commandLine().getOut();
            Object doc;
            if (target.admin() != null) {
                AdminClient.Response r = AdminClient.of(spec, target.admin()).get("/volumes");
                if (r.code() != 200) {
                    throw new IOException("admin endpoint answered " + r.code() + ": " + r.body().strip());
                }
                doc = Json.parse(r.body());
            } else {
                Preflight.file(target.cache(), "cache file", false, false);
                try (MappedFileMedium m = MappedFileMedium.openReadOnly(target.cache())) {
                    doc = offline(VolumeMedium.open(m));
                }
            }
            if (json) {
                out.print(Json.write(doc));
            } else if (doc instanceof Map<?, ?> map) {
                Table.print(out, map);
            }
            out.flush();
            return 0;
        }

        static Map<String, Object> offline(VolumeMedium vm) {
            Map<String, Object> doc = new LinkedHashMap<>();
            Map<String, Object> volumes = new LinkedHashMap<>();
            for (Volume v : vm.volumes()) {
                Map<String, Object> one = describe(v);
                one.put("dirty_bytes_upper_bound", Checker.check(v.medium(), null, false, null).dirtyBytes());
                volumes.put(v.name(), one);
            }
            doc.put("volumes", volumes);
            doc.put("free_bytes", vm.freeBytes());
            doc.put("largest_free_bytes", vm.largestFree());
            return doc;
        }
    }

    /** What the table says of a volume (list, status). */
    static Map<String, Object> describe(Volume v) {
        Map<String, Object> one = new LinkedHashMap<>();
        one.put("size", v.medium().size());
        if (v.entry() != null) {
            one.put("offset", v.entry().offset());
            one.put("backing", v.backing());
            one.put("created_millis", v.entry().createdMillis());
        } else {
            one.put("single_cache_medium", true);
        }
        return one;
    }

    @Command(name = "remove", mixinStandardHelpOptions = true,
            description = {"Remove a volume and free its share of the medium.",
                "Refused while the volume holds data not yet written back, unless --force (which discards it): "
                    + "run `pmcache detach --volume NAME` first."})
    static final class Remove implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        Target target;

        @Option(names = "--name", paramLabel = "NAME", required = true, description = "The volume to remove.")
        String name;

        @Option(names = "--force", description = "Remove it even if it holds dirty data (which is lost).")
        boolean force;

        @Override
        public Integer call() throws Exception {
            PrintWriter out = spec.commandLine().getOut();
            if (target.admin() != null) {
                Map<String, Object> req = new LinkedHashMap<>();
                req.put("name", name);
                req.put("force", force);
                out.println(adminCall(spec, target.admin(), "/volumes/remove", req));
                out.flush();
                return 0;
            }
            Preflight.file(target.cache(), "cache file", true, false);
            try (MappedFileMedium m = MappedFileMedium.open(target.cache())) {
                VolumeMedium vm = VolumeMedium.open(m);
                Volume v = vm.volume(name);
                Checker.Report r = Checker.check(v.medium(), null, false, null);
                String refusal = VolumeRemoval.refusal(v, r.cacheInfo() == null ? -1 : r.dirtyBytes(), force);
                if (refusal != null) {
                    throw new IOException(target.cache() + ": " + refusal);
                }
                vm.remove(name);
                out.printf("removed volume %s from %s%n", name, target.cache());
                out.flush();
            }
            return 0;
        }
    }

    @Command(name = "attach", mixinStandardHelpOptions = true,
            description = {"Serve a volume of a running server that it does not serve: one detached with "
                    + "`pmcache detach --admin`, or one whose backing device failed to open at start (once fixed).",
                "The other volumes' clients are not disturbed. Offline there is nothing to attach: `pmcache serve` "
                    + "serves every volume of the table."})
    static final class Attach implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Option(names = "--admin", paramLabel = "HOST:PORT", required = true, description = AdminClient.OPTION_HELP)
        String admin;

        @Option(names = "--name", paramLabel = "NAME", required = true, description = "The volume to serve again.")
        String name;

        @Override
        public Integer call() throws Exception {
            PrintWriter out = spec.commandLine().getOut();
            out.println(adminCall(spec, admin, "/volumes/attach", Map.of("name", name)));
            out.flush();
            return 0;
        }
    }

    /** POSTs a JSON request to the admin endpoint; the answer's message, or an IOException with the server's. */
    static String adminCall(CommandSpec spec, String admin, String path, Map<String, Object> req) throws IOException {
        AdminClient.Response r = AdminClient.of(spec, admin).post(path, Json.write(req));
        Object doc;
        try {
            doc = Json.parse(r.body());
        } catch (IllegalArgumentException e) {
            doc = null;
        }
        if (r.code() != 200) {
            throw new IOException("admin endpoint answered " + r.code() + ": "
                    + (doc instanceof Map<?, ?> m && m.get("error") != null ? m.get("error") : r.body().strip()));
        }
        return doc instanceof Map<?, ?> m && m.get("message") != null ? m.get("message").toString() : r.body().strip();
    }
}
