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
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An NBD server for one {@link BlockDevice} or several (exports by name, added and removed while it
 * runs: {@link #addExport}, {@link #removeExport}), on unix sockets and/or TCP.
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
 * <p>Each accepted connection is read by a platform thread of a reader pool (see {@link Connection}
 * for the request pipeline); requests run on virtual threads. A connection beyond
 * {@code maxConnections} gets the greeting, and every option it sends is refused with
 * {@code NBD_REP_ERR_POLICY} and a message saying the server has too many connections (clients show
 * it), until it leaves or the handshake timeout closes it; it holds no connection slot, and at most
 * {@value #MAX_REFUSING} are refused that way at once (more are closed at once). Either way it
 * counts as refused, with a log line, never as served.
 *
 * <h2>Memory</h2>
 * Request payloads live in pooled direct buffers. Per connection at most {@code maxInFlightRequests}
 * requests and {@code maxInFlightBytes} of payload are in flight; for the whole server at most
 * {@code maxBufferedBytes} (default: a quarter of the JVM's direct memory limit, 64 MiB .. 1 GiB);
 * past either bound the readers stop reading until replies have gone out. Idle buffers kept for
 * reuse: {@code bufferRetain} (default 64 MiB). Each connection also has a 256 KiB input buffer and
 * a 64 KiB reply buffer. A request whose buffer cannot be allocated anyway is answered ENOMEM.
 *
 * <h2>Stop</h2>
 * <pre>{@code
 * server.drain();    // stop accepting; requests received from now on: ESHUTDOWN; wait for those in flight (grace)
 * device.close();    // calls still blocked in the device fail (DeviceClosedException: ESHUTDOWN)
 * server.close();    // wait for their replies (grace), then close every connection
 * }</pre>
 * {@link #close()} alone drains first. A device call that never returns costs at most two grace
 * periods (and a second), after which its connection is closed without its reply. The server never
 * closes the device.
 */
public final class NbdServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NbdServer.class);

    private final ConnectionContext ctx;
    private final int maxConnections;
    private final Duration shutdownGrace;
    private final Semaphore connectionSlots;
    /**
     * Most connections over the limit refused in their handshake at once (see class comment): each
     * costs a virtual thread, its socket and a few KiB for up to the handshake timeout, so a flood
     * beyond the limit stays bounded; past it they are closed before the greeting, as before.
     */
    static final int MAX_REFUSING = 16;
    private final Semaphore refusalSlots = new Semaphore(MAX_REFUSING);
    /** The sockets of the connections being refused now, closed when the server stops. */
    private final Set<SocketStream> refusing = ConcurrentHashMap.newKeySet();
    private final Set<Connection> connections = ConcurrentHashMap.newKeySet();
    private final List<Listener> listeners = new CopyOnWriteArrayList<>();
    private final AtomicLong connectionIds = new AtomicLong();
    /** No longer accepting, no request starts any more: set by {@link #drain()}. */
    private volatile boolean closed;
    private final AtomicBoolean stopped = new AtomicBoolean();
    private final AtomicBoolean finished = new AtomicBoolean();

    /**
     * A listening socket. Its NBD URI for an export is {@code uriBefore + the export name (URI path
     * encoded) + uriAfter}; {@link #uri()} is the one for the empty (default) name.
     */
    private record Listener(ServerSocketChannel channel, String uriBefore, String uriAfter, Path socketFile,
                            Thread acceptor) {
        String uri(String exportName) {
            return uriBefore + exportPath(exportName) + uriAfter;
        }

        String uri() {
            return uri("");
        }
    }

    private NbdServer(Builder b) {
        Exports exports = new Exports();
        if (b.device != null) {
            exports.add(new Export(b.exportName, b.description, b.device, b.readOnly), true);
        }
        for (Export e : b.more) {
            exports.add(e, false);
        }
        ExecutorService readers = Executors.newCachedThreadPool(Thread.ofPlatform().daemon().name("nbd-reader-", 1).factory());
        ExecutorService requests = Executors.newThreadPerTaskExecutor(Thread.ofVirtual().name("nbd-request").factory());
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().daemon().name("nbd-timer").factory());
        long budget = b.maxBufferedBytes > 0 ? b.maxBufferedBytes : defaultMaxBufferedBytes();
        NbdStats stats = new NbdStats();
        this.ctx = new ConnectionContext(exports, readers, requests, new BufferPool(b.bufferRetain, b.allocator),
                new PayloadBudget(budget), stats, timer, b.maxInFlightRequests, b.maxInFlightBytes,
                b.handshakeTimeout, new InlineWatch(timer, connections, Connection.INLINE_TAKEOVER_NANOS), b.tls,
                BusyPoll.of(b.busyPoll, stats));
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
        start(channel, scheme() + "+unix:///", "?socket=" + abs, abs);
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
        start(channel, scheme() + "://" + hostPart + ":" + bound.getPort() + "/", "", null);
        log.info("NBD server listening on tcp {}", bound);
        return bound;
    }

    /** {@code nbds} (libnbd's scheme that insists on TLS) when the server requires TLS, else {@code nbd}. */
    private String scheme() {
        return ctx.tls().mode() == TlsMode.REQUIRE ? "nbds" : "nbd";
    }

    /** The NBD URI of the first listener, e.g. {@code nbd+unix:///?socket=/path} or {@code nbd://127.0.0.1:10809/}. */
    public String uri() {
        if (listeners.isEmpty()) {
            throw new IllegalStateException("the server is not listening");
        }
        return listeners.getFirst().uri();
    }

    /**
     * The NBD URIs of every listener, in the order they were opened, for the empty export name: the
     * default export, or the only one (see {@link Exports}); with several exports, good for
     * {@code nbdinfo --list} only.
     */
    public List<String> uris() {
        return uris("");
    }

    /**
     * The NBD URIs of export {@code exportName} at every listener, in the order they were opened,
     * e.g. {@code nbd+unix:///vm1?socket=/run/pm.sock} and {@code nbd://127.0.0.1:10809/vm1} (the
     * export name is the URI's path, percent-encoded where RFC 3986 asks).
     */
    public List<String> uris(String exportName) {
        List<String> out = new ArrayList<>();
        for (Listener l : listeners) {
            out.add(l.uri(exportName));
        }
        return List.copyOf(out);
    }

    /** {@code name} as the path of an NBD URI: RFC 3986's unreserved characters and '/' stay, the rest is %XX of UTF-8. */
    static String exportPath(String name) {
        StringBuilder b = new StringBuilder();
        for (byte c : name.getBytes(java.nio.charset.StandardCharsets.UTF_8)) {
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'
                    || c == '_' || c == '~' || c == '/') {
                b.append((char) c);
            } else {
                b.append('%').append(String.format("%02X", c & 0xff));
            }
        }
        return b.toString();
    }

    /**
     * Starts offering {@code device} as export {@code name} to new connections; the connections
     * already open are not touched. The server never closes the device.
     *
     * @throws IllegalArgumentException when an export of that name exists
     */
    public void addExport(String name, String description, BlockDevice device, boolean readOnly) {
        ensureOpen();
        ctx.exports().add(new Export(checkName(name), description, device, readOnly), false);
        log.info("NBD export '{}' added", name);
    }

    /**
     * Stops offering export {@code name}: new connections no longer find it; connections serving it
     * get ESHUTDOWN for every request from now on, their requests in flight get the shutdown grace
     * to finish, then they are closed. Connections to other exports are not touched. Returns false
     * when there was no such export. Afterwards no request reaches its device (which the caller may
     * then close), unless a device call outlived the grace (logged).
     */
    public boolean removeExport(String name) {
        Export e = ctx.exports().remove(name);
        if (e == null) {
            return false;
        }
        List<Connection> serving = new ArrayList<>();
        for (Connection c : connections) {
            if (c.export() == e) {
                serving.add(c);
                c.stopServing();
            }
        }
        long deadline = System.nanoTime() + shutdownGrace.toNanos();
        boolean idle = true;
        try {
            for (Connection c : serving) {
                idle &= c.awaitIdle(deadline);
            }
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
            idle = false;
        }
        serving.forEach(Connection::abort);
        if (!idle) {
            log.warn("export '{}' removed with a request still running in its device", name);
        }
        log.info("NBD export '{}' removed; {} connection(s) to it closed", name, serving.size());
        return true;
    }

    /** The names of the exports offered now, in the order they were added. */
    public List<String> exportNames() {
        return ctx.exports().all().stream().map(Export::name).toList();
    }

    private static String checkName(String name) {
        if (name.isEmpty() || name.length() > NbdConstants.MAX_STRING_LENGTH) {
            throw new IllegalArgumentException("an export name is 1.." + NbdConstants.MAX_STRING_LENGTH
                    + " characters, got " + name.length());
        }
        return name;
    }

    /** Live counters; call {@link NbdStats#snapshot()} to read them. */
    public NbdStats stats() {
        return ctx.stats();
    }

    public int maxConnections() {
        return maxConnections;
    }

    /** Payload bytes all connections may hold at once, by default (see class comment). */
    public long maxBufferedBytes() {
        return ctx.budget().capacity();
    }

    /**
     * The first half of stopping (see class comment): stops accepting connections and removes unix
     * socket files; from now on no request starts: every request received is answered ESHUTDOWN (the
     * spec's error for a server shutting down, after which clients disconnect), and handshake options
     * {@code NBD_REP_ERR_SHUTDOWN}. Then waits up to the shutdown grace for the requests in flight.
     * Returns true if none is left. Connections stay open (their readers answer what clients send)
     * until {@link #close()}. Call it once, before closing the device.
     */
    public boolean drain() {
        if (stopped.compareAndSet(false, true)) {
            closed = true;
            for (Listener l : listeners) {
                closeQuietly(l);
            }
            ctx.budget().close();
            refusing.forEach(NbdServer::closeQuietly);
            connections.forEach(Connection::stopServing);
            log.info("NBD server stopping: {} connection(s); requests from now on are answered ESHUTDOWN",
                    connections.size());
        }
        long deadline = System.nanoTime() + shutdownGrace.toNanos();
        boolean idle = awaitRequests(deadline);
        if (!idle) {
            log.warn("requests still in flight after {}: closing the device fails them", shutdownGrace);
            // except a streamed WRITE waiting for its payload from the client: only closing its connection ends it
            connections.forEach(Connection::abortStreamedPayload);
        }
        return idle;
    }

    /**
     * Stops serving: {@link #drain()} if not done yet; waits up to the shutdown grace until every
     * request is answered (after the device was closed, the ones blocked in it fail fast) and every
     * connection's reader waits for more, then closes every connection. Does not close the device.
     * Bounded: a device call that never returns is left behind (logged). Idempotent.
     */
    @Override
    public void close() {
        if (!finished.compareAndSet(false, true)) {
            return;
        }
        if (!stopped.get()) {
            drain();
        }
        long deadline = System.nanoTime() + shutdownGrace.toNanos();
        boolean idle = awaitRequests(deadline);
        awaitQuiet(deadline);
        connections.forEach(Connection::abort);
        // readers see their socket closed, requests their reply fail: moments, unless a device call hangs
        awaitCondition(System.nanoTime() + Math.min(shutdownGrace.toNanos(), TimeUnit.SECONDS.toNanos(1)),
                connections::isEmpty);
        for (Listener l : listeners) {
            join(l.acceptor(), System.nanoTime() + TimeUnit.SECONDS.toNanos(1));
        }
        ctx.requests().shutdown();
        ctx.readers().shutdown();
        ctx.timer().shutdownNow();
        if (!idle || !connections.isEmpty()) {
            log.warn("{} connection(s) closed with a device call still running (blocked in the device)",
                    connections.size());
        }
        log.info("NBD server closed");
    }

    /** Waits until no connection has a request in flight, or the deadline. */
    private boolean awaitRequests(long deadlineNanos) {
        try {
            for (Connection c : List.copyOf(connections)) {
                if (!c.awaitIdle(deadlineNanos)) {
                    return false;
                }
            }
            return true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /**
     * Waits until every connection is {@link Connection#quiet quiet} on two looks 10 ms apart (all
     * it read is answered and its reader waits for more), or the deadline.
     */
    private void awaitQuiet(long deadlineNanos) {
        java.util.Map<Connection, Long> before = java.util.Map.of();
        while (System.nanoTime() - deadlineNanos < 0) {
            java.util.Map<Connection, Long> now = new java.util.HashMap<>();
            boolean all = true;
            for (Connection c : List.copyOf(connections)) {
                long token = c.quiet();
                now.put(c, token);
                all &= token >= 0 && Long.valueOf(token).equals(before.get(c));
            }
            if (all) {
                return;
            }
            before = now;
            long wait = Math.min(TimeUnit.MILLISECONDS.toNanos(10), deadlineNanos - System.nanoTime());
            if (wait > 0) {
                try {
                    TimeUnit.NANOSECONDS.sleep(wait);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    private void awaitCondition(long deadlineNanos, java.util.function.BooleanSupplier done) {
        synchronized (connections) {
            while (!done.getAsBoolean()) {
                long left = deadlineNanos - System.nanoTime();
                if (left <= 0) {
                    return;
                }
                try {
                    // woken when a connection ends
                    connections.wait(Math.max(1, Math.min(10, TimeUnit.NANOSECONDS.toMillis(left))));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    private static long defaultMaxBufferedBytes() {
        long direct = maxDirectMemory();
        return Math.clamp(direct / 4, 2L * NbdConstants.MAX_PAYLOAD_SIZE, 1L << 30);
    }

    /** The JVM's direct memory limit: -XX:MaxDirectMemorySize, or the heap's maximum when unset. */
    static long maxDirectMemory() {
        try {
            String v = java.lang.management.ManagementFactory
                    .getPlatformMXBean(com.sun.management.HotSpotDiagnosticMXBean.class)
                    .getVMOption("MaxDirectMemorySize").getValue();
            long n = Long.parseLong(v);
            if (n > 0) {
                return n;
            }
        } catch (RuntimeException e) {
            log.debug("MaxDirectMemorySize unknown ({}); assuming the heap's maximum", e.toString());
        }
        return Runtime.getRuntime().maxMemory();
    }

    private void start(ServerSocketChannel channel, String uriBefore, String uriAfter, Path socketFile) {
        Thread acceptor = Thread.ofVirtual().name("nbd-accept").unstarted(() -> acceptLoop(channel));
        listeners.add(new Listener(channel, uriBefore, uriAfter, socketFile, acceptor));
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
        if (closed) {
            ctx.stats().connectionRefused();
            log.warn("{}: refused: server is closing", peer);
            closeQuietly(ch);
            return;
        }
        SocketStream socket;
        try {
            socket = SocketStream.polled(ch, ctx.busyPoll());
        } catch (IOException e) {
            log.warn("{}: closed at once: the socket cannot be made non-blocking: {}", peer, e.toString());
            closeQuietly(ch);
            return;
        }
        if (!connectionSlots.tryAcquire()) {
            refuseOverLimit(socket, peer);
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
        Connection c = new Connection(socket, peer, ctx, ended -> {
            connectionSlots.release();
            ctx.stats().connectionClosed();
            synchronized (connections) {
                connections.remove(ended);
                connections.notifyAll();
            }
            log.debug("{}: closed", peer);
        });
        connections.add(c);
        log.debug("{}: accepted", peer);
        if (closed) {
            c.stopServing();
        }
        try {
            ctx.readers().execute(c);
        } catch (java.util.concurrent.RejectedExecutionException e) { // closed meanwhile
            connections.remove(c);
            c.abort();
            connectionSlots.release();
            ctx.stats().connectionClosed();
        }
    }

    /**
     * A connection over the limit: counted as refused, never as served (it takes no slot and is not
     * in {@link #connections}). Closing it before the greeting, as pmcache did, left clients to say
     * only that the server closed the connection; the spec asks a server that does not want a client
     * to "error inbound options until the client gets the hint that it is unwelcome". So it gets
     * the greeting and each option an error reply saying why, on a virtual thread, until it leaves
     * (NBD_OPT_ABORT, or it hangs up) or the handshake timeout closes it.
     *
     * <p>The error is NBD_REP_ERR_POLICY: "the option is known and valid, but server-side policy
     * forbids the server to allow it" — the connection limit is the operator's policy
     * ({@code --max-connections}). Not NBD_REP_ERR_SHUTDOWN: that says the server is going away,
     * which it is not (qemu shows it as "Server shutting down"). STARTTLS is refused too, before any
     * TLS handshake, so a refused connection costs no public-key operation; a libnbd client that
     * requires TLS then reports only that the server refused TLS (it drops the message of a
     * STARTTLS error), qemu shows the message as for any option.
     */
    private void refuseOverLimit(SocketStream ch, String peer) {
        ctx.stats().connectionRefused();
        String why = "connection limit of " + maxConnections + " reached";
        if (!refusalSlots.tryAcquire()) {
            log.warn("{}: refused: {}; closed at once ({} more are being refused already)", peer, why, MAX_REFUSING);
            closeQuietly(ch);
            return;
        }
        log.warn("{}: refused: {}; the client is told so in the handshake", peer, why);
        Handshake.Refusal tooMany = new Handshake.Refusal(NbdConstants.NBD_REP_ERR_POLICY,
                "too many connections: this server serves at most " + maxConnections + " at once (its "
                + "--max-connections) and all are in use; try again when one has ended");
        refusing.add(ch);
        Runnable negotiate = () -> {
            java.util.concurrent.ScheduledFuture<?> deadline = null;
            try {
                deadline = ctx.timer().schedule(() -> {
                    log.info("{}: refused connection still negotiating after {}; closing", peer,
                            ctx.handshakeTimeout());
                    closeQuietly(ch);
                }, ctx.handshakeTimeout().toNanos(), TimeUnit.NANOSECONDS);
                new Handshake(Transport.plain(ch), ch, ctx.tls(), ctx.exports(), peer,
                        () -> closed ? Handshake.Refusal.SHUTDOWN : tooMany).run();
                log.debug("{}: refused client left (NBD_OPT_ABORT)", peer);
            } catch (IOException | RuntimeException e) {
                log.debug("{}: refused connection ended: {}", peer, e.toString());
            } finally {
                if (deadline != null) {
                    deadline.cancel(false);
                }
                closeQuietly(ch);
                refusing.remove(ch);
                refusalSlots.release();
            }
        };
        try {
            ctx.requests().execute(negotiate);
        } catch (java.util.concurrent.RejectedExecutionException e) { // closed meanwhile
            closeQuietly(ch);
            refusing.remove(ch);
            refusalSlots.release();
        }
    }

    private static void closeQuietly(java.nio.channels.Channel ch) {
        try {
            ch.close();
        } catch (IOException e) {
            log.debug("close failed: {}", e.toString());
        }
    }

    private static String describe(SocketChannel ch) {
        try {
            return ch.getRemoteAddress() instanceof InetSocketAddress a ? " (" + a + ")" : "";
        } catch (IOException e) {
            return "";
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
        private long maxBufferedBytes;
        private long bufferRetain = 64L << 20;
        private java.util.function.IntFunction<java.nio.ByteBuffer> allocator = java.nio.ByteBuffer::allocateDirect;
        private Duration handshakeTimeout = Duration.ofSeconds(30);
        private Duration shutdownGrace = Duration.ofSeconds(5);
        private Duration busyPoll = BusyPoll.DEFAULT_WINDOW;
        private TlsConfig tls = TlsConfig.off();
        private final List<Export> more = new ArrayList<>();
        private boolean startEmpty;

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

        /**
         * One more export (any number): served under {@code name} only; the empty name finds it only
         * when it is the server's only export. With exports added here, {@link #device} is optional.
         */
        public Builder export(String name, String description, BlockDevice device, boolean readOnly) {
            more.add(new Export(checkName(name), description, device, readOnly));
            return this;
        }

        /** Allows a server with no export yet (they come with {@link NbdServer#addExport}). */
        public Builder startEmpty() {
            this.startEmpty = true;
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

        /**
         * READ/WRITE payload bytes all connections together may hold in buffers (default: a quarter
         * of the JVM's direct memory limit, 64 MiB .. 1 GiB); at least 32 MiB, one largest request.
         * Past it, readers wait for memory instead of reading more requests.
         */
        public Builder maxBufferedBytes(long n) {
            if (n < NbdConstants.MAX_PAYLOAD_SIZE) {
                throw new IllegalArgumentException("maxBufferedBytes must be at least " + NbdConstants.MAX_PAYLOAD_SIZE
                        + " (one largest request): " + n);
            }
            this.maxBufferedBytes = n;
            return this;
        }

        /** Idle payload buffers kept for reuse, all sizes together (default 64 MiB). */
        public Builder bufferRetain(long n) {
            this.bufferRetain = positive(n, "bufferRetain");
            return this;
        }

        /** Tests: how direct buffers are made (to inject allocation failures). */
        Builder bufferAllocator(java.util.function.IntFunction<java.nio.ByteBuffer> allocator) {
            this.allocator = Objects.requireNonNull(allocator, "allocator");
            return this;
        }

        /**
         * How long a connection's reader that finds the socket empty spins for the client's next
         * request before it sleeps (see {@link BusyPoll}; default 50 µs, at most 1 ms); zero: never.
         */
        public Builder busyPoll(Duration window) {
            this.busyPoll = BusyPoll.checkWindow(Objects.requireNonNull(window, "busyPoll"));
            return this;
        }

        /** Time a client has to finish the handshake (default 30 s). */
        public Builder handshakeTimeout(Duration d) {
            this.handshakeTimeout = positive(d, "handshakeTimeout");
            return this;
        }

        /**
         * How long {@link NbdServer#drain()} lets requests in flight finish, and how long
         * {@link NbdServer#close()} then waits for the last replies (default 5 s each).
         */
        public Builder shutdownGrace(Duration d) {
            this.shutdownGrace = positive(d, "shutdownGrace");
            return this;
        }

        /** TLS for the connections (default {@link TlsConfig#off()}); see {@link TlsConfig}. */
        public Builder tls(TlsConfig tls) {
            this.tls = Objects.requireNonNull(tls, "tls");
            return this;
        }

        public NbdServer build() {
            if (device == null && more.isEmpty() && !startEmpty) {
                throw new IllegalStateException("a device (or an export) is required");
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
