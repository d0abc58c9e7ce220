package io.pmcache.cli;

import java.io.PrintWriter;
import java.util.List;
import java.util.Map;

/**
 * Prints a status document (nested maps from JSON) as an aligned two-column table: one section per
 * nested object, byte figures also in binary units, nanosecond figures also in ms.
 */
final class Table {
    private Table() {
    }

    static void print(PrintWriter out, Map<?, ?> doc) {
        section(out, doc, "");
        out.flush();
    }

    private static void section(PrintWriter out, Map<?, ?> map, String indent) {
        int width = 0;
        for (Object k : map.keySet()) {
            width = Math.max(width, String.valueOf(k).length());
        }
        for (Map.Entry<?, ?> e : map.entrySet()) {
            String key = String.valueOf(e.getKey());
            Object v = e.getValue();
            if (v instanceof Map<?, ?> sub) {
                out.println(indent + key + ":");
                section(out, sub, indent + "  ");
            } else if (v instanceof List<?> list && !list.isEmpty() && !(list.getFirst() instanceof Number)) {
                out.println(indent + key + ":");
                for (Object item : list) {
                    out.println(indent + "  - " + item);
                }
            } else {
                out.println(indent + pad(key, width) + "  " + value(key, v));
            }
        }
    }

    private static String pad(String s, int w) {
        return s + " ".repeat(Math.max(0, w - s.length()));
    }

    static String value(String key, Object v) {
        if (v == null) {
            return "-";
        }
        if (v instanceof Number n && !(v instanceof Double)) {
            long l = n.longValue();
            if ((key.endsWith("bytes") || key.endsWith("_size") || key.equals("bytes_per_second")
                    || key.endsWith("bytes_per_second")) && l >= 1024) {
                return l + " (" + SizeConverter.human(l) + (key.endsWith("per_second") ? "/s" : "") + ")";
            }
            if (key.endsWith("nanos")) {
                return l + " (" + String.format(java.util.Locale.ROOT, "%.1f ms", l / 1e6) + ")";
            }
            if (key.endsWith("millis") && key.contains("created")) {
                return l + " (" + java.time.Instant.ofEpochMilli(l) + ")";
            }
        }
        if (v instanceof Double d) {
            return String.format(java.util.Locale.ROOT, "%.2f", d);
        }
        if (v instanceof List<?> l && l.isEmpty()) {
            return "none";
        }
        String s = String.valueOf(v);
        return s.isEmpty() ? "-" : s;
    }
}
