package io.pmcache.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.Test;

class ReplyWriterTest {

    /**
     * A reply sent by a handed-off request (a virtual thread) must leave the socket in blocking
     * mode: the JDK switches a socket a virtual thread touches to non-blocking for good, and the
     * reader (a platform thread) then needs read, EAGAIN, poll, read for every request instead of
     * one blocking read. The socket's mode is read from /proc (O_NONBLOCK in the fd's flags).
     */
    @Test
    void aReplyFromAVirtualThreadLeavesTheSocketBlocking() throws Exception {
        ExecutorService platform = Executors.newCachedThreadPool(Thread.ofPlatform().daemon().factory());
        try (ServerSocketChannel listener = ServerSocketChannel.open()
                .bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
             SocketChannel client = SocketChannel.open(listener.getLocalAddress());
             SocketChannel server = listener.accept()) {
            int serverPort = ((InetSocketAddress) server.getLocalAddress()).getPort();
            int clientPort = ((InetSocketAddress) client.getLocalAddress()).getPort();
            assertFalse(nonBlocking(serverPort, clientPort), "an accepted socket starts blocking");

            ReplyWriter replies = new ReplyWriter(Transport.plain(server), false, platform);
            Thread t = Thread.ofVirtual().start(() -> {
                try {
                    replies.ok(42);
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            t.join();

            ByteBuffer reply = ByteBuffer.allocate(16);
            while (reply.hasRemaining()) {
                client.read(reply);
            }
            assertEquals(42, reply.getLong(8), "the reply arrived");
            assertFalse(nonBlocking(serverPort, clientPort), "still blocking after a virtual thread's reply");
        } finally {
            platform.shutdownNow();
        }
    }

    /** O_NONBLOCK of this process's TCP socket from local port {@code local} to {@code remote}. */
    private static boolean nonBlocking(int local, int remote) throws IOException {
        String inode = null;
        for (String table : List.of("/proc/net/tcp", "/proc/net/tcp6")) {
            for (String line : Files.readAllLines(Path.of(table))) {
                String[] f = line.trim().split("\\s+");
                if (f.length > 9 && f[1].endsWith(String.format(":%04X", local))
                        && f[2].endsWith(String.format(":%04X", remote))) {
                    inode = f[9];
                }
            }
        }
        assertTrue(inode != null, "socket " + local + "->" + remote + " not in /proc/net/tcp");
        try (var fds = Files.list(Path.of("/proc/self/fd"))) {
            for (Path fd : fds.toList()) {
                String link;
                try {
                    link = Files.readSymbolicLink(fd).toString();
                } catch (IOException gone) {
                    continue;
                }
                if (link.equals("socket:[" + inode + "]")) {
                    for (String line : Files.readAllLines(Path.of("/proc/self/fdinfo/" + fd.getFileName()))) {
                        if (line.startsWith("flags:")) {
                            return (Integer.parseInt(line.substring(6).trim(), 8) & 04000) != 0;
                        }
                    }
                }
            }
        }
        throw new AssertionError("no fd of this process is socket inode " + inode);
    }
}
