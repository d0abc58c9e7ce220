package io.pmcache.nbd;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import org.junit.jupiter.api.Test;

/**
 * A client that goes away while the server writes to it is an expected event (DEBUG "client
 * disconnected"), not "connection failed: Broken pipe" (issue 14). The exceptions here are the
 * JDK's own, from a real socket whose peer closed.
 */
class ClientGoneTest {
    @Test
    void writesToAClosedPeerAreRecognisedAsTheClientGoingAway() throws IOException {
        try (ServerSocketChannel server = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
             SocketChannel client = SocketChannel.open(server.getLocalAddress());
             SocketChannel accepted = server.accept()) {
            client.setOption(java.net.StandardSocketOptions.SO_LINGER, 0); // close sends RST
            client.close();
            IOException failure = null;
            ByteBuffer b = ByteBuffer.allocate(64 << 10);
            for (int i = 0; i < 10_000 && failure == null; i++) { // the first writes may still be accepted
                try {
                    b.clear();
                    accepted.write(b);
                } catch (IOException e) {
                    failure = e;
                }
            }
            assertThat(failure).isNotNull();
            assertThat(Connection.clientGone(failure)).as(failure.toString()).isTrue();
        }
        assertThat(Connection.clientGone(new IOException("No space left on device"))).isFalse();
        assertThat(Connection.clientGone(new IOException((String) null))).isFalse();
    }
}
