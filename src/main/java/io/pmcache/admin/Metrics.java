package io.pmcache.admin;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.binder.system.UptimeMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.pmcache.cache.CacheStatus;
import io.pmcache.nbd.NbdStats;
import java.util.function.ToDoubleFunction;

/**
 * The Prometheus registry of a running pmcache: function counters and gauges over
 * {@link StatusSource}, so the engine and the NBD server keep their own cheap counters and know
 * nothing of Micrometer. Every pmcache meter is named {@code pmcache_*}; the JVM's own meters
 * ({@code jvm_*}, {@code process_*}, {@code system_*}) come along.
 *
 * <p>The exposed names (Micrometer appends the unit and {@code _total} for counters) are listed in
 * {@code docs/cli.md}.
 */
public final class Metrics {
    private final PrometheusMeterRegistry registry;
    private final StatusSource src;
    /** The label {@code volume} every engine meter carries, or null for a single cache (no label). */
    private final String volume;
    /** The meters this instance registered (to take them off a shared registry again). */
    private final java.util.List<io.micrometer.core.instrument.Meter> meters = new java.util.ArrayList<>();

    /**
     * A volume's engine figures on a registry shared by every volume of a server, each series
     * labelled {@code volume=NAME}; the NBD and JVM meters are the caller's ({@link #serverMeters}).
     * {@link #remove()} takes them off again when the volume stops being served.
     */
    public static Metrics forVolume(PrometheusMeterRegistry registry, StatusSource src, String volume) {
        return new Metrics(registry, src, volume);
    }

    /**
     * The meters of a server of volumes that are not any one volume's, once per shared registry:
     * the NBD server's ({@code nbd}: a source whose {@link StatusSource#nbd()} is set; its cache
     * figures are not read) and the JVM's.
     */
    public static void serverMeters(PrometheusMeterRegistry registry, StatusSource nbd) {
        new Metrics(registry, nbd, null, false).nbd();
        new JvmMemoryMetrics().bindTo(registry);
        new JvmThreadMetrics().bindTo(registry);
        new ProcessorMetrics().bindTo(registry);
        new UptimeMetrics().bindTo(registry);
    }

    /** Takes this volume's meters off the shared registry. */
    public void remove() {
        for (io.micrometer.core.instrument.Meter m : meters) {
            registry.remove(m);
        }
        meters.clear();
    }

    private Metrics(PrometheusMeterRegistry registry, StatusSource src, String volume) {
        this(registry, src, volume, true);
    }

    private Metrics(PrometheusMeterRegistry registry, StatusSource src, String volume, boolean engine) {
        this.registry = registry;
        this.src = src;
        this.volume = volume;
        if (engine) {
            engine();
            remoteBacking();
        }
    }

    public Metrics(StatusSource src) {
        this.registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        this.src = src;
        this.volume = null;
        engine();
        if (src.hasNbd()) {
            nbd();
        }
        remoteBacking();
        new JvmMemoryMetrics().bindTo(registry);
        new JvmThreadMetrics().bindTo(registry);
        new ProcessorMetrics().bindTo(registry);
        new UptimeMetrics().bindTo(registry);
    }

    public MeterRegistry registry() {
        return registry;
    }

    /** The Prometheus text exposition of every meter. */
    public String scrape() {
        return registry.scrape();
    }

    /** The content type of {@link #scrape()}. */
    public static String contentType() {
        return "text/plain; version=0.0.4; charset=utf-8";
    }

    private void counter(String name, String unit, String help, ToDoubleFunction<CacheStatus> f) {
        var b = FunctionCounter.builder(name, src, s -> f.applyAsDouble(s.cache())).baseUnit(unit).description(help);
        meters.add((volume != null ? b.tag("volume", volume) : b).register(registry));
    }

    private void gauge(String name, String unit, String help, ToDoubleFunction<StatusSource> f) {
        var b = Gauge.builder(name, src, f).baseUnit(unit).description(help);
        meters.add((volume != null ? b.tag("volume", volume) : b).register(registry));
    }

    /** The remote backing device's gauges (labelled with the volume on a volume server), when it is one. */
    private void remoteBacking() {
        if (src.backingState() != null) {
            gauge("pmcache.backing.remote.up", null, "1 while the remote backing device (NBD) is connected",
                    s -> "up".equals(s.backingState().get("state")) ? 1 : 0);
            gauge("pmcache.backing.remote.links.lost", null, "Times the connection to the remote backing device "
                    + "was lost", s -> ((Number) s.backingState().get("links_lost")).doubleValue());
        }
    }

    private void engine() {
        counter("pmcache.reads", null, "Read requests served by the cache", CacheStatus::reads);
        counter("pmcache.writes", null, "Write requests (including write-zeroes) taken by the cache",
                CacheStatus::writes);
        counter("pmcache.read", "bytes", "Bytes read from the cache device", CacheStatus::readBytes);
        counter("pmcache.written", "bytes", "Bytes written to the cache device", CacheStatus::writeBytes);
        counter("pmcache.flushes", null, "Flush requests", CacheStatus::flushes);
        counter("pmcache.trims", null, "Trim requests", CacheStatus::trims);
        counter("pmcache.read.hits", null, "Reads served entirely from the cache medium", CacheStatus::readHits);
        counter("pmcache.read.partial.hits", null, "Reads served partly from the cache medium, partly from the "
                + "backing device", CacheStatus::readPartialHits);
        counter("pmcache.read.misses", null, "Reads served entirely from the backing device",
                CacheStatus::readMisses);
        counter("pmcache.fill", "bytes", "Bytes inserted into the cache by read-miss fills", CacheStatus::fillBytes);
        counter("pmcache.fills.skipped", null, "Read-miss fills skipped (no space or a racing write)",
                CacheStatus::fillsSkipped);
        counter("pmcache.ksets.sealed", null, "Key sets sealed into the key log", CacheStatus::ksetsSealed);
        counter("pmcache.ksets.reserved.ahead", null, "Key sets reserved while the front end was idle, ahead of the next write",
                CacheStatus::ksetsReservedAhead);
        counter("pmcache.writeback", "bytes", "Bytes of data written back to the backing device",
                CacheStatus::writebackBytes);
        counter("pmcache.writeback.zero", "bytes", "Bytes of zeroed or trimmed ranges written back (as zeroing)",
                CacheStatus::writebackZeroBytes);
        counter("pmcache.writeback.written", "bytes", "Bytes of data writeback wrote to the backing device "
                + "(after each batch's newest-wins merge: below pmcache_writeback_bytes_total by the overwrites "
                + "absorbed)", CacheStatus::writebackWrittenBytes);
        counter("pmcache.writeback.left.to.newer", "bytes", "Bytes of keys writeback did not write because a "
                + "newer key of the same flush interval overwrote them", CacheStatus::writebackLeftToNewerBytes);
        counter("pmcache.writeback.keys", null, "Keys written back", CacheStatus::writebackKeys);
        counter("pmcache.writeback.batches", null, "Writeback batches (each ends with a backing sync)",
                CacheStatus::writebackBatches);
        counter("pmcache.writer.waits", null, "Writes that waited for free space (gc or writeback)",
                CacheStatus::spaceWaits);
        counter("pmcache.writer.wait", "seconds", "Time writes spent waiting for free space",
                s -> s.spaceWaitNanos() / 1e9);
        counter("pmcache.backing.errors", null, "Failed backing-device operations", CacheStatus::backingErrors);
        counter("pmcache.backing.retries", null, "Retried backing-device operations", CacheStatus::backingRetries);
        counter("pmcache.gc.passes", null, "Garbage collection passes", CacheStatus::gcPasses);
        counter("pmcache.gc.ksets", null, "Key sets walked by garbage collection", CacheStatus::gcKsets);
        counter("pmcache.segments.reclaimed", null, "Segments reclaimed by garbage collection",
                CacheStatus::segmentsReclaimed);
        counter("pmcache.corrupt.keys.skipped", null, "Keys skipped because they failed their CRC or bounds check",
                CacheStatus::corruptKeysSkipped);
        counter("pmcache.data.crc.errors", null, "Data CRC mismatches found", CacheStatus::dataCrcErrors);
        counter("pmcache.ksets.damaged", null, "Key sets of the key log found damaged (recovered in part or lost)",
                CacheStatus::ksetsDamaged);

        gauge("pmcache.dirty", "bytes", "Bytes in the cache not yet written back", s -> s.cache().dirtyBytes());
        gauge("pmcache.segments", null, "Segments of the cache medium", s -> s.cache().segmentsTotal());
        gauge("pmcache.segments.used", null, "Segments in use (key log or data)", s -> s.cache().segmentsUsed());
        gauge("pmcache.segment.size", "bytes", "Segment size", s -> s.cache().segmentSize());
        gauge("pmcache.device.size", "bytes", "Size of the cached device", s -> s.cache().deviceSize());
        gauge("pmcache.gc.percent", null, "Garbage collection starts above this percentage of used segments",
                s -> s.cache().gcPercent());
        gauge("pmcache.writeback.rate", "bytes.per.second", "Writeback throughput over the last 10 seconds",
                StatusSource::writebackRate);
        gauge("pmcache.dirty.ratio", null, "Dirty bytes as a fraction of the cache", s -> s.cache().dirtyPercent() / 100);
        gauge("pmcache.writeback.target.ratio", null, "The writeback controller's dirty target as a fraction of the cache",
                s -> s.cache().writebackTargetPercent() / 100.0);
        gauge("pmcache.writeback.rate.limit", "bytes.per.second", "The rate writeback was last allowed (+Inf: full "
                + "speed, 0: writeback off)", s -> s.cache().writebackRateLimit() < 0 ? Double.POSITIVE_INFINITY
                        : s.cache().writebackRateLimit());
        for (String reason : new String[] {"controller", "idle", "pressure", "drain", "off"}) {
            var b = Gauge.builder("pmcache.writeback.reason", src, s -> reason.equals(s.cache().writebackReason()) ? 1 : 0)
                    .tag("reason", reason).description("1 for why writeback runs at its rate now: controller (paced), "
                            + "idle, pressure or drain (full speed), off");
            meters.add((volume != null ? b.tag("volume", volume) : b).register(registry));
        }
        gauge("pmcache.writeback.lag", "seconds", "Dirty bytes divided by the writeback rate (+Inf when stalled)",
                StatusSource::writebackLagSeconds);
        gauge("pmcache.writeback.lag.ksets", null, "Key sets between the dirty tail and the key head",
                s -> s.cache().writebackLagKsets());
        gauge("pmcache.failed", null, "1 when the cache has failed (a persist of the medium failed): writes and "
                + "flushes fail with EIO until a restart", s -> s.cache().failure() != null ? 1 : 0);
        gauge("pmcache.backing.stalled", "seconds", "How long a writeback call to the backing device has been "
                + "running, once over 30 s (0 otherwise)", s -> s.cache().backingStalledMillis() / 1e3);
        gauge("pmcache.replay", "seconds", "Time the last open spent replaying the key log",
                s -> s.cache().replayNanos() / 1e9);
        gauge("pmcache.replay.keys", null, "Keys replayed at the last open", s -> s.cache().replayKeys());
        gauge("pmcache.replay.ksets", null, "Key sets replayed at the last open", s -> s.cache().replayKsets());
        cacheModes();
    }

    /** Cache modes and the sequential cutoff (see docs/architecture.md#cache-modes-and-the-sequential-cutoff). */
    private void cacheModes() {
        for (String mode : new String[] {"writeback", "writethrough", "writearound", "none"}) {
            Gauge.builder("pmcache.cache.mode", src, s -> mode.equals(s.cache().cacheMode()) ? 1 : 0)
                    .tag("mode", mode).description("1 for the cache mode in force").register(registry);
        }
        gauge("pmcache.sequential.cutoff", "bytes", "Sequential streams longer than this bypass the cache (0: off)",
                s -> s.cache().sequentialCutoff());
        counter("pmcache.direct.writes", null, "Writes and zeroings that went to the backing device directly "
                + "(writethrough, writearound, none, sequential cutoff)", CacheStatus::directWrites);
        counter("pmcache.direct.written", "bytes", "Bytes written to the backing device directly",
                CacheStatus::directWriteBytes);
        counter("pmcache.writethrough.writes", null, "Direct writes also cached as clean data (writethrough)",
                CacheStatus::writethroughWrites);
        counter("pmcache.dirty.range.writes", null, "Write pieces cached (write-back) instead of written directly: "
                + "their range held dirty data not yet written back", CacheStatus::dirtyRangeWrites);
        counter("pmcache.sequential.bypass.writes", null, "Writes past the sequential cutoff",
                CacheStatus::sequentialBypassWrites);
        counter("pmcache.sequential.bypass.written", "bytes", "Bytes of writes past the sequential cutoff",
                CacheStatus::sequentialBypassWriteBytes);
        counter("pmcache.sequential.bypass.reads", null, "Reads past the sequential cutoff (not filled)",
                CacheStatus::sequentialBypassReads);
        counter("pmcache.fills.bypassed", null, "Read misses not filled on purpose (mode none or the cutoff)",
                CacheStatus::fillsBypassed);
        counter("pmcache.direct.waits", null, "Cached writes and reads that waited for a direct write to the same "
                + "bytes", CacheStatus::directWaits);
        counter("pmcache.invalidated", "bytes", "Bytes of clean cached data dropped by invalidate",
                CacheStatus::invalidatedBytes);
    }

    private void nbd() {
        gauge("pmcache.nbd.connections", null, "NBD connections open now", s -> s.nbd().connectionsActive());
        FunctionCounter.builder("pmcache.nbd.connections.accepted", src, s -> s.nbd().connectionsAccepted())
                .description("NBD connections accepted").register(registry);
        FunctionCounter.builder("pmcache.nbd.connections.refused", src, s -> s.nbd().connectionsRefused())
                .description("NBD connections refused at the connection limit").register(registry);
        FunctionCounter.builder("pmcache.nbd.protocol.violations", src, s -> s.nbd().protocolViolations())
                .description("NBD connections closed because the client broke the protocol").register(registry);
        FunctionCounter.builder("pmcache.nbd.buffer.waits", src, s -> s.nbd().bufferWaits())
                .description("Requests that waited for the server-wide payload memory budget").register(registry);
        FunctionCounter.builder("pmcache.nbd.inline.requests", src, s -> s.nbd().inlineRequests())
                .description("NBD requests run on their connection's reader (the others ran on their own threads)")
                .register(registry);
        FunctionCounter.builder("pmcache.nbd.inline.takeovers", src, s -> s.nbd().inlineTakeovers())
                .description("Inline NBD requests that ran so long that another thread took over reading")
                .register(registry);
        FunctionCounter.builder("pmcache.nbd.streamed.writes", src, s -> s.nbd().streamedWrites())
                .description("Inline NBD WRITEs whose payload the device read from the socket itself (no buffer)")
                .register(registry);
        FunctionCounter.builder("pmcache.nbd.busy.polls", src, s -> s.nbd().busyPolls())
                .description("Times an NBD reader found its socket empty and spun for the client's next bytes "
                        + "(serve --busy-poll)").register(registry);
        FunctionCounter.builder("pmcache.nbd.busy.poll.hits", src, s -> s.nbd().busyPollHits())
                .description("Busy polls that read the client's next bytes within their window (the others slept)")
                .register(registry);
        FunctionCounter.builder("pmcache.nbd.allocation.failures", src, s -> s.nbd().allocationFailures())
                .description("Requests answered ENOMEM because a payload buffer could not be allocated")
                .register(registry);
        FunctionCounter.builder("pmcache.nbd.read", src, s -> s.nbd().bytesRead()).baseUnit("bytes")
                .description("Bytes sent to NBD clients by reads").register(registry);
        FunctionCounter.builder("pmcache.nbd.written", src, s -> s.nbd().bytesWritten()).baseUnit("bytes")
                .description("Bytes received from NBD clients by writes").register(registry);
        NbdStats.Snapshot first = src.nbd();
        for (String command : first.requests().keySet()) {
            FunctionCounter.builder("pmcache.nbd.requests", src, s -> s.nbd().requests(command))
                    .tag("command", command).description("NBD requests received, by command").register(registry);
        }
        for (String error : first.errors().keySet()) {
            FunctionCounter.builder("pmcache.nbd.errors", src, s -> s.nbd().errors(error))
                    .tag("error", error).description("NBD error replies sent, by error").register(registry);
        }
    }
}
