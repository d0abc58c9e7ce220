package io.pmcache.nbd;

import java.io.IOException;
import java.nio.channels.ByteChannel;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.SocketChannel;

/**
 * The byte stream of one connection, as the handshake and the transmission phase see it: the
 * socket itself ({@link PlainTransport}) or TLS over it ({@link SecureTransport}, after
 * {@code NBD_OPT_STARTTLS}).
 *
 * <p>Contract (both implementations): reads block until at least one byte is available and return
 * -1 at the end of the stream; writes are blocking and write everything before they return. At most
 * one thread reads at a time (the connection's reader) and at most one writes at a time (the
 * handshake, then {@link ReplyWriter} under its lock), but a read and a write may run concurrently.
 * {@link #close()} may be called from any thread and makes blocked reads and writes fail.
 */
public sealed interface Transport extends ByteChannel, GatheringByteChannel permits PlainTransport, SecureTransport {

    /** The bytes of a blocking channel as they are (the NBD client of a remote backing device). */
    static Transport plain(SocketChannel ch) {
        return new PlainTransport(SocketStream.blocking(ch));
    }

    /** The bytes of a server connection's socket as they are. */
    static Transport plain(SocketStream socket) {
        return new PlainTransport(socket);
    }

    /** True if the stream is encrypted. */
    boolean secure();

    /**
     * Ends the stream politely: TLS sends its close_notify alert first (the spec asks for it after
     * {@code NBD_CMD_DISC}); then the socket is closed. Called only when no other thread uses the
     * transport. Never throws: the connection is over either way.
     */
    void closeGracefully();

    /**
     * Ends the sending side only (TLS sends its close_notify first): the peer reads the end of the
     * stream, while its replies can still be read. Never blocks on a writer busy on a full socket
     * (TLS then skips the close_notify). A transport that cannot half-close closes.
     */
    default void shutdownOutput() throws IOException {
        close();
    }

    /** Closes the socket at once (a hard disconnect). */
    @Override
    void close() throws IOException;
}
