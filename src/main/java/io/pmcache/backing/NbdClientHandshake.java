package io.pmcache.backing;

import static io.pmcache.nbd.NbdConstants.IHAVEOPT;
import static io.pmcache.nbd.NbdConstants.NBDMAGIC;
import static io.pmcache.nbd.NbdConstants.NBD_FLAG_C_FIXED_NEWSTYLE;
import static io.pmcache.nbd.NbdConstants.NBD_FLAG_C_NO_ZEROES;
import static io.pmcache.nbd.NbdConstants.NBD_FLAG_FIXED_NEWSTYLE;
import static io.pmcache.nbd.NbdConstants.NBD_FLAG_NO_ZEROES;
import static io.pmcache.nbd.NbdConstants.NBD_INFO_BLOCK_SIZE;
import static io.pmcache.nbd.NbdConstants.NBD_INFO_EXPORT;
import static io.pmcache.nbd.NbdConstants.NBD_OPT_EXPORT_NAME;
import static io.pmcache.nbd.NbdConstants.NBD_OPT_GO;
import static io.pmcache.nbd.NbdConstants.NBD_OPT_SET_META_CONTEXT;
import static io.pmcache.nbd.NbdConstants.NBD_OPT_STARTTLS;
import static io.pmcache.nbd.NbdConstants.NBD_OPT_STRUCTURED_REPLY;
import static io.pmcache.nbd.NbdConstants.NBD_REP_ACK;
import static io.pmcache.nbd.NbdConstants.NBD_REP_ERR_TLS_REQD;
import static io.pmcache.nbd.NbdConstants.NBD_REP_ERR_UNSUP;
import static io.pmcache.nbd.NbdConstants.NBD_REP_FLAG_ERROR;
import static io.pmcache.nbd.NbdConstants.NBD_REP_INFO;
import static io.pmcache.nbd.NbdConstants.NBD_REP_MAGIC;
import static io.pmcache.nbd.NbdConstants.NBD_REP_META_CONTEXT;

import io.pmcache.nbd.Transport;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * The client side of the fixed-newstyle handshake, in the order libnbd's state machine takes it:
 * <ol>
 *   <li>read {@code NBDMAGIC IHAVEOPT flags}; refuse a server without FIXED_NEWSTYLE;</li>
 *   <li>send the client flags (FIXED_NEWSTYLE, and NO_ZEROES when offered);</li>
 *   <li>with TLS ({@code nbds://}): {@code NBD_OPT_STARTTLS}; an ACK starts the TLS handshake and
 *       everything after goes over TLS; an error reply ends the connection (never plain text when
 *       TLS was asked for);</li>
 *   <li>{@code NBD_OPT_STRUCTURED_REPLY}: ACK means structured replies, an error reply means
 *       simple replies only;</li>
 *   <li>with structured replies, {@code NBD_OPT_SET_META_CONTEXT} for {@code base:allocation}:
 *       an {@code NBD_REP_META_CONTEXT} reply gives the context's id for {@code NBD_CMD_BLOCK_STATUS};
 *       an error reply or none means the server reports no allocation (every byte is data);</li>
 *   <li>{@code NBD_OPT_GO} with the export name, asking for {@code NBD_INFO_BLOCK_SIZE}: the
 *       {@code NBD_REP_INFO} replies give size, flags and block sizes, {@code NBD_REP_ACK} ends the
 *       handshake; an error reply fails it with the server's message, except
 *       {@code NBD_REP_ERR_UNSUP} (a server that predates GO), which falls back to
 *       {@code NBD_OPT_EXPORT_NAME}.</li>
 * </ol>
 * Every length the server sends is bounded before it is trusted. Blocking I/O: the caller bounds
 * the time by closing the socket.
 */
final class NbdClientHandshake {
    /** Longest option reply this client reads (the spec's strings are at most 4 KiB). */
    private static final int MAX_REPLY = 64 << 10;
    static final String BASE_ALLOCATION = "base:allocation";

    /** Starts TLS on the connection's socket once the server acknowledged STARTTLS. */
    interface TlsStart {
        Transport start() throws IOException;
    }

    /** What the handshake agreed on, and the transport to go on with (TLS after STARTTLS). */
    record Negotiated(NbdExportInfo info, Transport transport) {
    }

    private Transport ch;
    private final TlsStart tls;
    private final String exportName;
    private final String where;

    private NbdClientHandshake(Transport ch, TlsStart tls, String exportName, String where) {
        this.ch = ch;
        this.tls = tls;
        this.exportName = exportName;
        this.where = where;
    }

    /**
     * Runs the handshake on a connected transport; {@code tls} non-null requires TLS; {@code where}
     * names the export in errors.
     */
    static Negotiated negotiate(Transport ch, TlsStart tls, String exportName, String where) throws IOException {
        NbdClientHandshake h = new NbdClientHandshake(ch, tls, exportName, where);
        NbdExportInfo info;
        try {
            info = h.run();
        } catch (IOException e) {
            throw h.explainAfterTls(e);
        }
        return new Negotiated(info, h.ch);
    }

    /**
     * With TLS 1.3 the client's side of the handshake ends before the server has checked the
     * client's certificate; a server that refuses it sends an alert and closes, and this client
     * learns of it at its next read or write. That failure is explained here: the alert, when it
     * can still be read, and what usually causes it.
     */
    private IOException explainAfterTls(IOException e) {
        if (!ch.secure() || (String.valueOf(e.getMessage()).startsWith(where) && !(e instanceof EOFException))) {
            return e; // not over TLS, or this client's own finding (an EOF may be the refusal, though)
        }
        String cause = String.valueOf(e.getMessage());
        try {
            ch.read(ByteBuffer.allocate(1)); // the server's alert, if it is still in the socket
        } catch (IOException alert) {
            cause = String.valueOf(alert.getMessage());
        }
        return new IOException(where + ": the server ended the connection right after the TLS handshake (" + cause
                + "); a server that verifies clients does so when it does not trust this client's certificate or "
                + "gets none: give tls-certificates=DIR with client-cert.pem and client-key.pem signed by a CA the "
                + "server trusts", e);
    }

    private NbdExportInfo run() throws IOException {
        ByteBuffer greeting = read(18);
        long magic = greeting.getLong();
        long opt = greeting.getLong();
        int serverFlags = greeting.getShort() & 0xffff;
        if (magic != NBDMAGIC) {
            throw new IOException(where + ": not an NBD server (greeting magic 0x" + Long.toHexString(magic) + ")");
        }
        if (opt != IHAVEOPT || (serverFlags & NBD_FLAG_FIXED_NEWSTYLE) == 0) {
            throw new IOException(where + ": the server does not speak the fixed-newstyle handshake (oldstyle "
                    + "servers are not supported)");
        }
        boolean noZeroes = (serverFlags & NBD_FLAG_NO_ZEROES) != 0;
        write(ByteBuffer.allocate(4).putInt(NBD_FLAG_C_FIXED_NEWSTYLE | (noZeroes ? NBD_FLAG_C_NO_ZEROES : 0)).flip());

        if (tls != null) {
            startTls();
        }
        sendOption(NBD_OPT_STRUCTURED_REPLY, ByteBuffer.allocate(0));
        Reply sr = readReply(NBD_OPT_STRUCTURED_REPLY);
        if (sr.type == NBD_REP_ERR_TLS_REQD) {
            throw new IOException(where + ": the server requires TLS: use nbds:// (or nbds+unix://)");
        }
        boolean structured = sr.type == NBD_REP_ACK;
        long allocation = structured ? baseAllocation() : -1;

        byte[] name = exportName.getBytes(StandardCharsets.UTF_8);
        ByteBuffer go = ByteBuffer.allocate(4 + name.length + 2 + 2);
        go.putInt(name.length).put(name).putShort((short) 1).putShort((short) NBD_INFO_BLOCK_SIZE).flip();
        sendOption(NBD_OPT_GO, go);
        long size = -1;
        int flags = 0;
        int min = 1;
        int preferred = 4096;
        int max = 0;
        while (true) {
            Reply r = readReply(NBD_OPT_GO);
            if (r.type == NBD_REP_ACK) {
                break;
            }
            if (r.type == NBD_REP_ERR_UNSUP) {
                return exportNameFallback(structured, noZeroes);
            }
            if ((r.type & NBD_REP_FLAG_ERROR) != 0) {
                throw new IOException(where + ": the server refused export '" + exportName + "' ("
                        + replyName(r.type) + (r.data.remaining() > 0 ? ": " + text(r.data) : "") + ")");
            }
            if (r.type != NBD_REP_INFO) {
                continue; // the spec lets a client ignore reply types it does not know
            }
            if (r.data.remaining() < 2) {
                throw new IOException(where + ": NBD_REP_INFO of " + r.data.remaining() + " bytes");
            }
            int info = r.data.getShort() & 0xffff;
            if (info == NBD_INFO_EXPORT) {
                need(r.data, 10, "NBD_INFO_EXPORT");
                size = r.data.getLong();
                flags = r.data.getShort() & 0xffff;
            } else if (info == NBD_INFO_BLOCK_SIZE) {
                need(r.data, 12, "NBD_INFO_BLOCK_SIZE");
                min = r.data.getInt();
                preferred = r.data.getInt();
                max = r.data.getInt();
            }
        }
        if (size < 0) {
            throw new IOException(where + ": the server ended NBD_OPT_GO without sending the export's size");
        }
        return NbdExportInfo.of(size, flags, min, preferred, max, structured, allocation, ch.secure(), where);
    }

    /**
     * STARTTLS, then the TLS handshake. Any answer but ACK ends the connection: TLS was asked for,
     * and going on in plain text is what an attacker in the middle would want.
     */
    private void startTls() throws IOException {
        sendOption(NBD_OPT_STARTTLS, ByteBuffer.allocate(0));
        Reply r = readReply(NBD_OPT_STARTTLS);
        if (r.type != NBD_REP_ACK) {
            throw new IOException(where + ": the server does not offer TLS (" + replyName(r.type)
                    + (r.data.remaining() > 0 ? ": " + text(r.data) : "") + "), which nbds:// requires; not going on "
                    + "in plain text");
        }
        ch = tls.start();
    }

    /**
     * Asks for {@code base:allocation} on the export; returns its id, or -1 when the server does
     * not offer it (an error reply, or an ACK without it).
     */
    private long baseAllocation() throws IOException {
        byte[] name = exportName.getBytes(StandardCharsets.UTF_8);
        byte[] query = BASE_ALLOCATION.getBytes(StandardCharsets.US_ASCII);
        ByteBuffer b = ByteBuffer.allocate(4 + name.length + 4 + 4 + query.length);
        b.putInt(name.length).put(name).putInt(1).putInt(query.length).put(query).flip();
        sendOption(NBD_OPT_SET_META_CONTEXT, b);
        long id = -1;
        while (true) {
            Reply r = readReply(NBD_OPT_SET_META_CONTEXT);
            if (r.type == NBD_REP_ACK || (r.type & NBD_REP_FLAG_ERROR) != 0) {
                return r.type == NBD_REP_ACK ? id : -1;
            }
            if (r.type != NBD_REP_META_CONTEXT) {
                continue;
            }
            need(r.data, 4, "NBD_REP_META_CONTEXT");
            long contextId = Integer.toUnsignedLong(r.data.getInt());
            if (BASE_ALLOCATION.equals(StandardCharsets.UTF_8.decode(r.data).toString())) {
                id = contextId;
            } // else a context this client did not ask for: the spec forbids it, and it is not used
        }
    }

    /** Pre-GO servers: {@code NBD_OPT_EXPORT_NAME} answers with size, flags and (unless NO_ZEROES) 124 zeros. */
    private NbdExportInfo exportNameFallback(boolean structured, boolean noZeroes) throws IOException {
        sendOption(NBD_OPT_EXPORT_NAME, ByteBuffer.wrap(exportName.getBytes(StandardCharsets.UTF_8)));
        ByteBuffer b = read(10 + (noZeroes ? 0 : 124));
        long size = b.getLong();
        int flags = b.getShort() & 0xffff;
        return NbdExportInfo.of(size, flags, 1, 4096, 0, structured, -1, ch.secure(), where);
    }

    private record Reply(int type, ByteBuffer data) {
    }

    private void sendOption(int option, ByteBuffer data) throws IOException {
        ByteBuffer h = ByteBuffer.allocate(16 + data.remaining());
        h.putLong(IHAVEOPT).putInt(option).putInt(data.remaining()).put(data).flip();
        write(h);
    }

    private Reply readReply(int option) throws IOException {
        ByteBuffer h = read(20);
        long magic = h.getLong();
        int opt = h.getInt();
        int type = h.getInt();
        int length = h.getInt();
        if (magic != NBD_REP_MAGIC) {
            throw new IOException(where + ": bad option reply magic 0x" + Long.toHexString(magic));
        }
        if (opt != option) {
            throw new IOException(where + ": the server answered option " + opt + " to option " + option);
        }
        if (length < 0 || length > MAX_REPLY) {
            throw new IOException(where + ": option reply of " + Integer.toUnsignedString(length)
                    + " bytes (at most " + MAX_REPLY + " accepted)");
        }
        return new Reply(type, read(length));
    }

    private ByteBuffer read(int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        while (b.hasRemaining()) {
            if (ch.read(b) < 0) {
                throw new EOFException(where + ": the server closed the connection during the handshake");
            }
        }
        return b.flip();
    }

    private void write(ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    private void need(ByteBuffer b, int n, String what) throws IOException {
        if (b.remaining() < n) {
            throw new IOException(where + ": " + what + " reply too short (" + b.remaining() + " bytes)");
        }
    }

    private static String text(ByteBuffer b) {
        byte[] s = new byte[Math.min(b.remaining(), 512)];
        b.get(s);
        return new String(s, StandardCharsets.UTF_8).strip();
    }

    private static String replyName(int type) {
        return switch (type & ~NBD_REP_FLAG_ERROR) {
            case 1 -> "NBD_REP_ERR_UNSUP";
            case 2 -> "NBD_REP_ERR_POLICY";
            case 3 -> "NBD_REP_ERR_INVALID";
            case 4 -> "NBD_REP_ERR_PLATFORM";
            case 5 -> "NBD_REP_ERR_TLS_REQD: the server requires TLS; use nbds:// (or nbds+unix://)";
            case 6 -> "NBD_REP_ERR_UNKNOWN: no such export";
            case 7 -> "NBD_REP_ERR_SHUTDOWN: the server is shutting down";
            case 8 -> "NBD_REP_ERR_BLOCK_SIZE_REQD";
            case 9 -> "NBD_REP_ERR_TOO_BIG";
            default -> "error reply 0x" + Integer.toHexString(type);
        };
    }
}
