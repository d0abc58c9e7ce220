package io.pmcache.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A polled {@link SocketStream} keeps the blocking contract of {@link Transport}: reads wait for
 * bytes (spinning or sleeping), writes write everything, and a close from another thread ends a
 * sleeping read or write and releases the socket (the peer sees the end of the stream).
 */
class SocketStreamTest {
    private static final Duration BOUND = Duration.ofSeconds(20);

    @TempDir
    Path dir;
    private ServerSocketChannel listener;
    private SocketChannel peer;
    private SocketChannel accepted;

    @BeforeEach
    void connect() throws IOException {
        UnixDomainSocketAddress address = UnixDomainSocketAddress.of(dir.resolve("s.sock"));
        listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX).bind(address);
        peer = SocketChannel.open(address);
        accepted = listener.accept();
    }

    @AfterEach
    void close() throws IOException {
        peer.close();
        accepted.close();
        listener.close();
    }

    private static BusyPoll spinning() {
        return new BusyPoll(Duration.ofNanos(200_000), 1, new NbdStats());
    }

    @Test
    void readsWaitForBytesThatComeLaterWhetherSpinningOrNot() throws Exception {
        for (BusyPoll poll : new BusyPoll[] {BusyPoll.OFF, spinning()}) {
            SocketStream s = SocketStream.polled(accepted, poll);
            for (int i = 0; i < 20; i++) {
                int round = i;
                byte value = (byte) round;
                CompletableFuture<Void> send = CompletableFuture.runAsync(() -> {
                    try {
                        Thread.sleep(round % 3); // 0: often while spinning; 1-2 ms: after the window
                        peer.write(ByteBuffer.wrap(new byte[] {value}));
                    } catch (IOException | InterruptedException e) {
                        throw new RuntimeException(e);
                    }
                });
                ByteBuffer one = ByteBuffer.allocate(1);
                int n = assertTimeoutPreemptively(BOUND, () -> s.read(one));
                assertThat(n).isEqualTo(1);
                assertThat(one.get(0)).isEqualTo(value);
                send.get();
            }
        }
    }

    @Test
    void theEndOfTheStreamIsMinusOne() throws Exception {
        SocketStream s = SocketStream.polled(accepted, spinning());
        CompletableFuture.runAsync(() -> {
            try {
                Thread.sleep(5);
                peer.shutdownOutput();
            } catch (IOException | InterruptedException e) {
                throw new RuntimeException(e);
            }
        });
        assertThat(assertTimeoutPreemptively(BOUND, () -> s.read(ByteBuffer.allocate(8)))).isEqualTo(-1);
    }

    @Test
    void aWriteLargerThanTheSocketTakesWaitsForTheReaderAndSendsEveryByteInOrder() throws Exception {
        writeLargerThanTheSocketTakes(SocketStream.polled(accepted, BusyPoll.OFF), false);
    }

    /**
     * A blocking channel's gathering write may write only part: the JDK switches a socket a
     * virtual thread used to non-blocking for good, and its blocking writes then return what one
     * {@code writev} took (the NBD client's writes come from virtual threads). The stream writes
     * the rest (it once tried to wait in a selector, which a blocking channel refuses:
     * IllegalBlockingModeException under load in CI).
     */
    @Test
    void aBlockingStreamWritesEverythingEvenWhenAWriteTakesOnlyPart() throws Exception {
        writeLargerThanTheSocketTakes(SocketStream.blocking(accepted), true);
    }

    private void writeLargerThanTheSocketTakes(SocketStream s, boolean fromVirtualThread) throws Exception {
        byte[] data = new byte[8 << 20];
        new Random(7).nextBytes(data);
        CompletableFuture<byte[]> received = CompletableFuture.supplyAsync(() -> {
            try {
                ByteBuffer in = ByteBuffer.allocate(data.length);
                while (in.hasRemaining()) {
                    ByteBuffer chunk = ByteBuffer.allocate(Math.min(in.remaining(), 100_000));
                    int n = peer.read(chunk);
                    if (n < 0) {
                        break;
                    }
                    in.put(chunk.flip());
                    Thread.sleep(0, 100_000); // a slow reader: the writer finds the socket full
                }
                return in.array();
            } catch (IOException | InterruptedException e) {
                throw new RuntimeException(e);
            }
        });
        ByteBuffer[] parts = {
                ByteBuffer.wrap(data, 0, 1000), ByteBuffer.wrap(data, 1000, 3 << 20),
                ByteBuffer.wrap(data, 1000 + (3 << 20), data.length - 1000 - (3 << 20))};
        CompletableFuture<Long> write = new CompletableFuture<>();
        (fromVirtualThread ? Thread.ofVirtual() : Thread.ofPlatform()).start(() -> {
            try {
                write.complete(s.write(parts, 0, 3));
            } catch (Throwable e) {
                write.completeExceptionally(e);
            }
        });
        assertThat(write.get(BOUND.toSeconds(), TimeUnit.SECONDS)).isEqualTo(data.length);
        assertThat(received.get(BOUND.toSeconds(), TimeUnit.SECONDS)).isEqualTo(data);
    }

    @Test
    void aCloseFromAnotherThreadEndsASleepingReadAndThePeerSeesTheEnd() throws Exception {
        SocketStream s = SocketStream.polled(accepted, spinning());
        CompletableFuture<Integer> read = CompletableFuture.supplyAsync(() -> {
            try {
                return s.read(ByteBuffer.allocate(8));
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        });
        Thread.sleep(50); // past the spin: the reader sleeps in its selector
        s.close();
        assertThatThrownBy(() -> read.get(BOUND.toSeconds(), TimeUnit.SECONDS))
                .isInstanceOf(ExecutionException.class).cause().cause().isInstanceOf(ClosedChannelException.class);
        assertThat(assertTimeoutPreemptively(BOUND, () -> peer.read(ByteBuffer.allocate(8))))
                .as("the socket's descriptor was released: the peer reads the end").isEqualTo(-1);
        assertThatThrownBy(() -> s.read(ByteBuffer.allocate(8))).isInstanceOf(ClosedChannelException.class);
    }

    @Test
    void aCloseFromAnotherThreadEndsAWriteWaitingForAFullSocket() throws Exception {
        SocketStream s = SocketStream.polled(accepted, BusyPoll.OFF);
        CompletableFuture<Long> write = CompletableFuture.supplyAsync(() -> {
            try {
                return (long) s.write(ByteBuffer.allocate(64 << 20)); // the peer never reads
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        });
        Thread.sleep(100);
        assertThat(write).as("the writer waits for room").isNotDone();
        s.close();
        assertThatThrownBy(() -> write.get(BOUND.toSeconds(), TimeUnit.SECONDS))
                .isInstanceOf(ExecutionException.class).cause().cause().isInstanceOf(ClosedChannelException.class);
    }

    @Test
    void closingReleasesTheSelectorsOfSleepingReadsAndWrites() throws Exception {
        long before = selectors();
        for (int i = 0; i < 20; i++) {
            try (SocketChannel p = SocketChannel.open(listener.getLocalAddress());
                 SocketChannel a = listener.accept()) {
                SocketStream s = SocketStream.polled(a, BusyPoll.OFF);
                p.write(ByteBuffer.wrap(new byte[1]));
                CompletableFuture<Integer> read = CompletableFuture.supplyAsync(() -> {
                    try {
                        s.read(ByteBuffer.allocate(1)); // there already
                        return s.read(ByteBuffer.allocate(1)); // sleeps
                    } catch (IOException e) {
                        throw new RuntimeException(e);
                    }
                });
                Thread.sleep(10);
                s.close();
                assertThatThrownBy(() -> read.get(BOUND.toSeconds(), TimeUnit.SECONDS))
                        .isInstanceOf(ExecutionException.class);
            }
        }
        assertThat(selectors()).as("epoll descriptors left open").isLessThanOrEqualTo(before);
    }

    /** This process's open epoll descriptors (one per open selector). */
    private static long selectors() throws IOException {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.filter(fd -> {
                try {
                    return Files.readSymbolicLink(fd).toString().contains("eventpoll");
                } catch (IOException e) {
                    return false;
                }
            }).count();
        }
    }
}
