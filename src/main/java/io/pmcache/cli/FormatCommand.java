package io.pmcache.cli;

import io.pmcache.backing.BackingDevice;
import io.pmcache.os.FileUseLock;
import io.pmcache.cache.Cache;
import io.pmcache.cache.Checker;
import io.pmcache.cache.FormatOptions;
import io.pmcache.format.Superblock;
import io.pmcache.media.MappedFileMedium;
import io.pmcache.volume.Volume;
import io.pmcache.volume.VolumeMedium;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code pmcache format}: makes a cache file (or device) an empty volume medium; with
 * {@code --backing}, one holding the volume {@value VolumeMedium#DEFAULT_NAME} for that backing device.
 * Never overwrites a pmcache cache or a non-empty foreign file unless told to with {@code --force}.
 */
@Command(name = "format", mixinStandardHelpOptions = true,
        description = {"Format a cache medium for volumes; with --backing, holding one volume named default, an "
                + "empty cache for that backing device (all the medium, or --volume-size of it); without --backing, "
                + "none (add them with `pmcache volume create`).",
            "Refuses to overwrite an existing pmcache cache or a non-empty file that is not one, "
                + "unless --force is given (which discards everything the cache held, dirty data too)."})
public final class FormatCommand implements Callable<Integer> {
    private static final Logger log = LoggerFactory.getLogger(FormatCommand.class);

    @Spec
    CommandSpec spec;

    @Option(names = "--cache", paramLabel = "FILE", required = true,
            description = "Cache medium: a file (created when missing) or a block/DAX device.")
    Path cache;

    @Option(names = "--cache-size", paramLabel = "SIZE", converter = SizeConverter.class,
            description = "Size of the cache file, e.g. 1G. Required when the file is missing or empty; "
                    + "with --force, resizes an existing regular file.")
    Long cacheSize;

    @Option(names = "--backing", paramLabel = "FILE|URI",
            description = "Backing file or block device the cache will front, or a remote NBD export "
                    + "(nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH). Without it, the medium is "
                    + "formatted for volumes.")
    String backing;

    @Option(names = "--backing-size", paramLabel = "SIZE", converter = SizeConverter.class,
            description = "Create the backing file sparse with this size when it does not exist, e.g. 8G.")
    Long backingSize;

    @Option(names = "--segment-size", paramLabel = "SIZE", converter = SizeConverter.class,
            description = "Segment size: a power of two, 1M..1G. Default: 16M.")
    Long segmentSize;

    @Option(names = "--data-crc", description = "Verify data CRCs at replay and before writeback.")
    boolean dataCrc;

    @Option(names = "--volume-size", paramLabel = "SIZE", converter = SizeConverter.class,
            description = "With --backing: the share of the medium the default volume takes (rounded up to 2 MiB); "
                    + "the rest stays free for `pmcache volume create`. Default: all of it.")
    Long volumeSize;

    @Option(names = "--force", description = "Overwrite an existing cache or a non-empty foreign file.")
    boolean force;

    @Override
    public Integer call() throws Exception {
        if (cacheSize != null && cacheSize <= 0) {
            throw Usage.error(spec, "invalid value for --cache-size: must be more than 0, got " + cacheSize);
        }
        if (backingSize != null && backingSize <= 0) {
            throw Usage.error(spec, "invalid value for --backing-size: must be more than 0, got " + backingSize);
        }
        if (segmentSize != null) {
            Usage.check(spec, "--segment-size", () -> new FormatOptions(segmentSize, dataCrc));
        }
        FormatOptions options = new FormatOptions(segmentSize != null ? segmentSize : FormatOptions.SEGMENT_SIZE_AUTO,
                dataCrc);
        if (backing == null && (backingSize != null || segmentSize != null || dataCrc)) {
            throw Usage.error(spec, "--backing-size, --segment-size and --data-crc need --backing (without it the "
                    + "medium is formatted for volumes: give them to `pmcache volume create`)");
        }
        if (volumeSize != null && (backing == null || volumeSize <= 0)) {
            throw Usage.error(spec, backing == null ? "--volume-size needs --backing (it sizes the default volume; "
                    + "without --backing give sizes to `pmcache volume create --size`)"
                    : "invalid value for --volume-size: must be more than 0, got " + volumeSize);
        }
        if (backing != null) {
            Preflight.file(backing, "backing file", true, backingSize != null);
        }
        Preflight.file(cache, "cache file", true, true);
        // An existing file is locked before it is looked at, resized or overwritten, and stays
        // locked until it is formatted: a cache that a serve or detach is using is never touched.
        try (FileUseLock held = Files.exists(cache)
                ? FileUseLock.acquire(cache, FileUseLock.Mode.EXCLUSIVE, "cache file") : null) {
            return format(options, held);
        }
    }

    private int format(FormatOptions options, FileUseLock held) throws Exception {
        boolean exists = held != null;
        boolean regular = exists && Files.isRegularFile(cache);
        boolean empty = !exists || (regular && Files.size(cache) == 0);
        if (!empty) {
            refuseUnlessForced(held);
        }
        if (empty && cacheSize == null) {
            throw new IllegalArgumentException("cache file " + cache + " is " + (exists ? "empty" : "missing")
                    + "; give --cache-size SIZE to create it (e.g. --cache-size 1G)");
        }
        if (backing == null) {
            return formatForVolumes(exists, regular, empty, held);
        }
        try (CacheFiles.Created created = new CacheFiles.Created();
             BackingDevice disk = CacheFiles.openOrCreateBacking(backing, backingSize, false, created);
             MappedFileMedium medium = mapForFormat(exists, regular, empty, held)) {
            if (!exists) {
                created.add(cache);
            }
            VolumeMedium.formatWithVolume(medium, VolumeMedium.DEFAULT_NAME, disk,
                    VolumeCommand.recordedBacking(backing), volumeSize != null ? volumeSize : 0, options);
            created.keep();
            VolumeMedium vm = VolumeMedium.open(medium);
            Volume v = vm.volume(VolumeMedium.DEFAULT_NAME);
            Superblock sb = Cache.superblock(v.medium());
            long free = vm.freeBytes();
            spec.commandLine().getOut().printf("formatted %s: %d segments of %s (%s) for %s (%s)%s; volume %s%s%n",
                    cache, sb.segmentCount(), SizeConverter.human(sb.segmentSize()),
                    SizeConverter.human(v.medium().size()), backing, SizeConverter.human(disk.size()),
                    dataCrc ? ", data CRC verification on" : "", v.name(), free > 0 ? "; " + SizeConverter.human(free)
                            + " free for `pmcache volume create`" : "");
            spec.commandLine().getOut().flush();
        }
        return 0;
    }

    /** An empty medium for volumes: a medium header and an empty volume table. */
    private int formatForVolumes(boolean exists, boolean regular, boolean empty, FileUseLock held) throws Exception {
        try (CacheFiles.Created created = new CacheFiles.Created();
             MappedFileMedium medium = mapForFormat(exists, regular, empty, held)) {
            if (!exists) {
                created.add(cache);
            }
            VolumeMedium.format(medium);
            created.keep();
            spec.commandLine().getOut().printf("formatted %s (%s) for volumes: none yet; add one with `pmcache volume "
                    + "create --cache %s --name NAME --backing PATH --size SIZE`%n", cache,
                    SizeConverter.human(medium.size()), cache);
            spec.commandLine().getOut().flush();
        }
        return 0;
    }

    private void refuseUnlessForced(FileUseLock held) throws IOException {
        boolean ours;
        long dirty = 0;
        try (MappedFileMedium m = MappedFileMedium.openReadOnly(cache, held)) {
            ours = io.pmcache.volume.VolumeMedium.looksFormatted(m);
            if (ours) {
                dirty = VolumeCommand.dirtyUpperBound(m);
            }
        }
        if (!force) {
            if (ours) {
                throw new IOException(cache + " is already a pmcache cache"
                        + (dirty > 0 ? " holding up to " + SizeConverter.human(dirty) + " not yet written back" : "")
                        + "; refusing to format it (use `pmcache detach` first to write its data back, "
                        + "then --force to erase it)");
            }
            throw new IOException(cache + " is not empty and is not a pmcache cache; refusing to overwrite it "
                    + "(check the path, or use --force to erase it)");
        }
        if (ours && dirty > 0) {
            log.warn("--force: discarding the cache in {} with up to {} not yet written back", cache,
                    SizeConverter.human(dirty));
        } else {
            log.warn("--force: overwriting {}", cache);
        }
    }

    /** Maps the file for formatting; an existing one under {@code held}, which the caller keeps. */
    private MappedFileMedium mapForFormat(boolean exists, boolean regular, boolean empty, FileUseLock held)
            throws IOException {
        if (empty) {
            if (exists) {
                Files.delete(cache); // locked by us: nobody else uses it
            }
            return MappedFileMedium.create(cache, cacheSize);
        }
        if (regular) {
            if (cacheSize != null && cacheSize != Files.size(cache)) {
                try (RandomAccessFile raf = new RandomAccessFile(cache.toFile(), "rw")) {
                    raf.setLength(cacheSize);
                }
            }
            return MappedFileMedium.open(cache, held);
        }
        return cacheSize != null ? MappedFileMedium.open(cache, cacheSize, held) : MappedFileMedium.open(cache, held);
    }
}
