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
 *   <li>{@code nbd+unix:///[export]?socket=PATH}: a unix socket, no host;</li>
 *   <li>{@code nbds://} and {@code nbds+unix://}: the same with TLS, which is then required: a
 *       server that does not offer it is refused, never used in plain text.</li>
 * </ul>
 * The export name is the path without its leading {@code /}, percent-decoded ({@code nbd://h} and
 * {@code nbd://h/} both name the empty, default export). TLS parameters, as libnbd's:
 * {@code tls-certificates=DIR} (ca-cert.pem, client-cert.pem, client-key.pem, ca-crl.pem; see
 * {@link io.pmcache.nbd.TlsClientConfig}), {@code tls-verify-peer=false} (do not verify the
 * server) and {@code tls-hostname=NAME} (the name the server's certificate must carry, instead of
 * the URI's host; for a unix socket, which has none, it turns the name check on). They are
 * refused on a non-TLS scheme, so that a forgotten {@code s} cannot mean plain text. Refused with a
 * message saying so: pre-shared keys ({@code tls-psk-file}, a user name), vsock, and any other
 * parameter, which this client would otherwise silently ignore.
 *
 * @param text            the URI as given (for messages)
 * @param exportName      the export to ask for
 * @param host            TCP host, null for a unix socket
 * @param port            TCP port, 0 for a unix socket
 * @param socket          the unix socket's path, null for TCP
 * @param tls             TLS required ({@code nbds://}, {@code nbds+unix://})
 * @param tlsCertificates the client's certificate directory, null for the JDK's default CAs
 * @param tlsVerifyPeer   whether the server's certificate is verified (always true without TLS)
 * @param tlsHostname     the name the server's certificate must carry, null for the URI's host
 */
public record NbdUri(String text, String exportName, String host, int port, Path socket, boolean tls,
                     Path tlsCertificates, boolean tlsVerifyPeer, String tlsHostname) {

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
            case "nbd", "nbd+unix", "nbds", "nbds+unix" -> { }
            case "nbd+vsock", "nbds+vsock" -> throw bad(text, "vsock transports are not supported");
            default -> throw bad(text, "unknown scheme '" + scheme + "'; expected nbd[s]://host[:port]/export or "
                    + "nbd[s]+unix:///export?socket=PATH");
        }
        boolean tls = scheme.startsWith("nbds");
        if (u.getRawUserInfo() != null) {
            throw bad(text, "a user name selects a TLS pre-shared key (PSK), which this client does not support; "
                    + "use X.509 certificates (nbds://...?tls-certificates=DIR)");
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
        Path certificates = null;
        boolean verifyPeer = true;
        String hostname = null;
        if (u.getRawQuery() != null) {
            for (String param : u.getRawQuery().split("&")) {
                if (param.isEmpty()) {
                    continue;
                }
                int eq = param.indexOf('=');
                String key = decode(eq < 0 ? param : param.substring(0, eq));
                String value = eq < 0 ? "" : decode(param.substring(eq + 1));
                if (key.startsWith("tls") && !tls) {
                    throw bad(text, "parameter '" + key + "' with " + scheme + "://, which does not use TLS; "
                            + "write nbds:// or nbds+unix:// for TLS");
                }
                switch (key) {
                    case "socket" -> socket = value;
                    case "tls-certificates" -> {
                        if (value.isEmpty()) {
                            throw bad(text, "tls-certificates needs a directory");
                        }
                        certificates = Path.of(value);
                    }
                    case "tls-verify-peer" -> verifyPeer = bool(text, key, value);
                    case "tls-hostname" -> {
                        if (value.isEmpty()) {
                            throw bad(text, "tls-hostname needs a name");
                        }
                        hostname = value;
                    }
                    case "tls-psk-file", "tls-username" -> throw bad(text, "parameter '" + key + "': TLS with "
                            + "pre-shared keys is not supported by this client (the JDK's TLS has no external PSK); "
                            + "use X.509 certificates (tls-certificates=DIR)");
                    default -> throw bad(text, "unsupported parameter '" + key + "' (understood: socket"
                            + (tls ? ", tls-certificates, tls-verify-peer, tls-hostname" : "") + ")");
                }
            }
        }
        if (scheme.endsWith("+unix")) {
            if (u.getRawAuthority() != null && !u.getRawAuthority().isEmpty()) {
                throw bad(text, scheme + ":// takes no host; write " + scheme + ":///export?socket=PATH");
            }
            if (socket == null || socket.isEmpty()) {
                throw bad(text, scheme + ":// needs ?socket=PATH");
            }
            return new NbdUri(text, export, null, 0, Path.of(socket), tls, certificates, verifyPeer, hostname);
        }
        if (socket != null) {
            throw bad(text, "'socket' is only meaningful with nbd+unix:// or nbds+unix://");
        }
        String host = u.getHost();
        if (host == null || host.isEmpty()) {
            throw bad(text, scheme + ":// needs a host; for a unix socket write " + scheme
                    + "+unix:///export?socket=PATH");
        }
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port = u.getPort() < 0 ? DEFAULT_PORT : u.getPort();
        if (port == 0 || port > 65535) {
            throw bad(text, "port " + port + " is out of range");
        }
        return new NbdUri(text, export, host, port, null, tls, certificates, verifyPeer, hostname);
    }

    /** The name the server's certificate must carry: tls-hostname, else the TCP host; null for neither. */
    public String certificateHost() {
        return tlsHostname != null ? tlsHostname : host;
    }

    private static boolean bool(String text, String key, String value) {
        return switch (value.toLowerCase(java.util.Locale.ROOT)) {
            case "true", "1", "yes", "on" -> true;
            case "false", "0", "no", "off" -> false;
            default -> throw bad(text, "parameter '" + key + "' wants true or false, got '" + value + "'");
        };
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
