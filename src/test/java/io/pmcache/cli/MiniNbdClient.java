package io.pmcache.cli;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * The smallest NBD client the operator-path test needs: fixed newstyle handshake with
 * NBD_OPT_EXPORT_NAME, then WRITE, READ, FLUSH and DISC with simple replies, one request at a time.
 * Independent of the server's code on purpose: it checks the wire, not shared constants.
 */
final class MiniNbdClient implements AutoCloseable {
    private static final long NBDMAGIC = 0x4e42444d41474943L;
    private static final long IHAVEOPT = 0x49484156454F5054L;
    private static final int REQUEST_MAGIC = 0x25609513;
    private static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    private static final int CMD_READ = 0;
    private static final int CMD_WRITE = 1;
    private static final int CMD_DISC = 2;
    private static final int CMD_FLUSH = 3;

    private final SocketChannel ch;
    private final DataInputStream in;
    private final DataOutputStream out;
    private final long size;
    private long handle = 1;

    MiniNbdClient(Path socket, String export) throws IOException {
        ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        ch.connect(UnixDomainSocketAddress.of(socket));
        in = new DataInputStream(Channels.newInputStream(ch));
        out = new DataOutputStream(Channels.newOutputStream(ch));
        if (in.readLong() != NBDMAGIC || in.readLong() != IHAVEOPT) {
            throw new IOException("not an NBD newstyle server");
        }
        in.readUnsignedShort();
        out.writeInt(1 | 2); // FIXED_NEWSTYLE | NO_ZEROES
        byte[] name = export.getBytes(StandardCharsets.UTF_8);
        out.writeLong(IHAVEOPT);
        out.writeInt(1); // NBD_OPT_EXPORT_NAME
        out.writeInt(name.length);
        out.write(name);
        out.flush();
        size = in.readLong();
        in.readUnsignedShort(); // transmission flags
    }

    long size() {
        return size;
    }

    private void request(int type, long offset, int length, byte[] data) throws IOException {
        out.writeInt(REQUEST_MAGIC);
        out.writeShort(0);
        out.writeShort(type);
        out.writeLong(handle);
        out.writeLong(offset);
        out.writeInt(length);
        if (data != null) {
            out.write(data);
        }
        out.flush();
    }

    private void reply() throws IOException {
        if (in.readInt() != SIMPLE_REPLY_MAGIC) {
            throw new IOException("bad reply magic");
        }
        int error = in.readInt();
        long h = in.readLong();
        if (h != handle) {
            throw new IOException("reply for handle " + h + ", expected " + handle);
        }
        handle++;
        if (error != 0) {
            throw new IOException("NBD error " + error);
        }
    }

    void write(long offset, byte[] data) throws IOException {
        request(CMD_WRITE, offset, data.length, data);
        reply();
    }

    byte[] read(long offset, int length) throws IOException {
        request(CMD_READ, offset, length, null);
        reply();
        byte[] b = new byte[length];
        in.readFully(b);
        return b;
    }

    void flush() throws IOException {
        request(CMD_FLUSH, 0, 0, null);
        reply();
    }

    @Override
    public void close() throws IOException {
        try {
            request(CMD_DISC, 0, 0, null);
        } finally {
            ch.close();
        }
    }
}
