package io.pmcache.admin;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The admin HTTP endpoint of {@code pmcache serve} for a medium of volumes:
 * <ul>
 *   <li>{@code GET /status}: every served volume's figures under {@code volumes.NAME} (as
 *       {@link StatusSource#statusDocument()} has them for one cache; a volume that failed to start
 *       as {@code {"state": "failed", "error": ...}}), plus the NBD server's;
 *       {@code ?volume=NAME} for one;</li>
 *   <li>{@code GET /metrics}: Prometheus text, every engine series labelled {@code volume="NAME"}
 *       (the names of {@link Metrics}), and the NBD server's series (unlabelled: one server);</li>
 *   <li>{@code GET /volumes}: the volumes of the medium ({@link VolumeControl#volumes()});</li>
 *   <li>{@code POST /volumes/create}, {@code /volumes/remove}, {@code /volumes/detach},
 *       {@code /volumes/attach} (serve a table volume that is not served) with a JSON
 *       body ({@code name}, and for create {@code backing}, {@code size}, ...): 200 with a message,
 *       400 for a refusal, 500 when the work failed.</li>
 * </ul>
 * Like {@link AdminServer}, no authentication: it binds to loopback unless told otherwise.
 */
public final class VolumesAdminServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(VolumesAdminServer.class);

    private final HttpServer http;
    private final ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor();
    private final VolumeControl volumes;
    private final Supplier<io.pmcache.nbd.NbdStats.Snapshot> nbd;
    /** The NBD figures for the metrics (its cache side is never read). */
    private final StatusSource nbdSource;
    private final io.micrometer.prometheusmetrics.PrometheusMeterRegistry registry =
            new io.micrometer.prometheusmetrics.PrometheusMeterRegistry(
                    io.micrometer.prometheusmetrics.PrometheusConfig.DEFAULT);
    /** The volumes whose meters are on the registry, each with the figures it was registered with. */
    private final Map<String, Map.Entry<StatusSource, Metrics>> onRegistry = new LinkedHashMap<>();

    private VolumesAdminServer(HttpServer http, VolumeControl volumes, Supplier<io.pmcache.nbd.NbdStats.Snapshot> nbd) {
        this.http = http;
        this.volumes = volumes;
        this.nbd = nbd;
        this.nbdSource = new StatusSource(() -> null, nbd);
        http.setExecutor(executor);
        http.createContext("/status", ex -> handle(ex, this::status));
        http.createContext("/metrics", ex -> handle(ex, this::metrics));
        http.createContext("/gc-percent", ex -> handle(ex, this::gcPercent));
        http.createContext("/writeback", ex -> handle(ex, this::writeback));
        http.createContext("/cache-mode", ex -> handle(ex, e -> cacheModes(e).cacheMode(e)));
        http.createContext("/sequential-cutoff", ex -> handle(ex, e -> cacheModes(e).sequentialCutoff(e)));
        http.createContext("/invalidate", ex -> handle(ex, e -> cacheModes(e).invalidate(e)));
        Metrics.serverMeters(registry, nbdSource);
        http.createContext("/volumes", ex -> handle(ex, this::volumesRoute));
        http.createContext("/", ex -> handle(ex, e -> reply(e, 404, Map.of("error",
                "not found; try /status or /volumes"))));
    }

    /** Binds {@code address} and serves; {@code nbd} gives the NBD server's figures. */
    public static VolumesAdminServer start(InetSocketAddress address, VolumeControl volumes,
                                           Supplier<io.pmcache.nbd.NbdStats.Snapshot> nbd) throws IOException {
        HttpServer http;
        try {
            http = HttpServer.create(address, 16);
        } catch (java.net.BindException e) {
            throw new IOException("cannot bind the admin endpoint to " + address + ": " + e.getMessage()
                    + " (is another pmcache or program using that port?)");
        }
        VolumesAdminServer s = new VolumesAdminServer(http, volumes, nbd);
        http.start();
        log.info("admin endpoint on {} (/status, /volumes)", http.getAddress());
        return s;
    }

    public InetSocketAddress address() {
        return http.getAddress();
    }

    @FunctionalInterface
    private interface Handler {
        void handle(HttpExchange ex) throws IOException;
    }

    private void handle(HttpExchange ex, Handler h) {
        try (ex) {
            try {
                h.handle(ex);
            } catch (IllegalArgumentException e) {
                tryReply(ex, 400, e.getMessage());
            } catch (IOException e) {
                log.error("admin request {} {} failed: {}", ex.getRequestMethod(), ex.getRequestURI(), e.getMessage());
                tryReply(ex, 500, e.getMessage());
            } catch (RuntimeException e) {
                log.warn("admin request {} {} failed: {}", ex.getRequestMethod(), ex.getRequestURI(), e.toString());
                tryReply(ex, 500, "internal error: " + e);
            }
        }
    }

    private static void tryReply(HttpExchange ex, int code, String message) {
        try {
            reply(ex, code, Map.of("error", String.valueOf(message)));
        } catch (IOException | RuntimeException ignored) {
            // the response may have started already
        }
    }

    private static void reply(HttpExchange ex, int code, Map<String, ?> doc) throws IOException {
        byte[] b = Json.write(doc).getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(code, b.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(b);
        }
    }

    private static String query(HttpExchange ex, String key) {
        String q = ex.getRequestURI().getRawQuery();
        if (q != null) {
            for (String kv : q.split("&")) {
                if (kv.startsWith(key + "=")) {
                    return URLDecoder.decode(kv.substring(key.length() + 1), StandardCharsets.UTF_8);
                }
            }
        }
        return null;
    }

    private void status(HttpExchange ex) throws IOException {
        String only = query(ex, "volume");
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("source", "live");
        Map<String, Object> each = new LinkedHashMap<>();
        for (String name : only != null ? java.util.List.of(only) : volumes.served()) {
            StatusSource s = volumes.status(name);
            if (s == null && volumes.failed().containsKey(name)) {
                each.put(name, Map.of("state", "failed", "error", volumes.failed().get(name)));
                continue;
            }
            if (s == null) {
                throw new IllegalArgumentException("no volume named '" + name + "' is served (served: "
                        + String.join(", ", volumes.served()) + ")");
            }
            Map<String, Object> d = s.statusDocument();
            d.remove("source");
            d.remove("nbd");
            each.put(name, d);
        }
        if (only == null) {
            for (Map.Entry<String, String> f : volumes.failed().entrySet()) {
                each.put(f.getKey(), Map.of("state", "failed", "error", f.getValue()));
            }
        }
        doc.put("volumes", each);
        Map<String, Object> n = Json.recordToMap(nbd.get());
        n.replaceAll((k, v) -> v instanceof Map<?, ?> sub ? new java.util.TreeMap<>(sub) : v);
        doc.put("nbd", n);
        reply(ex, 200, doc);
    }

    /** The cache {@code ?volume=NAME} names, or the only one served; refusals are 400s. */
    private io.pmcache.cache.Cache knobsOf(HttpExchange ex) {
        String name = query(ex, "volume");
        if (name == null) {
            java.util.List<String> all = volumes.served();
            if (all.size() != 1) {
                throw new IllegalArgumentException("this server serves " + all.size() + " volumes (" + String.join(", ",
                        all) + "): name one with ?volume=NAME (pmcache set ... --volume NAME)");
            }
            name = all.getFirst();
        }
        io.pmcache.cache.Cache c = volumes.cache(name);
        if (c == null) {
            throw new IllegalArgumentException("no volume named '" + name + "' is served (served: "
                    + String.join(", ", volumes.served()) + ")");
        }
        return c;
    }

    /** {@code /cache-mode}, {@code /sequential-cutoff}, {@code /invalidate} {@code ?volume=NAME}: for one volume. */
    private CacheModeEndpoint cacheModes(HttpExchange ex) {
        return new CacheModeEndpoint(knobsOf(ex), () -> { });
    }

    /** {@code /gc-percent?volume=NAME}: as {@link AdminServer}'s, for one volume. */
    private void gcPercent(HttpExchange ex) throws IOException {
        io.pmcache.cache.Cache c = knobsOf(ex);
        if (!"GET".equals(ex.getRequestMethod())) {
            String body = new String(ex.getRequestBody().readNBytes(4096), StandardCharsets.UTF_8).trim();
            Integer value = AdminServer.parseGcPercent(body, ex.getRequestURI());
            if (value == null) {
                throw new IllegalArgumentException("give the new gc_percent as the body (e.g. 50)");
            }
            c.setGcPercent(value);
            log.info("gc_percent of {} set to {} through the admin endpoint", query(ex, "volume"), value);
        }
        reply(ex, 200, Map.of("gc_percent", c.gcPercent()));
    }

    /** {@code /writeback?volume=NAME}: as {@link AdminServer}'s, for one volume. */
    private void writeback(HttpExchange ex) throws IOException {
        io.pmcache.cache.Cache c = knobsOf(ex);
        if (!"GET".equals(ex.getRequestMethod())) {
            String body = new String(ex.getRequestBody().readNBytes(4096), StandardCharsets.UTF_8).trim();
            if (!(Json.parse(body) instanceof Map<?, ?> changes)) {
                throw new IllegalArgumentException("give a JSON object, e.g. {\"" + WritebackKnobs.TARGET + "\": 20}");
            }
            try {
                c.setWritebackSettings(WritebackKnobs.merge(c.writebackSettings(), changes));
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException(e.getMessage());
            }
        }
        reply(ex, 200, WritebackKnobs.toMap(c.writebackSettings()));
    }

    /** Prometheus text: every served volume's engine figures, labelled {@code volume}, and the JVM's. */
    private synchronized void metrics(HttpExchange ex) throws IOException {
        java.util.Set<String> served = new java.util.HashSet<>();
        for (String name : volumes.served()) {
            StatusSource s = volumes.status(name);
            if (s == null) {
                continue;
            }
            served.add(name);
            var have = onRegistry.get(name);
            if (have != null && have.getKey() != s) { // served again under the same name: its new cache's figures,
                // whose counters go on from the earlier caches' (VolumeControl#status)
                have.getValue().remove();
                have = null;
            }
            if (have == null) {
                onRegistry.put(name, Map.entry(s, Metrics.forVolume(registry, s, name)));
            }
        }
        onRegistry.entrySet().removeIf(e -> {
            if (!served.contains(e.getKey())) {
                e.getValue().getValue().remove();
                return true;
            }
            return false;
        });
        byte[] b = registry.scrape().getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", Metrics.contentType());
        ex.sendResponseHeaders(200, b.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(b);
        }
    }

    private void volumesRoute(HttpExchange ex) throws IOException {
        String path = ex.getRequestURI().getPath();
        if (path.equals("/volumes") || path.equals("/volumes/")) {
            reply(ex, 200, volumes.volumes());
            return;
        }
        if (!"POST".equals(ex.getRequestMethod())) {
            throw new IllegalArgumentException("use POST for " + path);
        }
        String body = new String(ex.getRequestBody().readNBytes(64 << 10), StandardCharsets.UTF_8);
        if (!(Json.parse(body) instanceof Map<?, ?> req) || !(req.get("name") instanceof String name)) {
            throw new IllegalArgumentException("give a JSON object with a \"name\"");
        }
        String message = switch (path) {
            case "/volumes/create" -> volumes.create(req);
            case "/volumes/remove" -> volumes.remove(name, Boolean.TRUE.equals(req.get("force")));
            case "/volumes/detach" -> volumes.detach(name);
            case "/volumes/attach" -> volumes.attach(name);
            default -> throw new IllegalArgumentException("unknown " + path
                    + "; try /volumes/create, /volumes/remove, /volumes/detach or /volumes/attach");
        };
        reply(ex, 200, Map.of("message", message));
    }

    @Override
    public void close() {
        http.stop(0);
        executor.shutdownNow();
        nbdSource.close();
    }
}
