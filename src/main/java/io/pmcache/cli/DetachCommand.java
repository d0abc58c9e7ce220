package io.pmcache.cli;

import io.pmcache.backing.BackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheOptions;
import io.pmcache.media.MappedFileMedium;
import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code pmcache detach}: offline; opens the cache (replaying its log), writes back everything
 * dirty, syncs the backing device, empties the cache and closes it. Afterwards the backing device
 * alone holds the data and the cache may be discarded or reformatted.
 */
@Command(name = "detach", mixinStandardHelpOptions = true,
        description = {"Write everything the cache holds back to the backing device and empty the cache, "
                + "so that the backing device alone holds the data.",
            "Offline: refused (exit 1) while a serve or another command uses the cache or backing file. The "
                + "cache stays formatted (empty, clean) and can be served again or reformatted."})
public final class DetachCommand implements Callable<Integer> {
    private static final Logger log = LoggerFactory.getLogger(DetachCommand.class);

    @Spec
    CommandSpec spec;

    @Option(names = "--cache", paramLabel = "FILE", description = "Cache file or device (offline).")
    Path cache;

    @Option(names = "--admin", paramLabel = "HOST:PORT",
            description = "Instead of --cache: ask a running `pmcache serve --admin` (serving volumes) to stop serving "
                    + "--volume and write it back, while its other volumes keep serving.")
    String admin;

    @Option(names = "--backing", paramLabel = "FILE|URI",
            description = "The backing file, device or NBD URI the cache was formatted for (default: the one the "
                    + "volume table records).")
    String backing;

    @Option(names = "--volume", paramLabel = "NAME", description = "The volume to detach (default: the only one).")
    String volume;

    @Override
    public Integer call() throws Exception {
        if ((cache == null) == (admin == null)) {
            throw Usage.error(spec, "give --cache FILE (offline) or --admin HOST:PORT (a running server)");
        }
        if (admin != null) {
            if (volume == null || backing != null) {
                throw Usage.error(spec, "with --admin, give --volume NAME (and no --backing)");
            }
            spec.commandLine().getOut().println(VolumeCommand.adminCall(spec, admin, "/volumes/detach",
                    java.util.Map.of("name", volume)));
            spec.commandLine().getOut().flush();
            return 0;
        }
        Preflight.file(cache, "cache file", true, false);
        if (backing != null) {
            Preflight.file(backing, "backing file", true, false);
        }
        // The cache first: against a running serve, the error names the cache file.
        try (MappedFileMedium file = MappedFileMedium.open(cache)) {
            if (!io.pmcache.volume.VolumeMedium.looksFormatted(file)) {
                throw new IOException(cache + " is not a pmcache cache; nothing to detach");
            }
            io.pmcache.volume.Volume v = io.pmcache.volume.VolumeMedium.open(file).volume(volume);
            if (backing == null) {
                backing = v.backing();
                if (backing == null) {
                    throw new IllegalArgumentException(cache + " records no backing device (a single-cache medium); "
                            + "give --backing");
                }
            }
            detach(v.medium());
        }
        return 0;
    }

    private void detach(io.pmcache.media.Medium medium) throws IOException {
        try (BackingDevice disk = CacheFiles.openBacking(backing, false)) {
            long started = System.nanoTime();
            try (Cache c = Cache.open(medium, disk, CacheOptions.defaults().withParallel(1));
                 ProgressBar bar = new ProgressBar("writing back", log, SizeConverter::human)) {
                long dirty = c.status().dirtyBytes();
                log.info("detaching {}: {} dirty to write back to {}", cache, SizeConverter.human(dirty), backing);
                long[] total = {dirty};
                c.detach(left -> {
                    total[0] = Math.max(total[0], left);
                    bar.update(total[0] - left, total[0]);
                });
                bar.update(total[0], total[0]);
                var s = c.status();
                if (s.dirtyBytes() != 0) {
                    throw new IOException("detach finished with " + s.dirtyBytes() + " bytes still dirty; "
                            + "last backing error: " + s.lastBackingError());
                }
            }
            long ms = (System.nanoTime() - started) / 1_000_000;
            log.info("detached {} in {} ms", cache, ms);
            spec.commandLine().getOut().printf("detached %s: everything is written back; %s alone holds the data "
                    + "(the cache is empty and clean)%n", cache, backing);
            spec.commandLine().getOut().flush();
        }
    }
}
