package io.pmcache.cli;

import io.pmcache.backing.BackingDevice;
import io.pmcache.backing.FileBackingDevice;
import io.pmcache.backing.NbdBackingDevice;
import io.pmcache.backing.NbdClientOptions;
import io.pmcache.backing.NbdUri;
import io.pmcache.cache.Cache;
import io.pmcache.cache.FormatOptions;
import io.pmcache.media.MappedFileMedium;
import io.pmcache.os.FileUseLock;
import io.pmcache.volume.VolumeMedium;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Opening and creating the files a cache is made of, with the refusals an operator expects. */
final class CacheFiles {
    private static final Logger log = LoggerFactory.getLogger(CacheFiles.class);

    private CacheFiles() {
    }

    /**
     * The files a command created. Closed after the files themselves, it removes them again
     * unless the command got far enough to {@link #keep} them: a command that fails leaves no new
     * file behind (a new backing file, a new cache file), and never touches a file it did not
     * create.
     */
    static final class Created implements AutoCloseable {
        private final List<Path> paths = new ArrayList<>();
        private boolean keep;

        void add(Path p) {
            paths.add(p);
        }

        /** From now on the files stay (a server is about to take clients' data into them). */
        void keep() {
            keep = true;
        }

        @Override
        public void close() {
            if (keep) {
                return;
            }
            for (Path p : paths.reversed()) {
                try {
                    if (Files.deleteIfExists(p)) {
                        System.err.println("pmcache: removed " + p + ", created by this failed command");
                    }
                } catch (IOException e) {
                    log.warn("could not remove {} (created by this failed command): {}", p, e.toString());
                }
            }
        }
    }

    /**
     * Opens {@code --backing}: an NBD URI ({@code nbd://}, {@code nbd+unix://}; its size is the
     * export's, which {@code sizeIfMissing}, when given, must match) or a file or block device.
     */
    static BackingDevice openOrCreateBacking(String spec, Long sizeIfMissing, boolean readOnly, Created created)
            throws IOException {
        if (NbdUri.isUri(spec)) {
            NbdBackingDevice d = NbdBackingDevice.open(NbdUri.parse(spec), NbdClientOptions.defaults());
            if (sizeIfMissing != null && sizeIfMissing != d.size()) {
                d.close();
                throw new IllegalArgumentException("--backing-size " + sizeIfMissing + " does not match the remote "
                        + "export " + spec + " of " + d.size() + " bytes (a remote export's size is the server's)");
            }
            return d;
        }
        return openOrCreateBacking(Path.of(spec), sizeIfMissing, readOnly, created);
    }

    /** Opens an existing backing device: an NBD URI, a file or a block device. */
    static BackingDevice openBacking(String spec, boolean readOnly) throws IOException {
        return NbdUri.isUri(spec) ? openOrCreateBacking(spec, null, readOnly, null)
                : FileBackingDevice.open(Path.of(spec), readOnly);
    }

    /** Opens the backing file, creating it sparse with {@code sizeIfMissing} when it does not exist. */
    static FileBackingDevice openOrCreateBacking(Path path, Long sizeIfMissing, boolean readOnly, Created created)
            throws IOException {
        if (Files.exists(path)) {
            return FileBackingDevice.open(path, readOnly);
        }
        if (sizeIfMissing == null) {
            throw new IOException("backing file " + path + " does not exist; give --backing-size to create it");
        }
        FileBackingDevice d = FileBackingDevice.createSparse(path, sizeIfMissing);
        created.add(path);
        System.err.println("pmcache: created sparse backing file " + path + " (" + SizeConverter.human(sizeIfMissing)
                + ")");
        return d;
    }

    /**
     * Opens the cache file: a missing or empty file is created with {@code sizeIfNew} and formatted
     * as a volume medium holding one volume, {@value VolumeMedium#DEFAULT_NAME}, for {@code backing}
     * (recorded as {@code backingSpec}; as {@code format --backing} does); a non-empty file that is
     * not a pmcache medium is refused, never overwritten. A single-cache file opens as it is.
     */
    static MappedFileMedium openOrFormat(Path path, Long sizeIfNew, BackingDevice backing, String backingSpec,
                                         FormatOptions format, Created created) throws IOException {
        if (!Cache.isNewFile(path)) {
            MappedFileMedium m = MappedFileMedium.open(path);
            if (!VolumeMedium.looksFormatted(m)) {
                m.close();
                throw new IOException(path + " is neither empty nor a pmcache cache; refusing to overwrite it "
                        + "(format it explicitly, e.g. `pmcache format --force`, if it may be erased)");
            }
            return m;
        }
        if (sizeIfNew == null) {
            throw new IOException("cache file " + path + " is missing or empty; give --cache-size to create it");
        }
        if (Files.exists(path)) {
            // An empty file: never delete one that another opener is about to format.
            try (FileUseLock l = FileUseLock.acquire(path, FileUseLock.Mode.EXCLUSIVE, "cache file")) {
                Files.delete(path);
            }
        }
        MappedFileMedium m = MappedFileMedium.create(path, sizeIfNew);
        created.add(path);
        try {
            VolumeMedium.formatWithVolume(m, VolumeMedium.DEFAULT_NAME, backing, backingSpec, 0, format);
        } catch (IOException | RuntimeException e) {
            m.close();
            throw e;
        }
        System.err.println("pmcache: formatted cache file " + path + " (" + SizeConverter.human(sizeIfNew) + ")");
        return m;
    }

    /**
     * The one cache a command given {@code --cache} and {@code --backing} works on: a single-cache
     * medium is that cache; a volume medium's is its only volume, or the volume recorded for
     * {@code backing} ({@link VolumeMedium#volumeFor}), checked against its table entry. Whether
     * the cache belongs to {@code backing} is the cache's own check at open.
     */
    static io.pmcache.media.Medium cacheFor(MappedFileMedium medium, String backing) throws IOException {
        if (!VolumeMedium.isVolumeMedium(medium)) {
            return medium;
        }
        io.pmcache.volume.Volume v = VolumeMedium.open(medium).volumeFor(VolumeCommand.recordedBacking(backing));
        VolumeMedium.checkIdentity(v);
        return v.medium();
    }
}
