package io.pmcache.cli;

import io.pmcache.backing.BackingDevice;
import io.pmcache.backing.FileBackingDevice;
import io.pmcache.backing.NbdBackingDevice;
import io.pmcache.backing.NbdClientOptions;
import io.pmcache.backing.NbdUri;
import io.pmcache.os.FileUseLock;
import io.pmcache.cache.Cache;
import io.pmcache.cache.FormatOptions;
import io.pmcache.media.MappedFileMedium;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Opening and creating the files a cache is made of, with the refusals an operator expects. */
final class CacheFiles {
    private CacheFiles() {
    }

    /**
     * Opens {@code --backing}: an NBD URI ({@code nbd://}, {@code nbd+unix://}; its size is the
     * export's, which {@code sizeIfMissing}, when given, must match) or a file or block device.
     */
    static BackingDevice openOrCreateBacking(String spec, Long sizeIfMissing, boolean readOnly) throws IOException {
        if (NbdUri.isUri(spec)) {
            NbdBackingDevice d = NbdBackingDevice.open(NbdUri.parse(spec), NbdClientOptions.defaults());
            if (sizeIfMissing != null && sizeIfMissing != d.size()) {
                d.close();
                throw new IllegalArgumentException("--backing-size " + sizeIfMissing + " does not match the remote "
                        + "export " + spec + " of " + d.size() + " bytes (a remote export's size is the server's)");
            }
            return d;
        }
        return openOrCreateBacking(Path.of(spec), sizeIfMissing, readOnly);
    }

    /** Opens an existing backing device: an NBD URI, a file or a block device. */
    static BackingDevice openBacking(String spec, boolean readOnly) throws IOException {
        return NbdUri.isUri(spec) ? openOrCreateBacking(spec, null, readOnly) : FileBackingDevice.open(Path.of(spec),
                readOnly);
    }

    /** Opens the backing file, creating it sparse with {@code sizeIfMissing} when it does not exist. */
    static FileBackingDevice openOrCreateBacking(Path path, Long sizeIfMissing, boolean readOnly) throws IOException {
        if (Files.exists(path)) {
            return FileBackingDevice.open(path, readOnly);
        }
        if (sizeIfMissing == null) {
            throw new IOException("backing file " + path + " does not exist; give --backing-size to create it");
        }
        FileBackingDevice d = FileBackingDevice.createSparse(path, sizeIfMissing);
        System.err.println("pmcache: created sparse backing file " + path + " (" + SizeConverter.human(sizeIfMissing)
                + ")");
        return d;
    }

    /**
     * Opens the cache file. A missing or empty file is created with {@code sizeIfNew} and formatted
     * for {@code backing}; a non-empty file that is not a pmcache cache is refused, never overwritten.
     */
    static MappedFileMedium openOrFormat(Path path, Long sizeIfNew, BackingDevice backing, FormatOptions format)
            throws IOException {
        boolean fresh = !Files.exists(path) || (Files.isRegularFile(path) && Files.size(path) == 0);
        if (!fresh) {
            MappedFileMedium m = MappedFileMedium.open(path);
            if (!Cache.looksFormatted(m)) {
                m.close();
                throw new IOException(path + " is neither empty nor a pmcache cache; refusing to overwrite it "
                        + "(use `pmcache format --force` to format it anyway)");
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
        try {
            Cache.format(m, backing, format);
        } catch (IOException | RuntimeException e) {
            m.close();
            Files.deleteIfExists(path);
            throw e;
        }
        System.err.println("pmcache: formatted cache file " + path + " (" + SizeConverter.human(sizeIfNew) + ")");
        return m;
    }
}
