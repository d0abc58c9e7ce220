package io.pmcache.admin;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import io.pmcache.cache.WritebackSettings;
import java.util.function.Consumer;
import java.util.function.IntConsumer;
import java.util.function.Supplier;
import java.util.function.IntSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The admin HTTP endpoint of {@code pmcache serve --admin}:
 * <ul>
 *   <li>{@code GET /metrics}: Prometheus text exposition ({@link Metrics});</li>
 *   <li>{@code GET /status}: the figures as JSON ({@link StatusSource#statusDocument()});</li>
 *   <li>{@code GET /gc-percent}: {@code {"gc_percent": N}}; {@code POST} or {@code PUT} with a body
 *       {@code N} (or {@code {"gc_percent": N}}) changes it (0..90; 400 otherwise).</li>
 *   <li>{@code GET /writeback}: the writeback pacing knobs ({@link WritebackKnobs}); {@code POST}
 *       or {@code PUT} a JSON object naming some of them changes those (400 when invalid).
 *       Present only when the server was started with them.</li>
 * </ul>
 * It has no authentication: it binds to loopback unless the operator names another address.
 */
public final class AdminServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(AdminServer.class);

    private final HttpServer http;
    private final ExecutorService executor;
    private final StatusSource src;
    private final Metrics metrics;
    private final IntSupplier gcPercent;
    private final IntConsumer setGcPercent;
    private Supplier<WritebackSettings> writeback;
    private Consumer<WritebackSettings> setWriteback;

    private AdminServer(HttpServer http, StatusSource src, IntSupplier gcPercent, IntConsumer setGcPercent) {
        this.http = http;
        this.src = src;
        this.metrics = new Metrics(src);
        this.gcPercent = gcPercent;
        this.setGcPercent = setGcPercent;
        this.executor = Executors.newVirtualThreadPerTaskExecutor();
        http.setExecutor(executor);
        http.createContext("/metrics", ex -> handle(ex, this::metrics));
        http.createContext("/status", ex -> handle(ex, this::status));
        http.createContext("/gc-percent", ex -> handle(ex, this::gcPercent));
        http.createContext("/", ex -> handle(ex, e -> reply(e, 404, "text/plain",
                "not found; try /metrics, /status or /gc-percent\n")));
    }

    /**
     * Binds {@code address} and starts serving.
     *
     * @param gcPercent    reads the knob
     * @param setGcPercent changes it; throws {@link IllegalArgumentException} when out of range
     */
    public static AdminServer start(InetSocketAddress address, StatusSource src, IntSupplier gcPercent,
                                    IntConsumer setGcPercent) throws IOException {
        HttpServer http;
        try {
            http = HttpServer.create(address, 16);
        } catch (java.net.BindException e) {
            throw new IOException("cannot bind the admin endpoint to " + address + ": " + e.getMessage()
                    + " (is another pmcache or program using that port?)");
        }
        AdminServer s = new AdminServer(http, src, gcPercent, setGcPercent);
        http.start();
        log.info("admin endpoint on {} (/metrics, /status, /gc-percent)", s.url());
        return s;
    }

    /**
     * {@link #start(InetSocketAddress, StatusSource, IntSupplier, IntConsumer)} plus
     * {@code /writeback}: {@code setWriteback} throws {@link IllegalArgumentException} for invalid
     * settings.
     */
    public static AdminServer start(InetSocketAddress address, StatusSource src, IntSupplier gcPercent,
                                    IntConsumer setGcPercent, Supplier<WritebackSettings> writeback,
                                    Consumer<WritebackSettings> setWriteback) throws IOException {
        AdminServer s = start(address, src, gcPercent, setGcPercent);
        s.writeback = writeback;
        s.setWriteback = setWriteback;
        s.http.createContext("/writeback", ex -> s.handle(ex, s::writeback));
        return s;
    }

    /**
     * Adds {@code /cache-mode}, {@code /sequential-cutoff} and {@code /invalidate} for {@code cache}
     * (see {@link CacheModeEndpoint}).
     */
    public AdminServer withCacheModes(io.pmcache.cache.Cache cache) {
        CacheModeEndpoint ep = new CacheModeEndpoint(cache, src::invalidate);
        http.createContext("/cache-mode", ex -> handle(ex, ep::cacheMode));
        http.createContext("/sequential-cutoff", ex -> handle(ex, ep::sequentialCutoff));
        http.createContext("/invalidate", ex -> handle(ex, ep::invalidate));
        return this;
    }

    /** The bound address (the real port when 0 was asked for). */
    public InetSocketAddress address() {
        return http.getAddress();
    }

    public String url() {
        InetSocketAddress a = address();
        String host = a.getAddress().getHostAddress();
        return "http://" + (host.contains(":") ? "[" + host + "]" : host) + ":" + a.getPort();
    }

    /**
     * Parses {@code HOST:PORT}, {@code [V6]:PORT} or a bare {@code PORT} (which means loopback,
     * 127.0.0.1); also the URL the server logs, {@code http://HOST:PORT} (a path after it is
     * ignored).
     */
    public static InetSocketAddress parseAddress(String spec) {
        String s = spec.trim();
        if (s.regionMatches(true, 0, "http://", 0, 7)) {
            s = s.substring(7);
            int slash = s.indexOf('/');
            s = slash >= 0 ? s.substring(0, slash) : s;
        } else if (s.contains("://")) {
            throw new IllegalArgumentException("'" + spec + "': the admin endpoint speaks plain http:// (or give "
                    + "HOST:PORT)");
        }
        String host = "127.0.0.1";
        String port = s;
        int colon = s.lastIndexOf(':');
        if (colon >= 0) {
            host = s.substring(0, colon).replaceAll("^\\[|\\]$", "");
            port = s.substring(colon + 1);
            if (host.isEmpty()) {
                host = "127.0.0.1";
            }
        }
        int p;
        try {
            p = Integer.parseInt(port);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + spec + "' is not HOST:PORT or PORT (e.g. 127.0.0.1:9110)");
        }
        if (p < 0 || p > 65535) {
            throw new IllegalArgumentException("port " + p + " in '" + spec + "' is not 0..65535");
        }
        return new InetSocketAddress(host, p);
    }

    @FunctionalInterface
    private interface Handler {
        void handle(HttpExchange ex) throws IOException;
    }

    private void handle(HttpExchange ex, Handler h) {
        try (ex) {
            h.handle(ex);
        } catch (IOException e) {
            log.debug("admin request {} {} failed: {}", ex.getRequestMethod(), ex.getRequestURI(), e.toString());
        } catch (RuntimeException e) {
            log.warn("admin request {} {} failed: {}", ex.getRequestMethod(), ex.getRequestURI(), e.toString());
            try {
                reply(ex, 500, "text/plain", "internal error: " + e + "\n");
            } catch (IOException | RuntimeException ignored) {
                // the response may have started already
            }
        }
    }

    static void reply(HttpExchange ex, int code, String type, String body) throws IOException {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", type);
        boolean head = "HEAD".equals(ex.getRequestMethod());
        ex.sendResponseHeaders(code, head ? -1 : b.length == 0 ? -1 : b.length);
        if (!head && b.length > 0) {
            try (OutputStream out = ex.getResponseBody()) {
                out.write(b);
            }
        }
    }

    static boolean isGet(HttpExchange ex) {
        return "GET".equals(ex.getRequestMethod()) || "HEAD".equals(ex.getRequestMethod());
    }

    static void methodNotAllowed(HttpExchange ex, String allow) throws IOException {
        ex.getResponseHeaders().set("Allow", allow);
        reply(ex, 405, "text/plain", "method " + ex.getRequestMethod() + " not allowed; use " + allow + "\n");
    }

    private void metrics(HttpExchange ex) throws IOException {
        if (!isGet(ex)) {
            methodNotAllowed(ex, "GET");
            return;
        }
        reply(ex, 200, Metrics.contentType(), metrics.scrape());
    }

    private void status(HttpExchange ex) throws IOException {
        if (!isGet(ex)) {
            methodNotAllowed(ex, "GET");
            return;
        }
        reply(ex, 200, "application/json", Json.write(src.statusDocument()));
    }

    private void gcPercent(HttpExchange ex) throws IOException {
        String method = ex.getRequestMethod();
        if (isGet(ex)) {
            reply(ex, 200, "application/json", Json.write(Map.of("gc_percent", gcPercent.getAsInt())));
            return;
        }
        if (!"POST".equals(method) && !"PUT".equals(method)) {
            methodNotAllowed(ex, "GET, POST, PUT");
            return;
        }
        String body = new String(ex.getRequestBody().readNBytes(4096), StandardCharsets.UTF_8).trim();
        Integer value = parseGcPercent(body, ex.getRequestURI());
        if (value == null) {
            reply(ex, 400, "application/json", Json.write(Map.of("error",
                    "give the new gc_percent as the body (e.g. 50, or {\"gc_percent\": 50})")));
            return;
        }
        int old = gcPercent.getAsInt();
        try {
            setGcPercent.accept(value);
        } catch (IllegalArgumentException e) {
            reply(ex, 400, "application/json", Json.write(Map.of("error", e.getMessage())));
            return;
        }
        src.invalidate();
        log.info("gc_percent changed from {} to {} through the admin endpoint", old, value);
        reply(ex, 200, "application/json", Json.write(Map.of("gc_percent", gcPercent.getAsInt())));
    }

    private void writeback(HttpExchange ex) throws IOException {
        if (isGet(ex)) {
            reply(ex, 200, "application/json", Json.write(WritebackKnobs.toMap(writeback.get())));
            return;
        }
        if (!"POST".equals(ex.getRequestMethod()) && !"PUT".equals(ex.getRequestMethod())) {
            methodNotAllowed(ex, "GET, POST, PUT");
            return;
        }
        String body = new String(ex.getRequestBody().readNBytes(4096), StandardCharsets.UTF_8).trim();
        WritebackSettings old = writeback.get();
        WritebackSettings now;
        try {
            if (!(Json.parse(body) instanceof Map<?, ?> changes)) {
                throw new IllegalArgumentException("give a JSON object, e.g. {\"" + WritebackKnobs.TARGET + "\": 20}");
            }
            now = WritebackKnobs.merge(old, changes);
            setWriteback.accept(now);
        } catch (IllegalArgumentException | ArithmeticException e) {
            reply(ex, 400, "application/json", Json.write(Map.of("error", String.valueOf(e.getMessage()))));
            return;
        }
        src.invalidate();
        log.info("writeback pacing changed from {} to {} through the admin endpoint", old, now);
        reply(ex, 200, "application/json", Json.write(WritebackKnobs.toMap(writeback.get())));
    }

    static Integer parseGcPercent(String body, URI uri) {
        String v = body;
        if (v.isEmpty() && uri.getQuery() != null) {
            for (String kv : uri.getQuery().split("&")) {
                if (kv.startsWith("value=")) {
                    v = kv.substring(6);
                }
            }
        }
        if (v.startsWith("{")) {
            try {
                Object o = Json.parse(v);
                if (o instanceof Map<?, ?> m && m.get("gc_percent") instanceof Long l) {
                    return l > Integer.MAX_VALUE || l < Integer.MIN_VALUE ? null : (int) (long) l;
                }
            } catch (IllegalArgumentException e) {
                return null;
            }
            return null;
        }
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            return null;
        }
    }

    @Override
    public void close() {
        http.stop(0);
        executor.shutdownNow();
        src.close();
    }
}
