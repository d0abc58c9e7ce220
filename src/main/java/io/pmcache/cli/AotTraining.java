package io.pmcache.cli;

import io.pmcache.backing.FileBackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheOptions;
import io.pmcache.media.MappedFileMedium;
import io.pmcache.media.Medium;
import io.pmcache.volume.Volume;
import io.pmcache.volume.VolumeMedium;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.SplittableRandom;
import java.util.stream.Stream;

/**
 * The training run of {@code bin/pmcache-aot}: run once under {@code -XX:AOTCacheOutput} (JDK 25,
 * JEPs 483/514/515) with {@code -cp target/pmcache.jar}, so that the AOT cache it leaves holds the
 * classes (loaded and linked) and the method profiles of what a restart does: the CLI's format and
 * check, random 4 KiB writes, and replays of their key log. {@code bin/pmcache} starts the JVM with
 * that cache when it is there and newer than the jar; nothing requires it.
 *
 * <p>Usage: {@code java -cp pmcache.jar io.pmcache.cli.AotTraining DIR [KEYS]}: works in a new
 * directory under DIR (2 × KEYS × 4 KiB of cache file, KEYS default {@value #KEYS}) and removes it.
 * Throws if a replay does not find every key or a read returns other data than was written.
 */
public final class AotTraining {
    /** Keys written, then replayed: more than one replay batch applier's minimum, so both run. */
    static final int KEYS = 64 * 1024;
    private static final int BLOCK = 4096;
    private static final int REOPENS = 4;

    private AotTraining() {
    }

    public static void main(String[] args) throws IOException {
        if (args.length < 1 || args.length > 2) {
            System.err.println("usage: AotTraining DIR [KEYS]");
            System.exit(2);
        }
        int keys = args.length > 1 ? Integer.parseInt(args[1]) : KEYS;
        Path dir = Files.createTempDirectory(Path.of(args[0]), "pmcache-aot-training-");
        try {
            train(dir, keys);
        } finally {
            try (Stream<Path> files = Files.walk(dir)) {
                for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    private static Medium volume(MappedFileMedium file) throws IOException {
        Volume v = VolumeMedium.open(file).volume(VolumeMedium.DEFAULT_NAME);
        VolumeMedium.checkIdentity(v);
        return v.medium();
    }

    private static void train(Path dir, int keys) throws IOException {
        Path cacheFile = dir.resolve("cache.img");
        Path backingFile = dir.resolve("backing.img");
        long device = 4L * keys * BLOCK;            // every other block of half the device: one key each
        long cacheSize = 2L * keys * BLOCK;
        int rc = Main.commandLine().execute("format", "--cache", cacheFile.toString(), "--cache-size",
                Long.toString(cacheSize), "--backing", backingFile.toString(), "--backing-size", Long.toString(device));
        if (rc != 0) {
            throw new IOException("format failed with exit status " + rc);
        }
        CacheOptions noWriteback = CacheOptions.defaults().withWriteback(false);
        long[] blocks = new long[keys];
        for (int i = 0; i < keys; i++) {
            blocks[i] = 2L * i * BLOCK;
        }
        SplittableRandom random = new SplittableRandom(1);
        for (int i = keys - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            long t = blocks[i];
            blocks[i] = blocks[j];
            blocks[j] = t;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(BLOCK, BLOCK);
            // Opened as serve opens a volume (ServeVolumes). Dirty keys are left in the log (no
            // writeback), as a crash or a stop leaves them to replay.
            for (int r = 0; r <= REOPENS; r++) {
                try (MappedFileMedium file = MappedFileMedium.open(cacheFile);
                     FileBackingDevice backing = FileBackingDevice.open(backingFile, false);
                     Cache cache = Cache.open(volume(file), backing, noWriteback)) {
                    if (r == 0) {
                        for (long b : blocks) {
                            buf.set(ValueLayout.JAVA_LONG, 0, b);
                            cache.write(b, buf, false);
                        }
                        continue;
                    }
                    if (cache.status().replayKeys() != keys) {
                        throw new IllegalStateException("replayed " + cache.status().replayKeys() + " keys, wrote " + keys);
                    }
                    for (int i = 0; i < keys; i += 16) {
                        cache.read(blocks[i], buf);
                        if (buf.get(ValueLayout.JAVA_LONG, 0) != blocks[i]) {
                            throw new IllegalStateException("block " + blocks[i] + " read back wrong data");
                        }
                    }
                }
            }
        }
        rc = Main.commandLine().execute("check", "--cache", cacheFile.toString(), "--backing", backingFile.toString());
        if (rc != 0) {
            throw new IOException("check failed with exit status " + rc);
        }
    }
}
