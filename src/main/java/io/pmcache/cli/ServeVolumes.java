package io.pmcache.cli;

import io.pmcache.admin.StatusSource;
import io.pmcache.admin.VolumeControl;
import io.pmcache.admin.VolumesAdminServer;
import io.pmcache.backing.BackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheOptions;
import io.pmcache.cache.CacheStatus;
import io.pmcache.cache.FormatOptions;
import io.pmcache.media.MappedFileMedium;
import io.pmcache.nbd.NbdServer;
import io.pmcache.nbd.TlsConfig;
import io.pmcache.volume.Volume;
import io.pmcache.volume.VolumeMedium;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code pmcache serve --cache FILE} without {@code --backing}: serves every volume of the medium as
 * an NBD export named after it, each a cache of its own over the backing device its table entry
 * records; with {@code --admin}, volumes are created, removed and detached while the others serve
 * ({@link VolumeControl}). Changes run one at a time (this object's lock); I/O never takes it.
 */
final class ServeVolumes implements VolumeControl {
    private static final Logger log = LoggerFactory.getLogger(ServeVolumes.class);

    private final ServeCommand cmd;
    private final CacheOptions options;
    private VolumeMedium medium;
    private NbdServer server;
    /** The volumes served now, in table order; changed under this object's lock. */
    private final Map<String, Served> served = new LinkedHashMap<>();
    /**
     * A copy of {@link #served} after each change, for readers (/status, /metrics, knobs) that must
     * not wait behind a long change such as a detach's writeback.
     */
    private volatile Map<String, Served> view = Map.of();

    /** {@code earlier}: what the caches served before under this name counted (see {@link #counted}), or null. */
    private record Served(Volume volume, BackingDevice disk, Cache cache, StatusSource status, CacheStatus earlier) {
        /** The figures of the volume: the cache's, its counters going on from {@code earlier}'s. */
        CacheStatus figures() {
            return earlier == null ? cache.status() : cache.status().continuing(earlier);
        }
    }

    /**
     * For each volume name, what its caches that were closed (detached, removed) counted: the next
     * cache served under the name counts on from there, so a volume's counters count since the
     * start of the server and no /metrics counter goes backwards. Guarded by this object's lock.
     */
    private final Map<String, CacheStatus> counted = new java.util.HashMap<>();

    /**
     * The volumes that failed to start (backing device missing or unreachable, cache refused), with
     * why; not served until {@link #attach} starts them. Changed under this object's lock, read by
     * /status through {@link #failed()}.
     */
    private final Map<String, String> failed = new java.util.concurrent.ConcurrentSkipListMap<>();

    ServeVolumes(ServeCommand cmd, CacheOptions options) {
        this.cmd = cmd;
        this.options = options;
    }

    int run(InetSocketAddress adminAddress, TlsConfig tls) throws Exception {
        Preflight.file(cmd.cache, "cache file", true, false);
        try (MappedFileMedium m = MappedFileMedium.open(cmd.cache)) {
            medium = VolumeMedium.open(m);
            if (medium.singleCache()) {
                throw new IllegalArgumentException(cmd.cache + " is a single-cache medium, which records no backing "
                        + "device: give --backing");
            }
            server = NbdServer.builder().startEmpty().readOnly(cmd.readOnly).maxConnections(cmd.maxConnections)
                    .busyPoll(cmd.busyPoll()).tls(tls).build();
            VolumesAdminServer admin = null;
            try {
                for (Volume v : medium.volumes()) {
                    try {
                        start(v);
                    } catch (IOException | RuntimeException e) { // one volume's failure stops no other
                        failed(v, e);
                    }
                }
                if (served.isEmpty() && failed.isEmpty()) {
                    log.warn("{} has no volume yet: serving no export{}", cmd.cache,
                            adminAddress != null ? " until one is created through the admin endpoint" : "");
                }
                if (adminAddress != null) {
                    admin = VolumesAdminServer.start(adminAddress, this, () -> server.stats().snapshot());
                }
                if (cmd.socket != null) {
                    server.listenUnix(cmd.socket.toAbsolutePath());
                }
                if (cmd.listen != null) {
                    server.listenTcp(cmd.listenHost(), cmd.listenPort());
                }
                System.out.print(uris());
                System.out.flush();
                CountDownLatch stop = new CountDownLatch(1);
                StopSignals.onTermOrInt(stop::countDown);
                stop.await();
                log.info("stopping: answering the requests in flight, then closing every volume");
            } finally {
                if (admin != null) {
                    admin.close();
                }
                stopAll();
            }
        }
        log.info("stopped cleanly");
        return 0;
    }

    /**
     * What serve prints once listening: the URI of every served volume at every listener (each
     * volume is an export of its own name; the empty name finds one only while it is the only
     * one), one a line; with no volume served, the listeners' URIs, for {@code nbdinfo --list}.
     */
    private synchronized String uris() {
        List<String> lines = new ArrayList<>();
        for (String name : served.keySet()) {
            lines.addAll(server.uris(name));
        }
        if (lines.isEmpty()) {
            lines.addAll(server.uris());
        }
        return String.join(System.lineSeparator(), lines) + System.lineSeparator();
    }

    /** Opens a volume's backing device and cache and offers it as an export. */
    private synchronized void start(Volume v) throws IOException {
        VolumeMedium.checkIdentity(v);
        BackingDevice disk = CacheFiles.openBacking(v.backing(), cmd.readOnly);
        Cache c = null;
        try {
            c = Cache.open(v.medium(), disk, options);
            server.addExport(v.name(), "pmcache volume " + v.name() + ": " + cmd.cache + " in front of " + v.backing(),
                    c, cmd.readOnly);
        } catch (IOException | RuntimeException e) {
            try {
                if (c != null) {
                    c.close();
                }
                disk.close();
            } catch (IOException | RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw new IOException("volume " + v.name() + ": " + Errors.describe(e), e);
        }
        CacheStatus earlier = counted.get(v.name());
        served.put(v.name(), new Served(v, disk, c, StatusSource.of(c, server, disk, earlier), earlier));
        failed.remove(v.name());
        view = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(served));
        List<String> uris = server.uris(v.name()); // none yet at start: serve prints them once listening
        log.info("serving volume {} ({} in front of {}){}", v.name(), io.pmcache.cli.SizeConverter.human(
                v.medium().size()), v.backing(), uris.isEmpty() ? "" : " at " + String.join(" and ", uris));
    }

    /** Records and logs a volume that could not start: the server goes on with the others. */
    private synchronized void failed(Volume v, Exception e) {
        String why = Errors.describe(e.getCause() != null && e.getMessage() != null
                && e.getMessage().startsWith("volume " + v.name() + ": ") ? e.getCause() : e);
        failed.put(v.name(), why);
        log.error("volume {} is not served: it failed to start over its backing device {}: {}; the other volumes "
                + "serve; once fixed, serve it with `pmcache volume attach --admin HOST:PORT --name {}`", v.name(),
                v.backing(), why, v.name());
    }

    /** Stops offering a volume: its clients are answered ESHUTDOWN and disconnected; the others go on. */
    private synchronized Served stop(String name) {
        Served s = served.remove(name);
        view = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(served));
        if (s != null) {
            server.removeExport(name);
            s.status().close();
        }
        return s;
    }

    /** Closes a volume's cache and backing device; the next cache served under its name counts on. */
    private synchronized void close(Served s) throws IOException {
        try {
            s.cache().close();
        } finally {
            try {
                counted.put(s.volume().name(), s.figures());
            } finally {
                s.disk().close();
            }
        }
    }

    /** The stop sequence of {@code ServeCommand.stop}, for every volume. */
    private synchronized void stopAll() throws IOException {
        server.drain();
        IOException first = null;
        for (Served s : List.copyOf(served.values())) {
            try {
                s.status().close();
                close(s);
            } catch (IOException e) {
                log.error("volume {}: close failed: {}", s.volume().name(), e.toString());
                first = first == null ? e : first;
            }
        }
        served.clear();
        view = Map.of();
        server.close();
        if (first != null) {
            throw first;
        }
    }

    private Served servedOrThrow(String name) {
        Served s = served.get(name);
        if (s == null) {
            throw new IllegalArgumentException("no volume named '" + name + "' is served (served: "
                    + String.join(", ", served.keySet()) + ")");
        }
        return s;
    }

    // ---------------------------------------------------------------- VolumeControl

    @Override
    public synchronized Map<String, Object> volumes() {
        Map<String, Object> doc = new LinkedHashMap<>();
        Map<String, Object> each = new LinkedHashMap<>();
        for (Volume v : medium.volumes()) {
            Map<String, Object> one = VolumeCommand.describe(v);
            Served s = served.get(v.name());
            one.put("served", s != null);
            if (failed.containsKey(v.name())) {
                one.put("failed", failed.get(v.name()));
            }
            if (s != null) {
                one.put("dirty_bytes", s.cache().status().dirtyBytes());
            }
            each.put(v.name(), one);
        }
        doc.put("volumes", each);
        doc.put("free_bytes", medium.freeBytes());
        doc.put("largest_free_bytes", medium.largestFree());
        return doc;
    }

    @Override
    public StatusSource status(String name) {
        Served s = view.get(name);
        return s == null ? null : s.status();
    }

    @Override
    public Cache cache(String name) {
        Served s = view.get(name);
        return s == null ? null : s.cache();
    }

    @Override
    public List<String> served() {
        return new ArrayList<>(view.keySet());
    }

    @Override
    public Map<String, String> failed() {
        return Map.copyOf(failed);
    }

    @Override
    public synchronized String attach(String name) throws IOException {
        if (served.containsKey(name)) {
            throw new IllegalArgumentException("volume " + name + " is served already");
        }
        Volume v = medium.volume(name); // refuses a name the table does not list
        try {
            start(v);
        } catch (IOException | RuntimeException e) {
            failed(v, e);
            throw e;
        }
        return "attached volume " + name + ": serving it as export " + name + " (" + SizeConverter.human(
                v.medium().size()) + " in front of " + v.backing() + ")";
    }

    @Override
    public synchronized String create(Map<?, ?> r) throws IOException {
        String name = (String) r.get("name");
        if (!(r.get("backing") instanceof String backing) || !(r.get("size") instanceof Long size)) {
            throw new IllegalArgumentException("create needs \"backing\" and \"size\"");
        }
        Long backingSize = r.get("backing_size") instanceof Long l ? l : null;
        long segmentSize = r.get("segment_size") instanceof Long l ? l : FormatOptions.SEGMENT_SIZE_AUTO;
        FormatOptions format = new FormatOptions(segmentSize, Boolean.TRUE.equals(r.get("data_crc")));
        Volume v;
        try (CacheFiles.Created created = new CacheFiles.Created();
             BackingDevice disk = CacheFiles.openOrCreateBacking(backing, backingSize, false, created)) {
            v = medium.create(name, disk, backing, size, format);
            created.keep();
        }
        try {
            start(v);
        } catch (IOException | RuntimeException e) { // in the table from here on: shown failed until attached
            failed(v, e);
            throw e;
        }
        return "created volume " + name + " (" + SizeConverter.human(v.medium().size()) + " for " + backing
                + ") and serving it as export " + name;
    }

    @Override
    public synchronized String remove(String name, boolean force) throws IOException {
        Volume v = medium.volume(name);
        Served s = served.get(name);
        long dirty = s != null ? s.cache().status().dirtyBytes()
                : io.pmcache.cache.Checker.check(v.medium(), null, false, null).dirtyBytes();
        String refusal = VolumeRemoval.refusal(v, dirty, force);
        if (refusal != null) {
            throw new IllegalArgumentException(refusal.replace("`pmcache detach --volume " + name + "`",
                    "`pmcache detach --admin ... --volume " + name + "`"));
        }
        if (s != null) {
            stop(name);
            close(s);
        }
        medium.remove(name);
        failed.remove(name);
        return "removed volume " + name + (s != null ? " (no longer served)" : "");
    }

    @Override
    public synchronized String detach(String name) throws IOException {
        Served s = servedOrThrow(name);
        stop(name);
        try {
            s.cache().detach(left -> { });
            long dirty = s.cache().status().dirtyBytes();
            if (dirty != 0) {
                throw new IOException("volume " + name + ": detach finished with " + dirty + " bytes still dirty; last "
                        + "backing error: " + s.cache().status().lastBackingError());
            }
        } finally {
            close(s);
        }
        return "detached volume " + name + ": everything is written back to " + s.volume().backing()
                + "; it is no longer served (serve it again with `pmcache volume attach --admin ... --name " + name
                + "`, or remove it)";
    }
}
