package io.pmcache.nbd;

/**
 * Makes text a client sent (export names, queries) safe to put in a log line or an error message:
 * a client must not be able to start a new log line ({@code "x\n... ERROR Cache - FAKE"}), move the
 * cursor, recolour a terminal or reorder what an operator reads.
 *
 * <p>Escaped: the backslash itself (so an escape in the output always came from this method), C0
 * controls and DEL ({@code \n}, {@code \r}, {@code \t}, else {@code \}{@code u00XX}), C1 controls,
 * the Unicode line and paragraph separators, bidirectional overrides and isolates, and unpaired
 * surrogates. Text longer than {@link #MAX_CHARS} is cut and says how much was left out.
 */
final class LogText {
    /** Longest client text shown; a name of the spec's 4096-byte maximum is cut to this. */
    static final int MAX_CHARS = 256;

    private LogText() {
    }

    static String escape(String s) {
        StringBuilder out = new StringBuilder(Math.min(s.length(), MAX_CHARS) + 16);
        int n = Math.min(s.length(), MAX_CHARS);
        if (n < s.length() && Character.isHighSurrogate(s.charAt(n - 1))) {
            n--; // do not cut a pair in two
        }
        for (int i = 0; i < n; i++) {
            char c = s.charAt(i);
            switch (c) {
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (unsafe(s, i, c)) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        if (s.length() > n) {
            out.append("...(").append(s.length() - n).append(" more chars)");
        }
        return out.toString();
    }

    private static boolean unsafe(String s, int i, char c) {
        if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
            return true; // C0, DEL, C1
        }
        if (c == '\u2028' || c == '\u2029' || (c >= '\u202a' && c <= '\u202e') || (c >= '\u2066' && c <= '\u2069')
                || c == '\u200e' || c == '\u200f' || c == '\u061c') {
            return true; // line/paragraph separators, bidi embeddings, overrides, isolates, marks
        }
        if (Character.isHighSurrogate(c)) {
            return i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1));
        }
        if (Character.isLowSurrogate(c)) {
            return i == 0 || !Character.isHighSurrogate(s.charAt(i - 1));
        }
        return false;
    }
}
