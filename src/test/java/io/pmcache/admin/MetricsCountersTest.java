package io.pmcache.admin;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.pmcache.cache.CacheStatus;
import java.lang.reflect.RecordComponent;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * {@link CacheStatus#continuing} (a volume served again counts on from its earlier caches) adds up
 * exactly the figures {@link Metrics} exposes as counters: every {@code pmcache_*_total} series
 * doubles when a status continues one equal to it, and every other series (gauges) stays as the
 * newer cache has it. A counter added to one list and not the other fails here.
 */
class MetricsCountersTest {

    /** A status whose every number is 1 (the strings as a running cache has them). */
    private static CacheStatus ones() throws Exception {
        RecordComponent[] parts = CacheStatus.class.getRecordComponents();
        Class<?>[] types = new Class<?>[parts.length];
        Object[] values = new Object[parts.length];
        for (int i = 0; i < parts.length; i++) {
            Class<?> t = parts[i].getType();
            types[i] = t;
            values[i] = t == long.class ? (Object) 1L : t == int.class ? (Object) 1 : t == double.class ? (Object) 1.0
                    : t == boolean.class ? (Object) Boolean.TRUE : switch (parts[i].getName()) {
                        case "cacheMode" -> "writeback";
                        case "writebackReason" -> "controller";
                        case "failure" -> null;
                        default -> "1";
                    };
        }
        return CacheStatus.class.getDeclaredConstructor(types).newInstance(values);
    }

    /** The pmcache series of a scrape: "name{labels}" to value. */
    private static Map<String, Double> series(CacheStatus status) {
        StatusSource src = new StatusSource(() -> status, null);
        try {
            Map<String, Double> out = new TreeMap<>();
            for (String line : new Metrics(src).scrape().split("\n")) {
                if (line.startsWith("pmcache_")) {
                    int space = line.lastIndexOf(' ');
                    String v = line.substring(space + 1);
                    out.put(line.substring(0, space), switch (v) {
                        case "+Inf" -> Double.POSITIVE_INFINITY;
                        case "-Inf" -> Double.NEGATIVE_INFINITY;
                        default -> Double.parseDouble(v);
                    });
                }
            }
            return out;
        } finally {
            src.close();
        }
    }

    @Test
    void continuingAddsUpExactlyTheCountersOfTheMetrics() throws Exception {
        CacheStatus one = ones();
        Map<String, Double> alone = series(one);
        Map<String, Double> continued = series(one.continuing(one));
        assertThat(continued.keySet()).isEqualTo(alone.keySet());
        int counters = 0;
        for (Map.Entry<String, Double> s : alone.entrySet()) {
            String name = s.getKey().replaceAll("\\{.*", "");
            double was = s.getValue();
            if (name.endsWith("_total")) {
                counters++;
                assertThat(was).as(name).isPositive();
                assertThat(continued.get(s.getKey())).as("counter %s", s.getKey()).isCloseTo(2 * was, within(1e-12));
            } else {
                assertThat(continued.get(s.getKey())).as("gauge %s", s.getKey()).isEqualTo(was);
            }
        }
        assertThat(counters).as("engine counters exposed").isGreaterThanOrEqualTo(39);
    }
}
