package io.pmcache.cli;

import io.pmcache.admin.Json;
import io.pmcache.backing.BackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheOptions;
import io.pmcache.media.MappedFileMedium;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pmcache invalidate}: drops the clean cached data, keeps the dirty data. Of a running
 * server ({@code --admin}), or offline ({@code --cache} and {@code --backing}: opens the cache,
 * drops, closes; the next open leaves the clean keys of the log out).
 */
@Command(name = "invalidate", mixinStandardHelpOptions = true,
        description = {"Drop the clean cached data (reads then come from the backing device and fill again); dirty "
                + "data stays. Of a running server with --admin, or offline with --cache and --backing."})
public final class InvalidateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--admin", paramLabel = "HOST:PORT", description = AdminClient.OPTION_HELP)
    String admin;

    @Option(names = "--volume", paramLabel = "NAME",
            description = "With --admin: the volume to invalidate (a server of volumes; default: the only one served).")
    String volume;

    @Option(names = "--cache", paramLabel = "FILE", description = "Offline: the cache file or device.")
    Path cache;

    @Option(names = "--backing", paramLabel = "FILE|URI", description = "Offline: the backing file, device or NBD URI.")
    String backing;

    @Override
    public Integer call() throws Exception {
        if ((admin == null) == (cache == null || backing == null) || (admin != null && (cache != null || backing != null))) {
            throw Usage.error(spec, "give --admin HOST:PORT (a running server) or --cache FILE and --backing FILE "
                    + "(offline)");
        }
        long dropped;
        if (admin != null) {
            AdminClient.Response r = AdminClient.of(spec, admin).post(KnobTarget.path("/invalidate", volume), "");
            if (r.code() != 200 || !(Json.parse(r.body()) instanceof Map<?, ?> m)
                    || !(m.get("invalidated_bytes") instanceof Long n)) {
                throw new IOException("the server did not invalidate (HTTP " + r.code() + "): " + r.reason());
            }
            dropped = n;
        } else {
            Preflight.file(cache, "cache file", true, false);
            Preflight.file(backing, "backing file", true, false);
            try (MappedFileMedium medium = MappedFileMedium.open(cache);
                 BackingDevice disk = CacheFiles.openBacking(backing, false)) {
                if (!io.pmcache.volume.VolumeMedium.looksFormatted(medium)) {
                    throw new IOException(cache + " is not a pmcache cache; nothing to invalidate");
                }
                try (Cache c = Cache.open(CacheFiles.cacheFor(medium, backing), disk,
                        CacheOptions.defaults().withParallel(1))) {
                    dropped = c.invalidate();
                }
            }
        }
        spec.commandLine().getOut().printf("invalidated %s of clean cached data; dirty data stays%n",
                SizeConverter.human(dropped));
        spec.commandLine().getOut().flush();
        return 0;
    }
}
