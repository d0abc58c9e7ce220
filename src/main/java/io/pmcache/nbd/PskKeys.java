package io.pmcache.nbd;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The pre-shared keys of nbdkit's {@code --tls-psk} file (GnuTLS's format, what {@code psktool}
 * writes): one {@code username:hexkey} line per user, e.g.
 * {@code alice:f71c86d72e6d307f0b52c65523b58dbd9c97ac09b5d6e980058e27445f95deb8}.
 *
 * <p>Rules, checked line by line so that an error names the file and the line: the user name is
 * everything before the first {@code ':'} and is not empty (it is the TLS PSK identity the client
 * sends: libnbd's {@code nbds://USER@…}, QEMU's {@code username=}); the key is an even number of hex
 * digits, at least {@link #MIN_KEY_BYTES} bytes once decoded. Trailing white space (a CRLF file, a
 * stray blank) is ignored, as are empty lines and lines starting with {@code #}. A user defined twice
 * is an error: GnuTLS silently takes the first line, which hides a mistake.
 */
public final class PskKeys {
    /** Shortest key accepted (psktool writes 32 bytes by default; a shorter one is guessable). */
    static final int MIN_KEY_BYTES = 16;
    /** Longest PSK identity TLS can carry (RFC 4279: opaque identity<0..2^16-1>). */
    static final int MAX_USER_BYTES = 65535;

    private final Map<String, byte[]> keys;

    private PskKeys(Map<String, byte[]> keys) {
        this.keys = keys;
    }

    /**
     * Parses {@code lines} (the contents of {@code file}, which is named in every error). Throws
     * IOException "FILE:LINE: reason" for the first bad line, or when no key is left.
     */
    public static PskKeys parse(Path file, List<String> lines) throws IOException {
        Map<String, byte[]> keys = new LinkedHashMap<>();
        Map<String, Integer> lineOf = new LinkedHashMap<>();
        for (int i = 0; i < lines.size(); i++) {
            int no = i + 1;
            String line = lines.get(i).stripTrailing();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            int colon = line.indexOf(':');
            if (colon < 0) {
                throw bad(file, no, "no ':' (expected username:hexkey)");
            }
            String user = line.substring(0, colon);
            if (user.isEmpty()) {
                throw bad(file, no, "empty user name before ':'");
            }
            if (user.getBytes(StandardCharsets.UTF_8).length > MAX_USER_BYTES) {
                throw bad(file, no, "user name longer than " + MAX_USER_BYTES + " bytes");
            }
            byte[] key = hexKey(file, no, line.substring(colon + 1), colon + 2);
            Integer first = lineOf.putIfAbsent(user, no);
            if (first != null) {
                throw bad(file, no, "user '" + LogText.escape(user) + "' again (first on line " + first + ")");
            }
            keys.put(user, key);
        }
        if (keys.isEmpty()) {
            throw new IOException(file + ": no keys (expected username:hexkey lines, as psktool writes)");
        }
        return new PskKeys(Map.copyOf(keys));
    }

    private static byte[] hexKey(Path file, int no, String hex, int column) throws IOException {
        if (hex.isEmpty()) {
            throw bad(file, no, "empty key after ':'");
        }
        for (int i = 0; i < hex.length(); i++) {
            if (Character.digit(hex.charAt(i), 16) < 0) {
                throw bad(file, no, "column " + (column + i) + ": '" + LogText.escape(String.valueOf(hex.charAt(i)))
                        + "' is not a hex digit (the key is hex, as psktool writes it)");
            }
        }
        if (hex.length() % 2 != 0) {
            throw bad(file, no, "odd number of hex digits in the key (" + hex.length() + ")");
        }
        if (hex.length() / 2 < MIN_KEY_BYTES) {
            throw bad(file, no, "key of " + hex.length() / 2 + " bytes; at least " + MIN_KEY_BYTES
                    + " are needed (psktool -u USER -p FILE makes 32)");
        }
        return HexFormat.of().parseHex(hex);
    }

    private static IOException bad(Path file, int line, String why) {
        return new IOException(file + ":" + line + ": " + why);
    }

    /** The key of {@code user}, a copy; null if the file has no such user. */
    byte[] key(String user) {
        byte[] k = keys.get(user);
        return k != null ? k.clone() : null;
    }

    /** The user names, for logs. */
    public Set<String> users() {
        return keys.keySet();
    }

    @Override
    public String toString() {
        return keys.size() + (keys.size() == 1 ? " user" : " users");
    }
}
