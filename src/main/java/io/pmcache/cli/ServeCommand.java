package io.pmcache.cli;

import io.pmcache.admin.AdminServer;
import io.pmcache.admin.StatusSource;
import io.pmcache.backing.BackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheMode;
import io.pmcache.cache.CacheOptions;
import io.pmcache.cache.FormatOptions;
import io.pmcache.cache.WritebackSettings;
import io.pmcache.media.MappedFileMedium;
import io.pmcache.nbd.NbdServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code pmcache serve}: opens (or creates) a cache and serves it over NBD until SIGTERM/SIGINT,
 * then stops cleanly (every kset sealed and persisted) and exits 0. With no arguments it serves
 * a demo under {@code ./pmcache-data/}.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve a cached block device over NBD.",
            "With no options, serves a demo: ./pmcache-data/cache.img (1 GiB) in front of "
                + "./pmcache-data/backing.img (8 GiB, sparse) on ./pmcache-data/pmcache.sock."})
public final class ServeCommand implements Callable<Integer> {
    private static final Logger log = LoggerFactory.getLogger(ServeCommand.class);
    static final Path DEMO_DIR = Path.of("pmcache-data");

    @Spec
    CommandSpec spec;

    @Option(names = "--cache", paramLabel = "FILE", description = "Cache medium: a file on pmem/DAX, /dev/shm or fast storage.")
    Path cache;

    @Option(names = "--cache-size", paramLabel = "SIZE", converter = SizeConverter.class,
            description = "Size of a new cache file (used when the file is missing or empty), e.g. 1G.")
    Long cacheSize;

    @Option(names = "--backing", paramLabel = "FILE|URI",
            description = "Backing file or block device, or a remote NBD export: nbd://HOST[:PORT]/EXPORT or "
                    + "nbd+unix:///EXPORT?socket=PATH.")
    String backing;

    @Option(names = "--backing-size", paramLabel = "SIZE", converter = SizeConverter.class,
            description = "Size of a new sparse backing file (used when the file is missing), e.g. 8G.")
    Long backingSize;

    @Option(names = "--socket", paramLabel = "PATH", description = "Serve on this unix socket (mode 0600).")
    Path socket;

    @Option(names = "--listen", paramLabel = "HOST:PORT", description = "Serve on TCP (opt-in), e.g. 127.0.0.1:10809.")
    String listen;

    @Option(names = "--export", paramLabel = "NAME", defaultValue = "pmcache",
            description = "Export name (the empty name is always accepted too). Default: ${DEFAULT-VALUE}.")
    String export;

    @Option(names = "--parallel", paramLabel = "N",
            description = "Data heads and kset streams, 1..128 (default: 4, fewer on small caches).")
    Integer parallel;

    @Option(names = "--segment-size", paramLabel = "SIZE", converter = SizeConverter.class,
            description = "Segment size of a new cache: power of two, 1M..1G. Default: 16M.")
    Long segmentSize;

    @Option(names = "--gc-percent", paramLabel = "P", description = "Start gc at P%% used segments, 0..90 (default: as stored, 70 when new).")
    Integer gcPercent;

    @Option(names = "--data-crc", description = "New cache: verify data CRCs at replay and before writeback.")
    boolean dataCrc;

    @Option(names = "--no-writeback",
            description = "Do not write back in the background: dirty data stays in the cache until a later serve "
                    + "without this option or `pmcache detach`; when the cache is full, writes wait. For "
                    + "maintenance windows of the backing device, and tests.")
    boolean noWriteback;

    @Option(names = "--writeback-target", paramLabel = "P",
            description = "Keep about P%% of the cache dirty; writeback is paced by the dirty data above it, and runs "
                    + "at full speed when space is short, when idle, and on drains. 0..90, default 10.")
    Integer writebackTarget;

    @Option(names = "--writeback-min-rate", paramLabel = "SIZE", converter = SizeConverter.class,
            description = "Paced writeback never goes below SIZE per second. Default: 4K.")
    Long writebackMinRate;

    @Option(names = "--writeback-max-rate", paramLabel = "SIZE", converter = SizeConverter.class,
            description = "Paced writeback never goes above SIZE per second; 0: no limit (default).")
    Long writebackMaxRate;

    @Option(names = "--writeback-idle-delay", paramLabel = "MS",
            description = "After MS ms without foreground I/O, write back at full speed. Default: 2000.")
    Long writebackIdleDelay;

    @Option(names = "--cache-mode", paramLabel = "MODE",
            description = "writeback, writethrough, writearound or none (default: as stored in the cache, writeback "
                    + "when new). Persisted. Leaving writeback first writes back the dirty data.")
    String cacheMode;

    @Option(names = "--sequential-cutoff", paramLabel = "SIZE", converter = SizeConverter.class, defaultValue = "0",
            description = "Sequential streams longer than SIZE bypass the cache (e.g. 4M, bcache's default); 0: off. "
                    + "Default: 0.")
    long sequentialCutoff;

    @Option(names = "--read-only", description = "Serve read-only.")
    boolean readOnly;

    @Option(names = "--admin", paramLabel = "HOST:PORT",
            description = "Serve the admin HTTP endpoint (/metrics, /status, /gc-percent) here; a bare PORT means "
                    + "127.0.0.1 (loopback). It has no authentication: keep it on loopback or a trusted network. "
                    + "Off unless given.")
    String admin;

    @Option(names = "--max-connections", paramLabel = "N", defaultValue = "64",
            description = "Most concurrent NBD connections. Default: ${DEFAULT-VALUE}.")
    int maxConnections;

    @Option(names = "--busy-poll", paramLabel = "MICROS", defaultValue = "50",
            description = "A connection's reader that finds nothing to read spins this long for the client's next "
                    + "request before it sleeps: halves a queue-depth-1 round trip where waking a sleeping thread "
                    + "is slow (virtual machines), for up to that much CPU per request; stops by itself for "
                    + "clients slower than that. 0..1000, 0: off. Default: ${DEFAULT-VALUE}.")
    int busyPollMicros;

    @Mixin
    TlsOptions tlsOptions;

    @Override
    public Integer call() throws Exception {
        boolean demo = cache == null && backing == null && socket == null && listen == null;
        if (demo) {
            Files.createDirectories(DEMO_DIR);
            cache = DEMO_DIR.resolve("cache.img");
            backing = DEMO_DIR.resolve("backing.img").toString();
            socket = DEMO_DIR.resolve("pmcache.sock");
            if (cacheSize == null) {
                cacheSize = 1L << 30;
            }
            if (backingSize == null) {
                backingSize = 8L << 30;
            }
        }
        InetSocketAddress adminAddress = checkUsage();
        io.pmcache.nbd.TlsConfig tls = tlsOptions.config(); // reads the certificates: a bad one stops here
        WritebackSettings[] checked = {null};
        Usage.check(spec, "--writeback-*", () -> checked[0] = pacing());
        WritebackSettings pacing = checked[0];
        if (backing == null) { // every volume of the medium, each its own export
            return new ServeVolumes(this, CacheOptions.defaults().withParallel(parallel != null ? parallel
                    : CacheOptions.PARALLEL_AUTO).withGcPercent(gcPercent != null ? gcPercent : -1)
                    .withWriteback(!noWriteback).withPacing(pacing)).run(adminAddress, tls);
        }
        // Before anything is created or replayed: each file usable as asked, or one line saying why.
        Preflight.file(backing, "backing file", true, backingSize != null);
        Preflight.file(cache, "cache file", true, true);
        if (cacheSize == null && Cache.isNewFile(cache)) {
            throw new IOException("cache file " + cache + " is missing or empty; give --cache-size to create it");
        }
        if (socket != null) {
            Preflight.socket(socket);
        }
        if (listen != null) {
            Preflight.tcpAddress(new InetSocketAddress(listenHost(), listenPort()), "--listen");
        }
        if (adminAddress != null && adminAddress.getPort() != 0) {
            Preflight.tcpAddress(adminAddress, "--admin");
        }
        FormatOptions format = new FormatOptions(segmentSize != null ? segmentSize : FormatOptions.SEGMENT_SIZE_AUTO,
                dataCrc);
        CacheOptions options = CacheOptions.defaults().withParallel(parallel != null ? parallel
                : CacheOptions.PARALLEL_AUTO).withGcPercent(gcPercent != null ? gcPercent : -1)
                .withWriteback(!noWriteback).withPacing(pacing);
        try (CacheFiles.Created created = new CacheFiles.Created();
             BackingDevice disk = CacheFiles.openOrCreateBacking(backing, backingSize, false, created);
             MappedFileMedium medium = CacheFiles.openOrFormat(cache, cacheSize, disk,
                     VolumeCommand.recordedBacking(backing), format, created)) {
            if (noWriteback) {
                log.warn("background writeback is off (--no-writeback): dirty data stays in the cache");
            }
            try (Cache c = Cache.open(cacheOf(medium), disk, options)) {
                CacheModeOptions.apply(c, cacheMode == null ? null : CacheMode.parse(cacheMode), sequentialCutoff, log);
                serve(c, demo, adminAddress, created, tls, disk);
            }
        }
        log.info("stopped cleanly");
        return 0;
    }

    /**
     * Where the one cache of {@code serve --backing} lives: a single-cache medium is that cache; a
     * volume medium's is its only volume, or the volume recorded for {@code --backing} (whether the
     * cache belongs to the backing device is checked by the cache's open, as for a single cache).
     */
    private io.pmcache.media.Medium cacheOf(MappedFileMedium medium) throws IOException {
        io.pmcache.media.Medium m = CacheFiles.cacheFor(medium, backing);
        if (m != medium) {
            log.info("serving {} as export '{}'", m.describe(), export);
        }
        return m;
    }

    /** The writeback pacing options over the defaults, validated. */
    private WritebackSettings pacing() {
        WritebackSettings p = WritebackSettings.DEFAULTS;
        if (writebackTarget != null) {
            p = p.withTargetPercent(writebackTarget);
        }
        if (writebackMinRate != null) {
            p = p.withMinRate(writebackMinRate);
        }
        if (writebackMaxRate != null) {
            p = p.withMaxRate(writebackMaxRate);
        }
        if (writebackIdleDelay != null) {
            p = p.withIdleDelayMillis(writebackIdleDelay);
        }
        return p;
    }

    /** What the command line alone shows to be wrong: exit 2 with the usage. Returns the admin address. */
    private InetSocketAddress checkUsage() {
        if (cache == null) {
            throw Usage.error(spec, "give --cache FILE: with --backing FILE it serves one cache, without it every "
                    + "volume of the medium (or give no options for the demo)");
        }
        if (backing == null && (cacheSize != null || backingSize != null || segmentSize != null || dataCrc)) {
            throw Usage.error(spec, "--cache-size, --backing-size, --segment-size and --data-crc need --backing "
                    + "(to add a volume: `pmcache volume create`)");
        }
        if (socket == null && listen == null) {
            throw Usage.error(spec, "give --socket PATH or --listen HOST:PORT (or both)");
        }
        if (parallel != null) {
            Usage.check(spec, "--parallel", () -> CacheOptions.checkParallel(parallel));
        }
        if (gcPercent != null) {
            Usage.check(spec, "--gc-percent", () -> CacheOptions.checkGcPercent(gcPercent));
        }
        if (segmentSize != null) {
            Usage.check(spec, "--segment-size", () -> new FormatOptions(segmentSize, dataCrc));
        }
        if (cacheSize != null && cacheSize <= 0) {
            throw Usage.error(spec, "invalid value for --cache-size: must be more than 0, got " + cacheSize);
        }
        if (backingSize != null && backingSize <= 0) {
            throw Usage.error(spec, "invalid value for --backing-size: must be more than 0, got " + backingSize);
        }
        if (cacheMode != null) {
            Usage.check(spec, "--cache-mode", () -> CacheMode.parse(cacheMode));
        }
        if (sequentialCutoff < 0) {
            throw Usage.error(spec, "invalid value for --sequential-cutoff: must be 0 (off) or more");
        }
        if (maxConnections < 1) {
            throw Usage.error(spec, "invalid value for --max-connections: must be at least 1, got " + maxConnections);
        }
        Usage.check(spec, "--busy-poll", () -> io.pmcache.nbd.BusyPoll.checkWindow(busyPoll()));
        if (listen != null) {
            listenPort();
        }
        InetSocketAddress[] adminAddress = {null};
        if (admin != null) {
            Usage.check(spec, "--admin", () -> adminAddress[0] = AdminServer.parseAddress(admin));
        }
        return adminAddress[0];
    }

    java.time.Duration busyPoll() {
        return java.time.Duration.ofNanos(busyPollMicros * 1000L);
    }

    /** The host of {@code --listen HOST:PORT} (brackets of an IPv6 address removed). */
    String listenHost() {
        return listen.substring(0, listen.lastIndexOf(':')).replaceAll("^\\[|\\]$", "");
    }

    /** The port of {@code --listen HOST:PORT}; a usage error when it is not one. */
    int listenPort() {
        int colon = listen.lastIndexOf(':');
        try {
            int port = colon < 0 ? -1 : Integer.parseInt(listen.substring(colon + 1));
            if (port >= 0 && port <= 65535) {
                return port;
            }
        } catch (NumberFormatException e) {
            // below
        }
        throw Usage.error(spec, "--listen wants HOST:PORT, got '" + listen + "'");
    }

    private void serve(Cache c, boolean demo, InetSocketAddress adminAddress, CacheFiles.Created created,
                       io.pmcache.nbd.TlsConfig tls, BackingDevice disk)
            throws IOException, InterruptedException {
        NbdServer server = NbdServer.builder().device(c).exportName(export)
                .description("pmcache: " + cache + " in front of " + backing)
                .readOnly(readOnly).maxConnections(maxConnections).busyPoll(busyPoll()).tls(tls).build();
        if (tls.mode() != io.pmcache.nbd.TlsMode.OFF) {
            log.info("TLS {}", tls);
        }
        CountDownLatch stop = new CountDownLatch(1);
        StopSignals.onTermOrInt(stop::countDown);
        AdminServer adminServer = null;
        try {
            if (adminAddress != null) {
                adminServer = AdminServer.start(adminAddress, StatusSource.of(c, server, disk), c::gcPercent,
                        c::setGcPercent, c::writebackSettings, c::setWritebackSettings).withCacheModes(c);
            }
            // Clients may write from the first listen on: the files are theirs from here.
            created.keep();
            if (socket != null) {
                server.listenUnix(socket.toAbsolutePath());
            }
            if (listen != null) {
                server.listenTcp(listenHost(), listenPort());
            }
            for (String uri : server.uris()) {
                System.out.println(uri);
            }
            System.out.flush();
            if (demo) {
                System.err.println("pmcache: serving the demo. Try:  nbdinfo '" + server.uri() + "'");
                System.err.println("pmcache: stop with Ctrl-C (or SIGTERM); the cache is kept for the next run.");
            }
            stop.await();
            log.info("stopping: answering the requests in flight, then closing the cache");
        } finally {
            if (adminServer != null) {
                adminServer.close();
            }
            stop(server, c);
        }
    }

    /**
     * The stop sequence (docs/nbd.md, "Stop"): no request starts any more (new ones are answered
     * ESHUTDOWN) and those in flight get the server's grace period; then the cache closes, which
     * fails the calls still waiting inside it (for space, say) with DeviceClosedException, answered
     * ESHUTDOWN too; then the connections close. Bounded: the grace periods and the cache's close.
     */
    private static void stop(NbdServer server, Cache c) throws IOException {
        server.drain();
        try {
            c.close();
        } finally {
            server.close();
        }
    }
}
