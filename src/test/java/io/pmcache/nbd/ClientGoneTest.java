package io.pmcache.nbd;

import static org.assertj.core.api.Assertions.assertThat;

import static io.pmcache.nbd.NbdConstants.NBD_CMD_READ;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.List;
import org.slf4j.LoggerFactory;
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

    /**
     * End to end: a client that asks for 32 MiB and resets the connection without reading the
     * reply is logged at DEBUG as "client disconnected", never as "connection failed".
     */
    @Test
    void aClientThatResetsMidReplyIsLoggedAsDisconnected() throws Exception {
        Logger nbdLog = (Logger) LoggerFactory.getLogger("io.pmcache.nbd");
        ListAppender<ILoggingEvent> events = new ListAppender<>();
        events.start();
        Level level = nbdLog.getLevel();
        nbdLog.setLevel(Level.DEBUG);
        nbdLog.addAppender(events);
        try (MemoryBlockDevice device = new MemoryBlockDevice(64 << 20);
             NbdServer server = NbdServer.builder().device(device).build()) {
            InetSocketAddress at = server.listenTcp("127.0.0.1", 0);
            NbdTestClient c = NbdTestClient.connect(at);
            c.handshake(false, false);
            c.request(0, NBD_CMD_READ, 1, 0, 32 << 20, null);
            c.resetForTests();
            long deadline = System.nanoTime() + 30_000_000_000L; // bounded: the server notices the reset
            while (server.stats().snapshot().connectionsActive() > 0 && System.nanoTime() < deadline) {
                Thread.sleep(5); // polls a condition, bounded by the deadline
            }
            assertThat(server.stats().snapshot().connectionsActive()).isZero();
        } finally {
            nbdLog.detachAppender(events);
            nbdLog.setLevel(level);
        }
        List<String> lines = events.list.stream().map(e -> e.getLevel() + " " + e.getFormattedMessage()).toList();
        assertThat(lines).noneMatch(l -> l.contains("connection failed"));
        assertThat(lines).anyMatch(l -> l.startsWith("DEBUG") && l.contains("client disconnected"));
    }
}
