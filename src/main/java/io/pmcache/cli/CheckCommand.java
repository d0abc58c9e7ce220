package io.pmcache.cli;

import io.pmcache.admin.Json;
import io.pmcache.backing.BackingDevice;
import io.pmcache.cache.Checker;
import io.pmcache.media.MappedFileMedium;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code pmcache check}: offline, read-only verification of a cache file. Exit status 0 when no
 * corruption was found (warnings allowed), {@value #EXIT_CORRUPT} when some was, else
 * {@value #EXIT_WRONG_BACKING} when {@code --backing} is not the cache's backing device (the cache
 * may be fine: the operator gave the wrong file).
 */
@Command(name = "check", mixinStandardHelpOptions = true,
        description = {"Verify a cache offline, read-only.",
            "Checks the superblock, both slots of the cache info and of every "
                + "segment's info, and the whole key log (kset headers and seals, key CRCs and bounds, data CRCs "
                + "when the cache was formatted with --data-crc or with --verify-data).",
            "The file is mapped read-only and never modified. Refused (exit 1) while a serve, detach or format "
                + "uses the cache; checks may run side by side.",
            "Exit status: 0 clean (warnings such as unsealed ksets after a crash are allowed), "
                + "3 corruption found, 4 the cache is not corrupt but --backing is not its backing device, "
                + "1 the check could not run, 2 bad usage."})
public final class CheckCommand implements Callable<Integer> {
    static final int EXIT_CORRUPT = 3;
    static final int EXIT_WRONG_BACKING = 4;
    private static final Logger log = LoggerFactory.getLogger(CheckCommand.class);

    @Spec
    CommandSpec spec;

    @Option(names = "--cache", paramLabel = "FILE", required = true, description = "Cache file or device to check.")
    Path cache;

    @Option(names = "--backing", paramLabel = "FILE|URI",
            description = "Also check that the cache was formatted for this backing file, device or NBD URI.")
    String backing;

    @Option(names = "--verify-data", description = "Verify the data CRC of every live key even when the cache "
            + "was formatted without --data-crc (reads all cached data).")
    boolean verifyData;

    @Option(names = "--json", description = "Print the report as JSON.")
    boolean json;

    @Option(names = "--volume", paramLabel = "NAME",
            description = "Check only this volume (default: the volume table and every volume).")
    String volume;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        Checker.Report r;
        long t0 = System.nanoTime();
        Preflight.file(cache, "cache file", false, false);
        if (backing != null) {
            Preflight.file(backing, "backing file", false, false);
        }
        if (volume != null || isVolumeMedium()) {
            return checkVolumes(out);
        }
        try (MappedFileMedium m = MappedFileMedium.openReadOnly(cache);
             BackingDevice disk = backing != null ? CacheFiles.openBacking(backing, true) : null;
             ProgressBar bar = new ProgressBar("checking key log", log, n -> n + " segments")) {
            log.info("checking {}{}", m.describe(), backing != null ? " against " + backing : "");
            r = Checker.check(m, disk, verifyData, bar::update);
        }
        long ms = (System.nanoTime() - t0) / 1_000_000;
        if (json) {
            out.print(Json.write(StatusCommand.offline(cache, r)));
        } else {
            print(out, cache.toString(), "", r, ms);
        }
        out.flush();
        if (!r.clean()) {
            log.error("{}: {} errors found", cache, r.errors());
            return EXIT_CORRUPT;
        }
        return r.wrongBacking() != null ? EXIT_WRONG_BACKING : 0;
    }

    /** The report of one cache: findings (each after {@code prefix}), figures, verdict, as {@code who}. */
    private void print(PrintWriter out, String who, String prefix, Checker.Report r, long ms) {
        for (Checker.Finding f : r.findings()) {
            out.println(prefix + f);
        }
        if (r.superblock() != null && r.cacheInfo() != null) {
            out.printf("%s: %d of %d segments used; key log: %d ksets (%d unsealed), %d keys (%d live, %d stale), "
                            + "%d data CRCs verified; up to %s dirty%n", who, r.segmentsUsed(), r.segmentsTotal(),
                    r.ksets(), r.ksetsUnsealed(), r.keys(), r.liveKeys(), r.staleKeys(), r.dataChecked(),
                    SizeConverter.human(r.dirtyBytes()));
        }
        out.printf("%s: %s (%d errors, %d warnings, %d ms)%n", who, r.clean() ? "clean" : "CORRUPT",
                r.errors(), r.warnings(), ms);
        if (r.wrongBacking() != null) {
            out.printf("%s: wrong backing device: %s%nnext: %s%n", who, r.wrongBacking().reason(),
                    r.wrongBacking().nextStep());
        }
    }

    private boolean isVolumeMedium() throws java.io.IOException {
        try (MappedFileMedium m = MappedFileMedium.openReadOnly(cache)) {
            return io.pmcache.volume.VolumeMedium.isVolumeMedium(m);
        }
    }

    /**
     * A volume medium: the medium header and volume table (damage there is corruption, exit 3),
     * then each volume's cache as a cache of its own; the exit status is the worst.
     */
    private int checkVolumes(PrintWriter out) throws Exception {
        int exit = 0;
        Map<String, Object> docs = new java.util.LinkedHashMap<>();
        try (MappedFileMedium m = MappedFileMedium.openReadOnly(cache)) {
            io.pmcache.volume.VolumeMedium vm;
            java.util.List<String> tableDamage = new java.util.ArrayList<>();
            try {
                vm = io.pmcache.volume.VolumeMedium.open(m, tableDamage::add);
            } catch (io.pmcache.format.MediaCorruptException e) {
                out.println("ERROR " + e.getMessage());
                out.printf("%s: CORRUPT (the volume table cannot be read)%n", cache);
                out.flush();
                return EXIT_CORRUPT;
            }
            for (String d : tableDamage) {
                out.println("WARNING " + d + " (the other slot is valid; the next volume change rewrites it)");
            }
            java.util.List<io.pmcache.volume.Volume> chosen = volume == null ? vm.volumes() : java.util.List.of(vm.volume(volume));
            if (backing != null && chosen.size() != 1) {
                throw new IllegalArgumentException("--backing checks one volume: give --volume NAME");
            }
            for (io.pmcache.volume.Volume v : chosen) {
                Checker.Report r;
                long t0 = System.nanoTime();
                try (BackingDevice disk = backing != null ? CacheFiles.openBacking(backing, true) : null) {
                    r = Checker.check(v.medium(), disk, verifyData, null);
                }
                long ms = (System.nanoTime() - t0) / 1_000_000;
                String who = cache + " volume " + v.name();
                try {
                    io.pmcache.volume.VolumeMedium.checkIdentity(v);
                } catch (io.pmcache.format.MediaCorruptException e) {
                    out.println("ERROR " + e.getMessage());
                    exit = EXIT_CORRUPT;
                }
                if (json) {
                    docs.put(v.name(), StatusCommand.offline(cache, r));
                    continue;
                }
                print(out, who, v.name() + ": ", r, ms);
                if (!r.clean()) {
                    exit = EXIT_CORRUPT;
                } else if (r.wrongBacking() != null) {
                    if (exit == 0) {
                        exit = EXIT_WRONG_BACKING;
                    }
                }
            }
        }
        if (json) {
            out.print(io.pmcache.admin.Json.write(Map.of("volumes", docs)));
        }
        out.flush();
        return exit;
    }
}
