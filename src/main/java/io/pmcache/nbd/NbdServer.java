package io.pmcache.nbd;

import io.pmcache.device.BlockDevice;
import java.io.IOException;
import java.net.Inet6Address;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An NBD server for one {@link BlockDevice}, on unix sockets and/or TCP.
 *
 * <pre>{@code
 * NbdServer server = NbdServer.builder().device(dev).exportName("pmcache").description("cache")
 *         .readOnly(false).maxConnections(64).build();
 * server.listenUnix(Path.of("/run/pmcache.sock"));   // and/or server.listenTcp("127.0.0.1", 10809)
 * System.out.println(server.uri());                   // nbd+unix:///?socket=/run/pmcache.sock
 * ...
 * server.close();                                     // the device stays open: its owner closes it
 * }</pre>
 *
 * <p>Each accepted connection runs on its own virtual thread (see {@link Connection} for the request
 * pipeline); requests run on virtual threads too. Connections beyond {@code maxConnections} are
 * closed at once with a log line. {@link #close()} stops accepting, stops reading requests, lets
 * in-flight requests finish and answer for up to the shutdown grace period, then closes every
 * connection.
 */
public final class NbdServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NbdServer.class);

    private final ConnectionContext ctx;
    private final int maxConnections;
    private final Duration shutdownGrace;
    private final Semaphore connectionSlots;
    private final Set<Connection> connections = ConcurrentHashMap.newKeySet();
    private final Set<Thread> connectionThreads = ConcurrentHashMap.newKeySet();
    private final List<Listener> listeners = new CopyOnWriteArrayList<>();
    private final AtomicLong connectionIds = new AtomicLong();
    private volatile boolean closed;

    private record Listener(ServerSocketChannel channel, String uri, Path socketFile, Thread acceptor) {
    }

    private NbdServer(Builder b) {
        Export export = new Export(b.exportName, b.description, b.device, b.readOnly);
        ExecutorService requests = Executors.newThreadPerTaskExecutor(Thread.ofVirtual().name("nbd-request").factory());
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().daemon().name("nbd-timer").factory());
        this.ctx = new ConnectionContext(export, requests, new BufferPool(b.bufferRetainPerClass), new NbdStats(), timer,
                b.maxInFlightRequests, b.maxInFlightBytes, b.handshakeTimeout,
                new InlineWatch(timer, connections, Connection.INLINE_TAKEOVER_NANOS));
        this.maxConnections = b.maxConnections;
        this.shutdownGrace = b.shutdownGrace;
        this.connectionSlots = new Semaphore(b.maxConnections);
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * Listens on a unix socket created at {@code socket} with mode 0600. A stale socket file (nobody
     * answers on it) is replaced; a live one or a non-socket file is refused with an IOException.
     */
    public UnixDomainSocketAddress listenUnix(Path socket) throws IOException {
        ensureOpen();
        Path abs = socket.toAbsolutePath();
        ServerSocketChannel channel = UnixSocketFile.bind(abs);
        start(channel, "nbd+unix:///?socket=" + abs, abs);
        log.info("NBD server listening on unix socket {}", abs);
        return UnixDomainSocketAddress.of(abs);
    }

    /** Listens on TCP; port 0 picks a free port. Returns the bound address. */
    public InetSocketAddress listenTcp(String host, int port) throws IOException {
        ensureOpen();
        ServerSocketChannel channel = ServerSocketChannel.open();
        InetSocketAddress bound;
        try {
            channel.setOption(StandardSocketOptions.SO_REUSEADDR, true);
            channel.bind(new InetSocketAddress(host, port));
            bound = (InetSocketAddress) channel.getLocalAddress();
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
        String hostPart = bound.getAddress() instanceof Inet6Address
                ? "[" + bound.getAddress().getHostAddress() + "]" : bound.getAddress().getHostAddress();
        start(channel, "nbd://" + hostPart + ":" + bound.getPort() + "/", null);
        log.info("NBD server listening on tcp {}", bound);
        return bound;
    }

    /** The NBD URI of the first listener, e.g. {@code nbd+unix:///?socket=/path} or {@code nbd://127.0.0.1:10809/}. */
    public String uri() {
        if (listeners.isEmpty()) {
            throw new IllegalStateException("the server is not listening");
        }
        return listeners.getFirst().uri();
    }

    /** The NBD URIs of every listener, in the order they were opened. */
    public List<String> uris() {
        List<String> out = new ArrayList<>();
        for (Listener l : listeners) {
            out.add(l.uri());
        }
        return List.copyOf(out);
    }

    /** Live counters; call {@link NbdStats#snapshot()} to read them. */
    public NbdStats stats() {
        return ctx.stats();
    }

    public int maxConnections() {
        return maxConnections;
    }

    /**
     * Stops accepting, stops reading requests, waits up to the shutdown grace for in-flight requests
     * to be answered, then closes every connection and removes unix socket files. Does not close the
     * device. Idempotent.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (Listener l : listeners) {
            closeQuietly(l);
        }
        connections.forEach(Connection::stopReading);
        long deadline = System.nanoTime() + shutdownGrace.toNanos();
        joinAll(deadline);
        if (!connectionThreads.isEmpty()) {
            log.warn("{} connection(s) still busy after {}; closing them", connectionThreads.size(), shutdownGrace);
            connections.forEach(Connection::abort);
            joinAll(System.nanoTime() + shutdownGrace.toNanos());
        }
        for (Listener l : listeners) {
            join(l.acceptor(), System.nanoTime() + TimeUnit.SECONDS.toNanos(1));
        }
        ctx.requests().shutdown();
        ctx.timer().shutdownNow();
        if (!connectionThreads.isEmpty()) {
            log.warn("{} connection(s) did not stop: a device call is blocked", connectionThreads.size());
        }
        log.info("NBD server closed");
    }

    private void start(ServerSocketChannel channel, String uri, Path socketFile) {
        Thread acceptor = Thread.ofVirtual().name("nbd-accept").unstarted(() -> acceptLoop(channel));
        listeners.add(new Listener(channel, uri, socketFile, acceptor));
        acceptor.start();
        if (closed) {
            closeQuietly(listeners.getLast());
        }
    }

    private void acceptLoop(ServerSocketChannel server) {
        while (!closed) {
            SocketChannel ch;
            try {
                ch = server.accept();
            } catch (IOException e) {
                if (!closed) {
                    log.error("accepting NBD connections failed; listener stops: {}", e.toString());
                }
                return;
            }
            admit(ch);
        }
    }

    private void admit(SocketChannel ch) {
        String peer = "nbd#" + connectionIds.incrementAndGet() + describe(ch);
        if (closed || !connectionSlots.tryAcquire()) {
            ctx.stats().connectionRefused();
            log.warn("{}: refused: {}", peer, closed ? "server is closing"
                    : "connection limit of " + maxConnections + " reached");
            try {
                ch.close();
            } catch (IOException e) {
                log.debug("{}: close failed: {}", peer, e.toString());
            }
            return;
        }
        ctx.stats().connectionOpened();
        try {
            if (ch.getRemoteAddress() instanceof InetSocketAddress) {
                ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
            }
        } catch (IOException e) {
            log.debug("{}: socket options not set: {}", peer, e.toString());
        }
        Connection c = new Connection(ch, peer, ctx, connectionThreads, closing -> {
            connections.remove(closing);
            connectionThreads.remove(Thread.currentThread());
            connectionSlots.release();
            ctx.stats().connectionClosed();
            log.debug("{}: closed", peer);
        });
        connections.add(c);
        Thread t = Thread.ofPlatform().daemon().name(peer).unstarted(c);
        connectionThreads.add(t);
        log.debug("{}: accepted", peer);
        t.start();
        if (closed) {
            c.stopReading();
        }
    }

    private static String describe(SocketChannel ch) {
        try {
            return ch.getRemoteAddress() instanceof InetSocketAddress a ? " (" + a + ")" : "";
        } catch (IOException e) {
            return "";
        }
    }

    private void joinAll(long deadlineNanos) {
        for (Thread t : List.copyOf(connectionThreads)) {
            join(t, deadlineNanos);
        }
    }

    private static void join(Thread t, long deadlineNanos) {
        long left = deadlineNanos - System.nanoTime();
        if (left <= 0) {
            return;
        }
        try {
            t.join(Duration.ofNanos(left));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void closeQuietly(Listener l) {
        try {
            l.channel().close();
            if (l.socketFile() != null) {
                Files.deleteIfExists(l.socketFile());
            }
        } catch (IOException e) {
            log.warn("closing listener {} failed: {}", l.uri(), e.toString());
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("the server is closed");
        }
    }

    /** Configures an {@link NbdServer}; only {@link #device} is required. */
    public static final class Builder {
        private BlockDevice device;
        private String exportName = "pmcache";
        private String description = "";
        private boolean readOnly;
        private int maxConnections = 64;
        private int maxInFlightRequests = 128;
        private long maxInFlightBytes = 64L << 20;
        private long bufferRetainPerClass = 16L << 20;
        private Duration handshakeTimeout = Duration.ofSeconds(30);
        private Duration shutdownGrace = Duration.ofSeconds(5);

        private Builder() {
        }

        /** The device served; the server never closes it. */
        public Builder device(BlockDevice device) {
            this.device = Objects.requireNonNull(device, "device");
            return this;
        }

        /** The export's name (default "pmcache"); the empty name is always accepted too. */
        public Builder exportName(String name) {
            if (name.length() > NbdConstants.MAX_STRING_LENGTH) {
                throw new IllegalArgumentException("export name longer than " + NbdConstants.MAX_STRING_LENGTH);
            }
            this.exportName = name;
            return this;
        }

        /** Free text shown by clients (NBD_INFO_DESCRIPTION); default none. */
        public Builder description(String description) {
            this.description = Objects.requireNonNull(description, "description");
            return this;
        }

        public Builder readOnly(boolean readOnly) {
            this.readOnly = readOnly;
            return this;
        }

        /** Open connections allowed at once (default 64); more are closed at accept. */
        public Builder maxConnections(int n) {
            this.maxConnections = positive(n, "maxConnections");
            return this;
        }

        /** Requests in flight per connection before the server stops reading it (default 128). */
        public Builder maxInFlightRequests(int n) {
            this.maxInFlightRequests = positive(n, "maxInFlightRequests");
            return this;
        }

        /** READ/WRITE payload bytes in flight per connection before it stops reading (default 64 MiB). */
        public Builder maxInFlightBytes(long n) {
            this.maxInFlightBytes = positive(n, "maxInFlightBytes");
            return this;
        }

        /** Idle payload buffers kept per size class for reuse (default 16 MiB). */
        public Builder bufferRetainPerClass(long n) {
            this.bufferRetainPerClass = positive(n, "bufferRetainPerClass");
            return this;
        }

        /** Time a client has to finish the handshake (default 30 s). */
        public Builder handshakeTimeout(Duration d) {
            this.handshakeTimeout = positive(d, "handshakeTimeout");
            return this;
        }

        /** Time {@link NbdServer#close()} lets in-flight requests finish (default 5 s). */
        public Builder shutdownGrace(Duration d) {
            this.shutdownGrace = positive(d, "shutdownGrace");
            return this;
        }

        public NbdServer build() {
            if (device == null) {
                throw new IllegalStateException("device is required");
            }
            return new NbdServer(this);
        }

        private static int positive(int n, String what) {
            if (n < 1) {
                throw new IllegalArgumentException(what + " must be positive: " + n);
            }
            return n;
        }

        private static long positive(long n, String what) {
            if (n < 1) {
                throw new IllegalArgumentException(what + " must be positive: " + n);
            }
            return n;
        }

        private static Duration positive(Duration d, String what) {
            if (d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException(what + " must be positive: " + d);
            }
            return d;
        }
    }
}
