package io.pmcache.admin;

import io.pmcache.cache.WritebackSettings;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The writeback pacing knobs as the admin endpoint's JSON ({@code GET/POST /writeback}):
 * {@code target_percent}, {@code min_rate} and {@code max_rate} (bytes per second; max 0 = no
 * limit), {@code idle_delay_ms}, {@code full_speed}. A POST names any subset; the rest keep their
 * values, and the whole is validated by {@link WritebackSettings}.
 */
public final class WritebackKnobs {
    public static final String TARGET = "target_percent";
    public static final String MIN_RATE = "min_rate";
    public static final String MAX_RATE = "max_rate";
    public static final String IDLE_DELAY = "idle_delay_ms";
    public static final String FULL_SPEED = "full_speed";

    private WritebackKnobs() {
    }

    public static Map<String, Object> toMap(WritebackSettings s) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put(TARGET, s.targetPercent());
        m.put(MIN_RATE, s.minRate());
        m.put(MAX_RATE, s.maxRate());
        m.put(IDLE_DELAY, s.idleDelayMillis());
        m.put(FULL_SPEED, s.fullSpeed());
        return m;
    }

    /** {@code s} with the knobs named in {@code changes}; IllegalArgumentException for unknown or bad ones. */
    public static WritebackSettings merge(WritebackSettings s, Map<?, ?> changes) {
        if (changes.isEmpty()) {
            throw new IllegalArgumentException("name at least one knob: " + TARGET + ", " + MIN_RATE + ", "
                    + MAX_RATE + ", " + IDLE_DELAY + " or " + FULL_SPEED);
        }
        for (Map.Entry<?, ?> c : changes.entrySet()) {
            String k = String.valueOf(c.getKey());
            Object v = c.getValue();
            s = switch (k) {
                case TARGET -> s.withTargetPercent(Math.toIntExact(number(k, v)));
                case MIN_RATE -> s.withMinRate(number(k, v));
                case MAX_RATE -> s.withMaxRate(number(k, v));
                case IDLE_DELAY -> s.withIdleDelayMillis(number(k, v));
                case FULL_SPEED -> {
                    if (!(v instanceof Boolean b)) {
                        throw new IllegalArgumentException(k + " must be true or false, got " + v);
                    }
                    yield s.withFullSpeed(b);
                }
                default -> throw new IllegalArgumentException("unknown writeback knob '" + k + "'; known: " + TARGET
                        + ", " + MIN_RATE + ", " + MAX_RATE + ", " + IDLE_DELAY + ", " + FULL_SPEED);
            };
        }
        return s;
    }

    private static long number(String k, Object v) {
        if (v instanceof Long l) {
            if (k.equals(TARGET) && (l > Integer.MAX_VALUE || l < Integer.MIN_VALUE)) {
                throw new IllegalArgumentException(k + " out of range: " + l);
            }
            return l;
        }
        throw new IllegalArgumentException(k + " must be a whole number, got " + v);
    }
}
