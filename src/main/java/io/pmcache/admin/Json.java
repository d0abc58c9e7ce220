package io.pmcache.admin;

import java.lang.reflect.RecordComponent;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The little JSON pmcache needs: writing maps, lists, records, strings, numbers and booleans, and
 * reading it back into {@link LinkedHashMap}s, {@link List}s, {@link String}s, {@link Long}s or
 * {@link Double}s, {@link Boolean}s and null. Not a general-purpose library; enough for
 * {@code /status} and {@code pmcache status}.
 */
public final class Json {
    private Json() {
    }

    /** Pretty-printed JSON of {@code value} (2-space indent). */
    public static String write(Object value) {
        StringBuilder b = new StringBuilder();
        write(b, value, 0);
        return b.append('\n').toString();
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

    private static void write(StringBuilder b, Object v, int indent) {
        if (v == null) {
            b.append("null");
        } else if (v instanceof Record r) {
            write(b, recordToMap(r), indent);
        } else if (v instanceof Map<?, ?> map) {
            if (map.isEmpty()) {
                b.append("{}");
                return;
            }
            b.append("{\n");
            int i = 0;
            for (Map.Entry<?, ?> e : map.entrySet()) {
                b.append("  ".repeat(indent + 1));
                string(b, String.valueOf(e.getKey()));
                b.append(": ");
                write(b, e.getValue(), indent + 1);
                b.append(++i < map.size() ? ",\n" : "\n");
            }
            b.append("  ".repeat(indent)).append('}');
        } else if (v instanceof List<?> list) {
            b.append('[');
            for (int i = 0; i < list.size(); i++) {
                if (i > 0) {
                    b.append(", ");
                }
                write(b, list.get(i), indent + 1);
            }
            b.append(']');
        } else if (v instanceof Double d) {
            b.append(d.isNaN() || d.isInfinite() ? "null" : String.valueOf(d));
        } else if (v instanceof Float f) {
            write(b, f.doubleValue(), indent);
        } else if (v instanceof Number || v instanceof Boolean) {
            b.append(v);
        } else {
            string(b, v.toString());
        }
    }

    private static void string(StringBuilder b, String s) {
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        b.append('"');
    }

    /** Parses JSON text; throws {@link IllegalArgumentException} on malformed input. */
    public static Object parse(String text) {
        Parser p = new Parser(text);
        Object v = p.value();
        p.ws();
        if (p.i != text.length()) {
            throw p.fail("trailing characters");
        }
        return v;
    }

    private static final class Parser {
        final String s;
        int i;

        Parser(String s) {
            this.s = s;
        }

        IllegalArgumentException fail(String what) {
            return new IllegalArgumentException("malformed JSON at character " + i + ": " + what);
        }

        void ws() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
                i++;
            }
        }

        char peek() {
            ws();
            if (i >= s.length()) {
                throw fail("unexpected end");
            }
            return s.charAt(i);
        }

        void expect(char c) {
            if (peek() != c) {
                throw fail("expected '" + c + "'");
            }
            i++;
        }

        Object value() {
            char c = peek();
            switch (c) {
                case '{' -> {
                    i++;
                    Map<String, Object> map = new LinkedHashMap<>();
                    if (peek() == '}') {
                        i++;
                        return map;
                    }
                    do {
                        if (peek() != '"') {
                            throw fail("expected a key");
                        }
                        String k = str();
                        expect(':');
                        map.put(k, value());
                    } while (comma());
                    expect('}');
                    return map;
                }
                case '[' -> {
                    i++;
                    List<Object> list = new ArrayList<>();
                    if (peek() == ']') {
                        i++;
                        return list;
                    }
                    do {
                        list.add(value());
                    } while (comma());
                    expect(']');
                    return list;
                }
                case '"' -> {
                    return str();
                }
                default -> {
                    if (s.startsWith("true", i)) {
                        i += 4;
                        return Boolean.TRUE;
                    }
                    if (s.startsWith("false", i)) {
                        i += 5;
                        return Boolean.FALSE;
                    }
                    if (s.startsWith("null", i)) {
                        i += 4;
                        return null;
                    }
                    return number();
                }
            }
        }

        boolean comma() {
            if (peek() == ',') {
                i++;
                return true;
            }
            return false;
        }

        String str() {
            expect('"');
            StringBuilder b = new StringBuilder();
            while (true) {
                if (i >= s.length()) {
                    throw fail("unterminated string");
                }
                char c = s.charAt(i++);
                if (c == '"') {
                    return b.toString();
                }
                if (c == '\\') {
                    if (i >= s.length()) {
                        throw fail("unterminated escape");
                    }
                    char e = s.charAt(i++);
                    switch (e) {
                        case 'n' -> b.append('\n');
                        case 'r' -> b.append('\r');
                        case 't' -> b.append('\t');
                        case 'b' -> b.append('\b');
                        case 'f' -> b.append('\f');
                        case 'u' -> {
                            if (i + 4 > s.length()) {
                                throw fail("short \\u escape");
                            }
                            b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                            i += 4;
                        }
                        default -> b.append(e);
                    }
                } else {
                    b.append(c);
                }
            }
        }

        Object number() {
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) {
                i++;
            }
            String n = s.substring(start, i);
            if (n.isEmpty()) {
                throw fail("unexpected character '" + s.charAt(start) + "'");
            }
            try {
                if (n.contains(".") || n.contains("e") || n.contains("E")) {
                    return Double.parseDouble(n);
                }
                return Long.parseLong(n);
            } catch (NumberFormatException e) {
                throw fail("bad number '" + n + "'");
            }
        }
    }
}
