package io.pmcache.nbd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;

/** The socket itself: every call goes straight to the channel, no copy. */
final class PlainTransport implements Transport {
    private final SocketChannel ch;

    PlainTransport(SocketChannel ch) {
        this.ch = ch;
    }

    SocketChannel channel() {
        return ch;
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
