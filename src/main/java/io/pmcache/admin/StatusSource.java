package io.pmcache.admin;

import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheStatus;
import io.pmcache.nbd.NbdServer;
import io.pmcache.nbd.NbdStats;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Where the admin endpoint gets its figures: the engine's {@link CacheStatus} and the server's
 * {@link NbdStats.Snapshot}, each taken at most every {@value #MAX_AGE_MILLIS} ms (one scrape reads
 * dozens of figures from one snapshot), plus the writeback rate, measured here over the last
 * {@value #RATE_WINDOW} seconds by a sampler thread.
 */
public final class StatusSource implements AutoCloseable {
    static final long MAX_AGE_MILLIS = 200;
    static final int RATE_WINDOW = 10;

    private final Supplier<CacheStatus> cache;
    private final Supplier<NbdStats.Snapshot> nbd;
    /** The backing device's own state (a remote's connection), or null when it has none to show. */
    private volatile Supplier<Map<String, Object>> backing;
    private volatile Taken taken;
    private final long[] sampleNanos = new long[RATE_WINDOW + 1];
    private final long[] sampleBytes = new long[RATE_WINDOW + 1];
    private int samples;
    private volatile double writebackRate;
    private final Thread sampler;

    private record Taken(long atNanos, CacheStatus cache, NbdStats.Snapshot nbd) {
    }

    public StatusSource(Supplier<CacheStatus> cache, Supplier<NbdStats.Snapshot> nbd) {
        this.cache = cache;
        this.nbd = nbd;
        this.sampler = Thread.ofVirtual().name("pmcache-admin-sampler").start(this::sampleLoop);
    }

    /** As {@link #of(Cache, NbdServer)}, plus a remote backing device's state under "backing". */
    public static StatusSource of(Cache cache, NbdServer server, io.pmcache.backing.BackingDevice backing) {
        return of(cache, server, backing, null);
    }

    /**
     * As {@link #of(Cache, NbdServer, io.pmcache.backing.BackingDevice)}, the counters going on from
     * {@code earlier} (what the caches served before under the same name counted, or null:
     * {@link CacheStatus#continuing}).
     */
    public static StatusSource of(Cache cache, NbdServer server, io.pmcache.backing.BackingDevice backing,
                                  CacheStatus earlier) {
        StatusSource s = new StatusSource(earlier == null ? cache::status : () -> cache.status().continuing(earlier),
                server != null ? () -> server.stats().snapshot() : null);
        if (backing instanceof io.pmcache.backing.NbdBackingDevice remote) {
            s.backing = remote::state;
        }
        return s;
    }

    /** Figures of a running cache and (when not null) its NBD server. */
    public static StatusSource of(Cache cache, NbdServer server) {
        return new StatusSource(cache::status, server != null ? () -> server.stats().snapshot() : null);
    }

    private Taken taken() {
        Taken t = taken;
        long now = System.nanoTime();
        if (t == null || now - t.atNanos > MAX_AGE_MILLIS * 1_000_000) {
            t = new Taken(now, cache.get(), nbd != null ? nbd.get() : null);
            taken = t;
        }
        return t;
    }

    /** Forgets the cached snapshot: the next read takes a fresh one. */
    public void invalidate() {
        taken = null;
    }

    public CacheStatus cache() {
        return taken().cache;
    }

    /** Null when no NBD server is attached. */
    public NbdStats.Snapshot nbd() {
        return taken().nbd;
    }

    /** A remote backing device's state (see {@code NbdBackingDevice.state()}), or null when there is none. */
    public Map<String, Object> backingState() {
        Supplier<Map<String, Object>> b = backing;
        return b != null ? b.get() : null;
    }

    public boolean hasNbd() {
        return nbd != null;
    }

    /** Bytes per second written back, averaged over the last seconds. */
    public double writebackRate() {
        return writebackRate;
    }

    /** Seconds the dirty data would take to write back at the current rate (0 when clean, +inf when stalled). */
    public double writebackLagSeconds() {
        long dirty = cache().dirtyBytes();
        if (dirty == 0) {
            return 0;
        }
        double rate = writebackRate;
        return rate > 0 ? dirty / rate : Double.POSITIVE_INFINITY;
    }

    private void sampleLoop() {
        try {
            while (!Thread.currentThread().isInterrupted()) {
                CacheStatus c = cache.get();
                sample(System.nanoTime(), c.writebackBytes() + c.writebackZeroBytes()); // all dirty bytes cleaned
                Thread.sleep(1000);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            // The cache was closed under us: stop sampling.
        }
    }

    synchronized void sample(long nanos, long bytes) {
        if (samples == sampleNanos.length) {
            System.arraycopy(sampleNanos, 1, sampleNanos, 0, samples - 1);
            System.arraycopy(sampleBytes, 1, sampleBytes, 0, samples - 1);
            samples--;
        }
        sampleNanos[samples] = nanos;
        sampleBytes[samples] = bytes;
        samples++;
        if (samples >= 2) {
            double secs = (sampleNanos[samples - 1] - sampleNanos[0]) / 1e9;
            writebackRate = secs > 0 ? (sampleBytes[samples - 1] - sampleBytes[0]) / secs : 0;
        }
    }

    /** The document served at {@code /status} and printed by {@code pmcache status --json}. */
    public Map<String, Object> statusDocument() {
        invalidate(); // /status is read by people and scripts right after a change: never stale
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("source", "live");
        doc.put("cache", Json.recordToMap(cache()));
        Map<String, Object> wb = new LinkedHashMap<>();
        wb.put("rate_bytes_per_second", Math.round(writebackRate));
        double lag = writebackLagSeconds();
        wb.put("lag_seconds", Double.isInfinite(lag) ? null : lag);
        doc.put("writeback", wb);
        Supplier<Map<String, Object>> b = backing;
        if (b != null) {
            doc.put("backing", b.get());
        }
        CacheStatus c = cache();
        Map<String, Object> replay = new LinkedHashMap<>();             // the last open's replay of the key log
        replay.put("seconds", c.replayNanos() / 1e9);
        replay.put("keys_per_second", c.replayNanos() > 0 ? Math.round(c.replayKeys() * 1e9 / c.replayNanos()) : 0);
        doc.put("replay", replay);
        NbdStats.Snapshot n = nbd();
        if (n != null) {
            Map<String, Object> m = Json.recordToMap(n);
            m.replaceAll((k, v) -> v instanceof Map<?, ?> sub ? new java.util.TreeMap<>(sub) : v);
            doc.put("nbd", m);
        }
        return doc;
    }

    @Override
    public void close() {
        sampler.interrupt();
    }
}
