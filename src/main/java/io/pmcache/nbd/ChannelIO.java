package io.pmcache.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;

/** Blocking "all or nothing" reads and writes on a channel. */
final class ChannelIO {
    private ChannelIO() {
    }

    /** Fills {@code buf} to its limit; {@link EOFException} if the peer closes first. */
    static void readFully(ReadableByteChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            if (ch.read(buf) < 0) {
                throw new EOFException("peer closed the connection");
            }
        }
    }

    /** Reads and drops {@code count} bytes through {@code scratch}. */
    static void skip(ReadableByteChannel ch, long count, ByteBuffer scratch) throws IOException {
        long left = count;
        while (left > 0) {
            scratch.clear().limit((int) Math.min(scratch.capacity(), left));
            readFully(ch, scratch);
            left -= scratch.limit();
        }
    }

    static void writeFully(WritableByteChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }

    /** Writes every buffer completely, in order, with as few system calls as the channel allows. */
    static void writeFully(GatheringByteChannel ch, ByteBuffer[] bufs) throws IOException {
        long left = 0;
        for (ByteBuffer b : bufs) {
            left += b.remaining();
        }
        while (left > 0) {
            left -= ch.write(bufs);
        }
    }
}
