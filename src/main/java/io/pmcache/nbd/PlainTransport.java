package io.pmcache.nbd;

import java.io.IOException;
import java.nio.ByteBuffer;

/** The socket itself: every call goes straight to the socket's stream, no copy. */
final class PlainTransport implements Transport {
    private final SocketStream ch;

    PlainTransport(SocketStream ch) {
        this.ch = ch;
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        return ch.read(dst);
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        return ch.write(src);
    }

    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
        return ch.write(srcs, offset, length);
    }

    @Override
    public long write(ByteBuffer[] srcs) throws IOException {
        return ch.write(srcs);
    }

    @Override
    public boolean isOpen() {
        return ch.isOpen();
    }

    @Override
    public boolean secure() {
        return false;
    }

    @Override
    public void shutdownOutput() throws IOException {
        ch.shutdownOutput();
    }

    @Override
    public void closeGracefully() {
        try {
            ch.close();
        } catch (IOException ignored) {
            // the connection is over either way
        }
    }

    @Override
    public void close() throws IOException {
        ch.close();
    }
}
