package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;

import java.io.IOException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The fixed newstyle handshake of one connection: greeting, client flags, then option haggling
 * until the client picks the export ({@code NBD_OPT_GO} or {@code NBD_OPT_EXPORT_NAME}) or leaves.
 *
 * <p>Options answered: GO, INFO (EXPORT, NAME, DESCRIPTION, BLOCK_SIZE), EXPORT_NAME, LIST, ABORT,
 * STRUCTURED_REPLY, LIST_META_CONTEXT and SET_META_CONTEXT (only {@code base:allocation} exists),
 * and STARTTLS (see below). Any other option gets {@code NBD_REP_ERR_UNSUP}; a syntactically bad option gets
 * {@code NBD_REP_ERR_INVALID}. Option data up to {@link #MAX_OPTION_LENGTH} is read into memory;
 * longer data, up to {@link #MAX_DROPPED_OPTION_LENGTH}, is read and dropped and the option refused
 * ({@code NBD_REP_ERR_UNSUP} if unknown, {@code NBD_REP_ERR_INVALID} if known: no known option is
 * that long), so haggling continues as the spec asks. A broken greeting (unknown client flags, a bad
 * option magic), option data over {@link #MAX_DROPPED_OPTION_LENGTH} (a denial of service, which
 * the spec lets the server end) or an EXPORT_NAME the server cannot satisfy (it has no error reply)
 * ends the connection with a {@link ProtocolException}. Names the client sent appear in messages
 * and logs only through {@link LogText#escape}. While the handshake is to be refused
 * ({@link Refusal}: the server stops, or the connection is one over the limit), every option but
 * ABORT is answered with the refusal's error and message (an EXPORT_NAME, which has no error reply,
 * ends the connection), as the spec asks of a server that does not want a client: "error inbound
 * options until the client gets the hint that it is unwelcome".
 *
 * <h2>TLS</h2>
 * As the spec's TLS section, by {@link TlsConfig#mode()}: OFF (NOTLS) answers STARTTLS
 * {@code NBD_REP_ERR_UNSUP}. ON and REQUIRE answer the first STARTTLS {@code NBD_REP_ACK}, run the
 * TLS handshake and go on over TLS ({@link #transport()}); a failed TLS handshake ends the
 * connection (too late to go back to plain text). STARTTLS with data, or once TLS is up, gets
 * {@code NBD_REP_ERR_INVALID}. REQUIRE (FORCEDTLS) answers every other option but ABORT
 * {@code NBD_REP_ERR_TLS_REQD} until TLS is up, and ends the connection on an EXPORT_NAME (which
 * has no error reply) or a client that does not speak fixed newstyle (TLS needs it). What was
 * negotiated before TLS (structured replies, the meta context) is forgotten when TLS starts, as
 * nbdkit does: an attacker in the middle could have chosen it.
 */
final class Handshake {
    private static final Logger log = LoggerFactory.getLogger(Handshake.class);

    /** Longest option data read into memory; the longest legitimate one (a few meta context queries) is far shorter. */
    static final int MAX_OPTION_LENGTH = 64 << 10;
    /**
     * Longest option data read and dropped (32 MiB, qemu's limit, NBD_MAX_BUFFER_SIZE; nbdkit's is
     * 64 MiB); longer data ends the connection. Reading it is bounded by the handshake timeout too.
     */
    static final int MAX_DROPPED_OPTION_LENGTH = MAX_PAYLOAD_SIZE;

    private static final int KNOWN_CLIENT_FLAGS = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES;

    /** The socket, then TLS over it after STARTTLS. */
    private Transport ch;
    private final SocketStream socket;
    private final TlsConfig tls;
    private boolean fixedNewstyle;
    private final Exports exports;
    /** The export NBD_OPT_GO described: the one the session serves. */
    private Export export;
    private final String peer;
    private final Supplier<Refusal> refusal;
    private boolean noZeroes;
    private boolean structuredReplies;
    private boolean baseAllocation;
    private Session chosen;

    /**
     * Why every option of a handshake is refused, as the error reply each gets.
     *
     * @param type    the NBD_REP_ERR_* reply type
     * @param message the text the client shows its user
     */
    record Refusal(int type, String message) {
        /** The server stops: the spec's error for it, after which the client MUST soft-disconnect. */
        static final Refusal SHUTDOWN = new Refusal(NBD_REP_ERR_SHUTDOWN, "the server is shutting down");
    }

    /**
     * {@code ch}: the plain transport over {@code socket}; {@code refusal}: null while options are
     * served, else why every option is refused from then on (see {@link #run}).
     */
    Handshake(Transport ch, SocketStream socket, TlsConfig tls, Exports exports, String peer,
              Supplier<Refusal> refusal) {
        this.ch = ch;
        this.socket = socket;
        this.tls = tls;
        this.exports = exports;
        this.peer = peer;
        this.refusal = refusal;
    }

    /** Runs the handshake; empty when the client ended it with {@code NBD_OPT_ABORT}. */
    Optional<Session> run() throws IOException {
        ByteBuffer greeting = ByteBuffer.allocate(18)
                .putLong(NBDMAGIC).putLong(IHAVEOPT).putShort((short) (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES))
                .flip();
        ChannelIO.writeFully(ch, greeting);
        int clientFlags = read(4).getInt();
        if ((clientFlags & ~KNOWN_CLIENT_FLAGS) != 0) {
            throw new ProtocolException("unknown client flags 0x" + Integer.toHexString(clientFlags));
        }
        noZeroes = (clientFlags & NBD_FLAG_C_NO_ZEROES) != 0;
        fixedNewstyle = (clientFlags & NBD_FLAG_C_FIXED_NEWSTYLE) != 0;
        if (tls.mode() == TlsMode.REQUIRE && !fixedNewstyle) {
            throw new ProtocolException("TLS is required and the client does not speak fixed newstyle (TLS needs it)");
        }
        while (true) {
            ByteBuffer header = read(16);
            long magic = header.getLong();
            if (magic != IHAVEOPT) {
                throw new ProtocolException("bad option magic 0x" + Long.toHexString(magic));
            }
            int option = header.getInt();
            long length = Integer.toUnsignedLong(header.getInt());
            if (length > MAX_DROPPED_OPTION_LENGTH || (length > MAX_OPTION_LENGTH && option == NBD_OPT_EXPORT_NAME)) {
                throw new ProtocolException("option " + option + " carries " + length + " bytes (limit "
                        + (option == NBD_OPT_EXPORT_NAME ? MAX_OPTION_LENGTH : MAX_DROPPED_OPTION_LENGTH) + ")");
            }
            ByteBuffer data = null;
            if (length > MAX_OPTION_LENGTH) {
                ChannelIO.skip(ch, length, ByteBuffer.allocate(64 << 10));
            } else {
                data = read((int) length);
            }
            Refusal refused = option != NBD_OPT_ABORT ? refusal.get() : null;
            if (refused != null) {
                // spec: a server being shut down SHOULD error further options with ERR_SHUTDOWN; one
                // that does not want the client MUST error them until the client takes the hint
                if (option == NBD_OPT_EXPORT_NAME) {
                    throw new IOException("NBD_OPT_EXPORT_NAME refused: " + refused.message()
                            + " (the option has no error reply: closing)");
                }
                error(option, refused.type(), refused.message());
                continue;
            }
            if (tls.mode() == TlsMode.REQUIRE && !ch.secure() && option != NBD_OPT_STARTTLS
                    && option != NBD_OPT_ABORT) {
                if (option == NBD_OPT_EXPORT_NAME) {
                    throw new ProtocolException("NBD_OPT_EXPORT_NAME without TLS, which this server requires "
                            + "(the option has no error reply)");
                }
                error(option, NBD_REP_ERR_TLS_REQD, "TLS is required: send NBD_OPT_STARTTLS first");
                continue;
            }
            if (data == null) {
                if (option == NBD_OPT_SET_META_CONTEXT) {
                    baseAllocation = false; // a failed SET replaces the selection too
                }
                error(option, known(option) ? NBD_REP_ERR_INVALID : NBD_REP_ERR_UNSUP,
                        "option data of " + length + " bytes is longer than " + MAX_OPTION_LENGTH);
                continue;
            }
            if (option(option, data)) {
                return Optional.ofNullable(chosen);
            }
        }
    }

    /** Handles one option; true when haggling is over ({@link #chosen} set, or null after ABORT). */
    private boolean option(int option, ByteBuffer data) throws IOException {
        switch (option) {
            case NBD_OPT_EXPORT_NAME -> {
                chosen = exportName(data);
                return true;
            }
            case NBD_OPT_ABORT -> {
                reply(option, NBD_REP_ACK, null);
                return true;
            }
            case NBD_OPT_GO, NBD_OPT_INFO -> {
                if (info(option, data) && option == NBD_OPT_GO) {
                    chosen = session();
                    return true;
                }
            }
            case NBD_OPT_LIST -> list(data);
            case NBD_OPT_STRUCTURED_REPLY -> {
                if (data.hasRemaining()) {
                    error(option, NBD_REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
                } else {
                    structuredReplies = true;
                    reply(option, NBD_REP_ACK, null);
                }
            }
            case NBD_OPT_LIST_META_CONTEXT, NBD_OPT_SET_META_CONTEXT -> metaContext(option, data);
            case NBD_OPT_STARTTLS -> startTls(data);
            default -> error(option, NBD_REP_ERR_UNSUP, "option " + option + " is not supported");
        }
        return false;
    }

    private static boolean known(int option) {
        return switch (option) {
            case NBD_OPT_EXPORT_NAME, NBD_OPT_ABORT, NBD_OPT_GO, NBD_OPT_INFO, NBD_OPT_LIST, NBD_OPT_STRUCTURED_REPLY,
                 NBD_OPT_LIST_META_CONTEXT, NBD_OPT_SET_META_CONTEXT, NBD_OPT_STARTTLS -> true;
            default -> false;
        };
    }

    /** The transport to go on with after the handshake: the plain one, or TLS after STARTTLS. */
    Transport transport() {
        return ch;
    }

    private void startTls(ByteBuffer data) throws IOException {
        if (data.hasRemaining()) {
            error(NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
            return;
        }
        if (tls.mode() == TlsMode.OFF || !fixedNewstyle) {
            error(NBD_OPT_STARTTLS, NBD_REP_ERR_UNSUP, tls.mode() == TlsMode.OFF
                    ? "TLS is not enabled on this server" : "TLS needs fixed newstyle negotiation");
            return;
        }
        if (ch.secure()) {
            error(NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, "TLS is already on");
            return;
        }
        reply(NBD_OPT_STARTTLS, NBD_REP_ACK, null);
        SecureTransport secure = tls.newTransport(socket);
        try {
            secure.handshake();
        } catch (javax.net.ssl.SSLException e) {
            throw new ProtocolException("TLS handshake failed: " + e.getMessage());
        }
        ch = secure;
        structuredReplies = false;
        baseAllocation = false;
        log.debug("{}: TLS on ({})", peer, secure.describe());
    }

    private Session session() {
        return new Session(export, structuredReplies, structuredReplies && baseAllocation);
    }

    private Session exportName(ByteBuffer data) throws IOException {
        if (data.remaining() > MAX_STRING_LENGTH) {
            throw new ProtocolException("NBD_OPT_EXPORT_NAME with a name of " + data.remaining() + " bytes");
        }
        String name = utf8(data, data.remaining());
        export = exports.find(name);
        if (export == null) {
            throw new ProtocolException("NBD_OPT_EXPORT_NAME asks for unknown export '" + LogText.escape(name) + "'");
        }
        ByteBuffer out = ByteBuffer.allocate(noZeroes ? 10 : 134);
        out.putLong(export.size()).putShort((short) export.transmissionFlags(structuredReplies));
        ChannelIO.writeFully(ch, out.position(out.limit()).flip());
        return session();
    }

    /** NBD_OPT_INFO / NBD_OPT_GO; true when the export was described and acknowledged. */
    private boolean info(int option, ByteBuffer data) throws IOException {
        String name;
        List<Integer> requests = new ArrayList<>();
        try {
            name = string(data);
            int count = Short.toUnsignedInt(data.getShort());
            for (int i = 0; i < count; i++) {
                requests.add(Short.toUnsignedInt(data.getShort()));
            }
        } catch (BufferUnderflowException | IllegalArgumentException e) {
            error(option, NBD_REP_ERR_INVALID, malformed(e));
            return false;
        }
        if (data.hasRemaining()) {
            error(option, NBD_REP_ERR_INVALID, "trailing bytes after the information requests");
            return false;
        }
        Export export = exports.find(name);
        if (export == null) {
            error(option, NBD_REP_ERR_UNKNOWN, "no export named '" + LogText.escape(name) + "'");
            return false;
        }
        this.export = export;
        infoReply(option, ByteBuffer.allocate(12).putShort((short) NBD_INFO_EXPORT)
                .putLong(export.size()).putShort((short) export.transmissionFlags(structuredReplies)));
        if (requests.contains(NBD_INFO_NAME)) {
            byte[] n = export.name().getBytes(StandardCharsets.UTF_8);
            infoReply(option, ByteBuffer.allocate(2 + n.length).putShort((short) NBD_INFO_NAME).put(n));
        }
        if (requests.contains(NBD_INFO_DESCRIPTION) && !export.description().isEmpty()) {
            byte[] d = export.description().getBytes(StandardCharsets.UTF_8);
            infoReply(option, ByteBuffer.allocate(2 + d.length).putShort((short) NBD_INFO_DESCRIPTION).put(d));
        }
        infoReply(option, ByteBuffer.allocate(14).putShort((short) NBD_INFO_BLOCK_SIZE)
                .putInt(MIN_BLOCK_SIZE).putInt(PREFERRED_BLOCK_SIZE).putInt(MAX_PAYLOAD_SIZE));
        reply(option, NBD_REP_ACK, null);
        return true;
    }

    private void infoReply(int option, ByteBuffer payload) throws IOException {
        reply(option, NBD_REP_INFO, payload.flip());
    }

    private void list(ByteBuffer data) throws IOException {
        if (data.hasRemaining()) {
            error(NBD_OPT_LIST, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
            return;
        }
        for (Export e : exports.all()) {
            byte[] n = e.name().getBytes(StandardCharsets.UTF_8);
            reply(NBD_OPT_LIST, NBD_REP_SERVER, ByteBuffer.allocate(4 + n.length).putInt(n.length).put(n).flip());
        }
        reply(NBD_OPT_LIST, NBD_REP_ACK, null);
    }

    /**
     * LIST_META_CONTEXT and SET_META_CONTEXT: export name, then a count of queries. Listing with no
     * query, with {@code base:} or with {@code base:allocation} shows {@code base:allocation};
     * setting selects it only when asked for by its full name. Setting replaces the selection, also
     * when it fails (spec), so a failed SET leaves no context selected.
     */
    private void metaContext(int option, ByteBuffer data) throws IOException {
        if (option == NBD_OPT_SET_META_CONTEXT) {
            baseAllocation = false;
        }
        if (!structuredReplies) {
            error(option, NBD_REP_ERR_INVALID, "negotiate NBD_OPT_STRUCTURED_REPLY first");
            return;
        }
        String name;
        List<String> queries = new ArrayList<>();
        try {
            name = string(data);
            long count = Integer.toUnsignedLong(data.getInt());
            for (long i = 0; i < count; i++) {
                queries.add(string(data));
            }
        } catch (BufferUnderflowException | IllegalArgumentException e) {
            error(option, NBD_REP_ERR_INVALID, malformed(e));
            return;
        }
        if (data.hasRemaining()) {
            error(option, NBD_REP_ERR_INVALID, "trailing bytes after the queries");
            return;
        }
        if (exports.find(name) == null) {
            error(option, NBD_REP_ERR_UNKNOWN, "no export named '" + LogText.escape(name) + "'");
            return;
        }
        boolean listing = option == NBD_OPT_LIST_META_CONTEXT;
        boolean selected = listing
                ? queries.isEmpty() || queries.contains("base:") || queries.contains(BASE_ALLOCATION)
                : queries.contains(BASE_ALLOCATION);
        if (!listing) {
            baseAllocation = selected;
        }
        if (selected) {
            byte[] n = BASE_ALLOCATION.getBytes(StandardCharsets.UTF_8);
            reply(option, NBD_REP_META_CONTEXT, ByteBuffer.allocate(4 + n.length)
                    .putInt(listing ? 0 : BASE_ALLOCATION_ID).put(n).flip());
        }
        reply(option, NBD_REP_ACK, null);
    }

    private void error(int option, int type, String message) throws IOException {
        log.debug("{}: option {} refused: {}", peer, option, message);
        reply(option, type, ByteBuffer.wrap(message.getBytes(StandardCharsets.UTF_8)));
    }

    private void reply(int option, int type, ByteBuffer payload) throws IOException {
        int length = payload == null ? 0 : payload.remaining();
        ByteBuffer header = ByteBuffer.allocate(20).putLong(NBD_REP_MAGIC).putInt(option).putInt(type).putInt(length);
        ChannelIO.writeFully(ch, header.flip());
        if (payload != null) {
            ChannelIO.writeFully(ch, payload);
        }
    }

    private ByteBuffer read(int n) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(n);
        ChannelIO.readFully(ch, buf);
        return buf.flip();
    }

    private static String malformed(RuntimeException e) {
        return e instanceof BufferUnderflowException ? "option data is truncated" : e.getMessage();
    }

    /** A string prefixed by its 32-bit length. */
    private static String string(ByteBuffer data) {
        long length = Integer.toUnsignedLong(data.getInt());
        if (length > data.remaining()) {
            throw new BufferUnderflowException();
        }
        return utf8(data, (int) length);
    }

    private static String utf8(ByteBuffer data, int length) {
        if (length > MAX_STRING_LENGTH) {
            throw new IllegalArgumentException("string of " + length + " bytes exceeds " + MAX_STRING_LENGTH);
        }
        byte[] bytes = new byte[length];
        data.get(bytes);
        return new String(bytes, StandardCharsets.UTF_8);
    }
}
