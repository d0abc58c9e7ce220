package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * A deliberately low-level NBD client for tests: it sends exactly the bytes a test asks for and
 * decodes what comes back, so tests can break the protocol on purpose.
 */
final class NbdTestClient implements AutoCloseable {
    record OptionReply(int option, int type, byte[] data) {
        String text() {
            return new String(data, StandardCharsets.UTF_8);
        }
    }

    /** A simple reply or one structured chunk. */
    record Reply(boolean structured, int flags, int type, long handle, int error, byte[] payload) {
    }

    private final SocketChannel ch;
    DataInputStream in;
    DataOutputStream out;
    private javax.net.ssl.SSLSocket tls;
    long size;
    int transmissionFlags;
    boolean structured;

    private NbdTestClient(SocketChannel ch) {
        this.ch = ch;
        this.in = new DataInputStream(Channels.newInputStream(ch));
        this.out = new DataOutputStream(Channels.newOutputStream(ch));
    }

    static NbdTestClient connect(Path socket) throws IOException {
        return connect(UnixDomainSocketAddress.of(socket));
    }

    static NbdTestClient connect(SocketAddress address) throws IOException {
        SocketChannel ch = address instanceof UnixDomainSocketAddress
                ? SocketChannel.open(StandardProtocolFamily.UNIX) : SocketChannel.open();
        ch.connect(address);
        return new NbdTestClient(ch);
    }

    /** Connects, handshakes with NBD_OPT_GO for the default export, ready for requests. */
    static NbdTestClient open(Path socket, boolean structured, boolean baseAllocation) throws IOException {
        NbdTestClient c = connect(socket);
        c.handshake(structured, baseAllocation);
        return c;
    }

    /** Reads the greeting and sends client flags; returns the handshake flags. */
    int greet(int clientFlags) throws IOException {
        assertThat(in.readLong()).isEqualTo(NBDMAGIC);
        assertThat(in.readLong()).isEqualTo(IHAVEOPT);
        int flags = in.readUnsignedShort();
        out.writeInt(clientFlags);
        return flags;
    }

    void handshake(boolean wantStructured, boolean baseAllocation) throws IOException {
        greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
        handshakeAfterGreeting(wantStructured, baseAllocation);
    }

    /** The options of {@link #handshake} (after the greeting, or after STARTTLS), ending with GO. */
    void handshakeAfterGreeting(boolean wantStructured, boolean baseAllocation) throws IOException {
        if (wantStructured) {
            option(NBD_OPT_STRUCTURED_REPLY, new byte[0]);
            assertThat(readOptionReply().type()).isEqualTo(NBD_REP_ACK);
            structured = true;
        }
        if (baseAllocation) {
            option(NBD_OPT_SET_META_CONTEXT, metaContextData("", BASE_ALLOCATION));
            assertThat(readOptionReply().type()).isEqualTo(NBD_REP_META_CONTEXT);
            assertThat(readOptionReply().type()).isEqualTo(NBD_REP_ACK);
        }
        option(NBD_OPT_GO, infoData("", new int[0]));
        while (true) {
            OptionReply r = readOptionReply();
            if (r.type() == NBD_REP_ACK) {
                return;
            }
            assertThat(r.type()).as("GO reply %s", r.text()).isEqualTo(NBD_REP_INFO);
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(r.data());
            if (b.getShort() == NBD_INFO_EXPORT) {
                size = b.getLong();
                transmissionFlags = b.getShort() & 0xffff;
            }
        }
    }

    /** Sends an option in one write, as a real client does (see {@link #request}). */
    void option(int option, byte[] data) throws IOException {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(16 + data.length);
        b.putLong(IHAVEOPT).putInt(option).putInt(data.length).put(data);
        out.write(b.array());
        out.flush();
    }

    OptionReply readOptionReply() throws IOException {
        assertThat(in.readLong()).isEqualTo(NBD_REP_MAGIC);
        int option = in.readInt();
        int type = in.readInt();
        byte[] data = new byte[in.readInt()];
        in.readFully(data);
        return new OptionReply(option, type, data);
    }

    static byte[] infoData(String name, int[] requests) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 + n.length + 2 + 2 * requests.length);
        b.putInt(n.length).put(n).putShort((short) requests.length);
        for (int r : requests) {
            b.putShort((short) r);
        }
        return b.array();
    }

    static byte[] metaContextData(String export, String... queries) {
        byte[] n = export.getBytes(StandardCharsets.UTF_8);
        int len = 4 + n.length + 4;
        for (String q : queries) {
            len += 4 + q.getBytes(StandardCharsets.UTF_8).length;
        }
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(len).putInt(n.length).put(n).putInt(queries.length);
        for (String q : queries) {
            byte[] qb = q.getBytes(StandardCharsets.UTF_8);
            b.putInt(qb.length).put(qb);
        }
        return b.array();
    }

    /** Closes the connection with a reset (SO_LINGER 0), as a client that crashes does. */
    void resetForTests() throws IOException {
        ch.setOption(java.net.StandardSocketOptions.SO_LINGER, 0);
        ch.close();
    }

    /**
     * After the server acknowledged {@code NBD_OPT_STARTTLS}: runs the client's TLS handshake over
     * the socket (throws if the server refuses it) and goes on over TLS.
     */
    void startTls(javax.net.ssl.SSLContext context) throws IOException {
        tls = (javax.net.ssl.SSLSocket) context.getSocketFactory().createSocket(ch.socket(), "localhost", 0, true);
        tls.setUseClientMode(true);
        tls.startHandshake();
        in = new DataInputStream(new java.io.BufferedInputStream(tls.getInputStream()));
        out = new DataOutputStream(new java.io.BufferedOutputStream(tls.getOutputStream()));
    }

    /**
     * As {@link #startTls} with a pre-shared key (Bouncy Castle's blocking TLS client): TLS 1.3 with
     * an external PSK (AES-128-GCM), or TLS 1.2 ECDHE-PSK (AES-128-CBC-SHA256) when {@code tls12}. Throws if the server refuses it.
     */
    void startTlsPsk(String user, byte[] key, boolean tls12) throws IOException {
        org.bouncycastle.tls.crypto.TlsCrypto crypto = new org.bouncycastle.tls.crypto.impl.jcajce.JcaTlsCryptoProvider()
                .create(new java.security.SecureRandom());
        byte[] identity = user.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        org.bouncycastle.tls.PSKTlsClient client = new org.bouncycastle.tls.PSKTlsClient(crypto,
                new org.bouncycastle.tls.BasicTlsPSKIdentity(identity, key)) {
            @Override
            protected org.bouncycastle.tls.ProtocolVersion[] getSupportedVersions() {
                return (tls12 ? org.bouncycastle.tls.ProtocolVersion.TLSv12
                        : org.bouncycastle.tls.ProtocolVersion.TLSv13).only();
            }

            @Override
            protected int[] getSupportedCipherSuites() {
                return new int[] {tls12 ? org.bouncycastle.tls.CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256
                        : org.bouncycastle.tls.CipherSuite.TLS_AES_128_GCM_SHA256};
            }

            @Override
            public java.util.Vector<org.bouncycastle.tls.TlsPSKExternal> getExternalPSKs() {
                java.util.Vector<org.bouncycastle.tls.TlsPSKExternal> v = new java.util.Vector<>();
                v.add(new org.bouncycastle.tls.BasicTlsPSKExternal(identity, crypto.createSecret(key)));
                return tls12 ? null : v;
            }
        };
        org.bouncycastle.tls.TlsClientProtocol protocol = new org.bouncycastle.tls.TlsClientProtocol(
                Channels.newInputStream(ch), Channels.newOutputStream(ch));
        protocol.connect(client);
        in = new DataInputStream(new java.io.BufferedInputStream(protocol.getInputStream()));
        out = new DataOutputStream(new java.io.BufferedOutputStream(protocol.getOutputStream()));
    }

    /** TLS 1.3: asks the server to update its keys (the JDK's client sends a KeyUpdate, update_requested). */
    void keyUpdate() throws IOException {
        tls.startHandshake();
    }

    /**
     * Sends a request, header and payload, in one write, as a real client does. Field by field (one
     * system call each on this unbuffered stream), a server that refuses a request on its first
     * bytes could close the socket before the last field went out, and the test would see a broken
     * pipe instead of the refusal (it happened once to an option, session 14).
     */
    void request(int flags, int type, long handle, long offset, long length, byte[] payload) throws IOException {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(28 + (payload == null ? 0 : payload.length));
        b.putInt(NBD_REQUEST_MAGIC).putShort((short) flags).putShort((short) type).putLong(handle).putLong(offset)
                .putInt((int) length);
        if (payload != null) {
            b.put(payload);
        }
        out.write(b.array());
        out.flush();
    }

    /** Sends {@code len} raw bytes of {@code b} (part of a payload whose header went before). */
    void send(byte[] b, int off, int len) throws IOException {
        out.write(b, off, len);
        out.flush();
    }

    /** Reads one simple reply (with {@code dataLength} bytes of data if it succeeded) or one chunk. */
    Reply reply(int dataLength) throws IOException {
        int magic = in.readInt();
        if (magic == NBD_SIMPLE_REPLY_MAGIC) {
            int error = in.readInt();
            long handle = in.readLong();
            byte[] data = new byte[error == 0 ? dataLength : 0];
            in.readFully(data);
            return new Reply(false, 0, 0, handle, error, data);
        }
        assertThat(magic).as("reply magic").isEqualTo(NBD_STRUCTURED_REPLY_MAGIC);
        int flags = in.readUnsignedShort();
        int type = in.readUnsignedShort();
        long handle = in.readLong();
        byte[] payload = new byte[in.readInt()];
        in.readFully(payload);
        int error = (type & 0x8000) != 0 ? java.nio.ByteBuffer.wrap(payload).getInt() : 0;
        return new Reply(true, flags, type, handle, error, payload);
    }

    /** Writes and returns the reply's error value. */
    int write(long handle, long offset, byte[] data) throws IOException {
        request(0, NBD_CMD_WRITE, handle, offset, data.length, data);
        Reply r = reply(0);
        assertThat(r.handle()).isEqualTo(handle);
        return r.error();
    }

    /** Reads {@code length} bytes; fails the test on an error reply. */
    byte[] read(long handle, long offset, int length) throws IOException {
        request(0, NBD_CMD_READ, handle, offset, length, null);
        Reply r = reply(length);
        assertThat(r.handle()).isEqualTo(handle);
        assertThat(r.error()).as("read error").isZero();
        if (!r.structured()) {
            return r.payload();
        }
        assertThat(r.type()).isEqualTo(NBD_REPLY_TYPE_OFFSET_DATA);
        assertThat(r.flags() & NBD_REPLY_FLAG_DONE).isEqualTo(NBD_REPLY_FLAG_DONE);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(r.payload());
        assertThat(b.getLong()).isEqualTo(offset);
        byte[] data = new byte[b.remaining()];
        b.get(data);
        return data;
    }

    /** True once the server has closed the connection (reads EOF); blocks until then. */
    boolean closedByServer() throws IOException {
        try {
            while (in.read() >= 0) {
                // drain whatever was sent before the close
            }
            return true;
        } catch (EOFException | javax.net.ssl.SSLException e) {
            return true;
        } catch (IOException e) {
            return e.getMessage() != null && e.getMessage().contains("reset");
        }
    }

    void disconnect() throws IOException {
        request(0, NBD_CMD_DISC, 0, 0, 0, null);
        close();
    }

    @Override
    public void close() throws IOException {
        if (tls != null) {
            tls.close();
        }
        ch.close();
    }
}
