package io.pmcache.admin;

import com.fasterxml.jackson.jr.ob.JSON;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.reflect.RecordComponent;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * pmcache's JSON conventions on top of jackson-jr: documents are maps, lists, strings, numbers,
 * booleans and null; records are written as maps with snake_case keys ({@link #recordToMap});
 * parsed integers are always {@link Long} and other numbers {@link Double}, maps keep their order.
 */
public final class Json {
    private static final JSON PRETTY = JSON.std
            .with(JSON.Feature.PRETTY_PRINT_OUTPUT, JSON.Feature.WRITE_NULL_PROPERTIES)
            .without(JSON.Feature.FAIL_ON_UNKNOWN_TYPE_WRITE);

    private Json() {
    }

    /** Pretty-printed JSON of {@code value}, ending with a newline. */
    public static String write(Object value) {
        try {
            return PRETTY.asString(records(value)) + "\n";
        } catch (IOException e) {
            throw new UncheckedIOException(e); // writing to a string fails only on a type it cannot write
        }
    }

    /**
     * Parses a JSON document.
     *
     * @throws IllegalArgumentException when {@code text} is not JSON
     */
    public static Object parse(String text) {
        try {
            return normalize(JSON.std.anyFrom(text));
        } catch (IOException e) {
            throw new IllegalArgumentException("not JSON: " + e.getMessage(), e);
        }
    }

    /** A record as an ordered map whose keys are the component names in snake_case. */
    public static Map<String, Object> recordToMap(Record r) {
        Map<String, Object> map = new LinkedHashMap<>();
        for (RecordComponent c : r.getClass().getRecordComponents()) {
            try {
                map.put(snake(c.getName()), c.getAccessor().invoke(r));
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException(e);
            }
        }
        return map;
    }

    /** {@code readPartialHits} -> {@code read_partial_hits}. */
    public static String snake(String camel) {
        StringBuilder b = new StringBuilder();
        for (char c : camel.toCharArray()) {
            if (Character.isUpperCase(c)) {
                b.append('_').append(Character.toLowerCase(c));
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }

    /** Records (at any depth) as snake_case maps, the form pmcache's documents use. */
    private static Object records(Object v) {
        if (v instanceof Record r) {
            return records(recordToMap(r));
        }
        if (v instanceof Map<?, ?> m) {
            Map<String, Object> out = new LinkedHashMap<>();
            m.forEach((k, x) -> out.put(String.valueOf(k), records(x)));
            return out;
        }
        if (v instanceof List<?> l) {
            List<Object> out = new ArrayList<>(l.size());
            l.forEach(x -> out.add(records(x)));
            return out;
        }
        return v;
    }

    /** Integers as Long, other numbers as Double, at any depth. */
    private static Object normalize(Object v) {
        return switch (v) {
            case Map<?, ?> m -> {
                Map<String, Object> out = new LinkedHashMap<>();
                m.forEach((k, x) -> out.put(String.valueOf(k), normalize(x)));
                yield out;
            }
            case List<?> l -> {
                List<Object> out = new ArrayList<>(l.size());
                l.forEach(x -> out.add(normalize(x)));
                yield out;
            }
            case Object[] a -> normalize(List.of(a));
            case Integer i -> i.longValue();
            case Short s -> s.longValue();
            case java.math.BigInteger b -> b.longValue();
            case Float f -> f.doubleValue();
            case java.math.BigDecimal d -> d.doubleValue();
            case null, default -> v;
        };
    }
}
