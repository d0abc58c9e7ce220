package io.pmcache.admin;

import com.sun.net.httpserver.HttpExchange;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheMode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The admin endpoint's cache-mode resources.
 * <ul>
 *   <li>{@code GET /cache-mode}: {@code {"cache_mode": "writeback", "sequential_cutoff": 4194304}}.</li>
 *   <li>{@code POST /cache-mode} with {@code writethrough} or {@code {"cache_mode": "writethrough"}}:
 *       switches ({@link Cache#setCacheMode}). Leaving writeback drains first, which may take long:
 *       the answer is a stream of JSON lines, {@code {"dirty_bytes": N}} about every 200 ms while
 *       writeback drains, then {@code {"cache_mode": "..."}} or {@code {"error": "..."}}.</li>
 *   <li>{@code POST /sequential-cutoff} with bytes or {@code {"sequential_cutoff": N}} (0: off).</li>
 *   <li>{@code POST /invalidate}: drops the clean cached data; {@code {"invalidated_bytes": N}}.</li>
 * </ul>
 */
final class CacheModeEndpoint {
    private static final Logger log = LoggerFactory.getLogger(CacheModeEndpoint.class);
    private static final long PROGRESS_NANOS = 200_000_000L;
    private final Cache cache;
    private final Runnable changed;

    CacheModeEndpoint(Cache cache, Runnable changed) {
        this.cache = cache;
        this.changed = changed;
    }

    private Map<String, Object> state() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("cache_mode", cache.cacheMode().label());
        m.put("sequential_cutoff", cache.sequentialCutoff());
        return m;
    }

    void cacheMode(HttpExchange ex) throws IOException {
        if (AdminServer.isGet(ex)) {
            AdminServer.reply(ex, 200, "application/json", Json.write(state()));
            return;
        }
        if (!isPost(ex)) {
            AdminServer.methodNotAllowed(ex, "GET, POST, PUT");
            return;
        }
        CacheMode mode;
        try {
            mode = CacheMode.parse(String.valueOf(value(body(ex), "cache_mode")));
        } catch (IllegalArgumentException e) {
            AdminServer.reply(ex, 400, "application/json", Json.write(Map.of("error", String.valueOf(e.getMessage()))));
            return;
        }
        CacheMode old = cache.cacheMode();
        ex.getResponseHeaders().set("Content-Type", "application/x-ndjson");
        ex.sendResponseHeaders(200, 0); // chunked: progress lines, then the outcome
        try (OutputStream out = ex.getResponseBody()) {
            long[] last = {0};
            IOException[] clientGone = {null};
            try {
                cache.setCacheMode(mode, left -> {
                    long now = System.nanoTime();
                    if (clientGone[0] == null && now - last[0] >= PROGRESS_NANOS) {
                        last[0] = now;
                        try {
                            line(out, Map.of("dirty_bytes", left));
                        } catch (IOException gone) {
                            clientGone[0] = gone; // the switch goes on; nobody to tell
                        }
                    }
                });
            } catch (IOException | RuntimeException e) {
                log.warn("cache mode {} -> {} through the admin endpoint failed: {}", old.label(), mode.label(),
                        e.toString());
                line(out, Map.of("error", "the cache mode is " + cache.cacheMode().label() + ": " + e.getMessage()));
                return;
            }
            changed.run();
            log.info("cache mode changed from {} to {} through the admin endpoint", old.label(), mode.label());
            if (clientGone[0] == null) {
                line(out, state());
            }
        }
    }

    void sequentialCutoff(HttpExchange ex) throws IOException {
        if (AdminServer.isGet(ex)) {
            AdminServer.reply(ex, 200, "application/json", Json.write(state()));
            return;
        }
        if (!isPost(ex)) {
            AdminServer.methodNotAllowed(ex, "GET, POST, PUT");
            return;
        }
        long old = cache.sequentialCutoff();
        try {
            Object v = value(body(ex), "sequential_cutoff");
            long bytes;
            try {
                bytes = v instanceof Long l ? l : Long.parseLong(String.valueOf(v).strip());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("not a number of bytes: " + v); // not the JDK's wording
            }
            cache.setSequentialCutoff(bytes);
        } catch (IllegalArgumentException e) {
            AdminServer.reply(ex, 400, "application/json", Json.write(Map.of("error",
                    "give the cutoff in bytes (0: off), e.g. 4194304 or {\"sequential_cutoff\": 4194304}: "
                            + e.getMessage())));
            return;
        }
        changed.run();
        log.info("sequential cutoff changed from {} to {} bytes through the admin endpoint", old,
                cache.sequentialCutoff());
        AdminServer.reply(ex, 200, "application/json", Json.write(state()));
    }

    void invalidate(HttpExchange ex) throws IOException {
        if (!isPost(ex)) {
            AdminServer.methodNotAllowed(ex, "POST");
            return;
        }
        long dropped;
        try {
            dropped = cache.invalidate();
        } catch (IOException e) {
            AdminServer.reply(ex, 500, "application/json", Json.write(Map.of("error", String.valueOf(e.getMessage()))));
            return;
        }
        changed.run();
        AdminServer.reply(ex, 200, "application/json", Json.write(Map.of("invalidated_bytes", dropped)));
    }

    private static boolean isPost(HttpExchange ex) {
        return "POST".equals(ex.getRequestMethod()) || "PUT".equals(ex.getRequestMethod());
    }

    private static String body(HttpExchange ex) throws IOException {
        return new String(ex.getRequestBody().readNBytes(4096), StandardCharsets.UTF_8).strip();
    }

    /** A bare value, or the member {@code key} of a JSON object. */
    private static Object value(String body, String key) {
        if (body.startsWith("{")) {
            if (Json.parse(body) instanceof Map<?, ?> m && m.get(key) != null) {
                return m.get(key);
            }
            throw new IllegalArgumentException("no \"" + key + "\" in " + body);
        }
        if (body.isEmpty()) {
            throw new IllegalArgumentException("empty body: give the new " + key);
        }
        return body;
    }

    private static void line(OutputStream out, Map<String, ?> m) throws IOException {
        // one line per document: the pretty printer's line breaks go (a newline inside a string is escaped)
        out.write((Json.write(m).replace("\n", "") + "\n")
                .getBytes(StandardCharsets.UTF_8));
        out.flush();
    }
}
