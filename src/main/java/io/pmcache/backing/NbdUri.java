package io.pmcache.backing;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;
import java.util.regex.Pattern;

/**
 * An NBD export's address, as libnbd's {@code nbd_connect_uri} spells it (the NBD URI
 * specification, {@code doc/uri.md} of NetworkBlockDevice/nbd):
 * <ul>
 *   <li>{@code nbd://host[:port][/export]}: TCP, port 10809 by default;</li>
 *   <li>{@code nbd+unix:///[export]?socket=PATH}: a unix socket, no host.</li>
 * </ul>
 * The export name is the path without its leading {@code /}, percent-decoded ({@code nbd://h} and
 * {@code nbd://h/} both name the empty, default export). {@code nbds://} and {@code nbds+unix://}
 * (TLS) and {@code nbd+vsock://} are refused with a message saying so; so is any query parameter
 * but {@code socket}, which this client would otherwise silently ignore.
 *
 * @param text       the URI as given (for messages)
 * @param exportName the export to ask for
 * @param host       TCP host, null for a unix socket
 * @param port       TCP port, 0 for a unix socket
 * @param socket     the unix socket's path, null for TCP
 */
public record NbdUri(String text, String exportName, String host, int port, Path socket) {

    public static final int DEFAULT_PORT = 10809;
    private static final Pattern SCHEME = Pattern.compile("^[A-Za-z][A-Za-z0-9+.-]*://.*", Pattern.DOTALL);

    /** True when {@code spec} is written as a URI ({@code scheme://...}) rather than a path. */
    public static boolean isUri(String spec) {
        return SCHEME.matcher(spec).matches();
    }

    /** Parses an NBD URI; {@link IllegalArgumentException} naming the URI and what is wrong. */
    public static NbdUri parse(String text) {
        URI u;
        try {
            u = new URI(text);
        } catch (URISyntaxException e) {
            throw bad(text, "not a valid URI (" + e.getReason() + ")");
        }
        String scheme = u.getScheme() == null ? "" : u.getScheme().toLowerCase(java.util.Locale.ROOT);
        switch (scheme) {
            case "nbd", "nbd+unix" -> { }
            case "nbds", "nbds+unix" -> throw bad(text, "NBD over TLS (" + scheme + "://) is not supported yet; "
                    + "use nbd:// or nbd+unix:// (on a trusted network or a local socket)");
            case "nbd+vsock", "nbds+vsock" -> throw bad(text, "vsock transports are not supported");
            default -> throw bad(text, "unknown scheme '" + scheme + "'; expected nbd://host[:port]/export or "
                    + "nbd+unix:///export?socket=PATH");
        }
        if (u.getRawUserInfo() != null) {
            throw bad(text, "a user name is only meaningful with TLS, which is not supported");
        }
        if (u.getRawFragment() != null) {
            throw bad(text, "a fragment (#...) is not part of an NBD URI");
        }
        String path = u.getPath() == null ? "" : u.getPath();
        if (!path.isEmpty() && !path.startsWith("/")) {
            throw bad(text, "the export name must follow a '/'");
        }
        String export = path.isEmpty() ? "" : path.substring(1);
        if (export.getBytes(java.nio.charset.StandardCharsets.UTF_8).length
                > io.pmcache.nbd.NbdConstants.MAX_STRING_LENGTH) {
            throw bad(text, "the export name is longer than the protocol's 4096 bytes");
        }
        String socket = null;
        if (u.getRawQuery() != null) {
            for (String param : u.getRawQuery().split("&")) {
                if (param.isEmpty()) {
                    continue;
                }
                int eq = param.indexOf('=');
                String key = decode(eq < 0 ? param : param.substring(0, eq));
                String value = eq < 0 ? "" : decode(param.substring(eq + 1));
                if (key.equals("socket")) {
                    socket = value;
                } else if (key.startsWith("tls")) {
                    throw bad(text, "parameter '" + key + "': TLS is not supported yet");
                } else {
                    throw bad(text, "unsupported parameter '" + key + "' (only 'socket' is understood)");
                }
            }
        }
        if (scheme.equals("nbd+unix")) {
            if (u.getRawAuthority() != null && !u.getRawAuthority().isEmpty()) {
                throw bad(text, "nbd+unix:// takes no host; write nbd+unix:///export?socket=PATH");
            }
            if (socket == null || socket.isEmpty()) {
                throw bad(text, "nbd+unix:// needs ?socket=PATH");
            }
            return new NbdUri(text, export, null, 0, Path.of(socket));
        }
        if (socket != null) {
            throw bad(text, "'socket' is only meaningful with nbd+unix://");
        }
        String host = u.getHost();
        if (host == null || host.isEmpty()) {
            throw bad(text, "nbd:// needs a host; for a unix socket write nbd+unix:///export?socket=PATH");
        }
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port = u.getPort() < 0 ? DEFAULT_PORT : u.getPort();
        if (port == 0 || port > 65535) {
            throw bad(text, "port " + port + " is out of range");
        }
        return new NbdUri(text, export, host, port, null);
    }

    /** Where to connect (the host name is resolved at every connect, so a moved server is found again). */
    public SocketAddress address() {
        return socket != null ? UnixDomainSocketAddress.of(socket) : new InetSocketAddress(host, port);
    }

    public boolean isUnix() {
        return socket != null;
    }

    @Override
    public String toString() {
        return text;
    }

    private static String decode(String s) {
        return java.net.URLDecoder.decode(s.replace("+", "%2B"), java.nio.charset.StandardCharsets.UTF_8);
    }

    private static IllegalArgumentException bad(String text, String why) {
        return new IllegalArgumentException("backing URI '" + text + "': " + why);
    }
}
