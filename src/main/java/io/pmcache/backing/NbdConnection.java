package io.pmcache.backing;

import static io.pmcache.nbd.NbdConstants.NBD_CMD_BLOCK_STATUS;
import static io.pmcache.nbd.NbdConstants.NBD_CMD_DISC;
import static io.pmcache.nbd.NbdConstants.NBD_CMD_READ;
import static io.pmcache.nbd.NbdConstants.NBD_CMD_TRIM;
import static io.pmcache.nbd.NbdConstants.NBD_CMD_WRITE;
import static io.pmcache.nbd.NbdConstants.NBD_CMD_WRITE_ZEROES;
import static io.pmcache.nbd.NbdConstants.NBD_REPLY_FLAG_DONE;
import static io.pmcache.nbd.NbdConstants.NBD_REPLY_TYPE_BLOCK_STATUS;
import static io.pmcache.nbd.NbdConstants.NBD_REPLY_TYPE_ERROR;
import static io.pmcache.nbd.NbdConstants.NBD_REPLY_TYPE_ERROR_OFFSET;
import static io.pmcache.nbd.NbdConstants.NBD_REPLY_TYPE_NONE;
import static io.pmcache.nbd.NbdConstants.NBD_REPLY_TYPE_OFFSET_DATA;
import static io.pmcache.nbd.NbdConstants.NBD_REPLY_TYPE_OFFSET_HOLE;
import static io.pmcache.nbd.NbdConstants.NBD_REQUEST_MAGIC;
import static io.pmcache.nbd.NbdConstants.NBD_SIMPLE_REPLY_MAGIC;
import static io.pmcache.nbd.NbdConstants.NBD_STRUCTURED_REPLY_MAGIC;

import io.pmcache.nbd.NbdConstants;
import io.pmcache.nbd.TlsClientConfig;
import io.pmcache.nbd.Transport;
import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One NBD client connection in the transmission phase: many threads send requests on it at once
 * (pipelining), one reader thread matches replies to requests by handle, in whatever order the
 * server answers.
 *
 * <h2>The request pipeline</h2>
 * <pre>
 *   caller: register Pending(handle) -> send header [+ payload] under sendLock -> wait for Pending
 *   reader: read reply header -> find Pending by handle -> read data into its buffer
 *           -> (DONE, or a simple reply) remove it, record success or the server's error, wake caller
 * </pre>
 * Invariants:
 * <ul>
 *   <li>A read's destination is written only by the reader thread, and only before its Pending is
 *       completed: once the caller returns, nothing touches its buffer again.</li>
 *   <li>Once {@link #broken} is set no request is sent, and every Pending registered before or after
 *       is completed with {@link Broken} (the reader drains the map after setting it; a sender checks
 *       it again after registering).</li>
 *   <li>{@code lastProgress} is the last moment a reply arrived, or the moment a request was
 *       registered with nothing outstanding: {@link #stalledNanos} measures how long outstanding
 *       requests have gone without any answer, which the device's watchdog bounds.</li>
 * </ul>
 * A reply the protocol does not allow here (unknown handle, data outside the request, a bad magic)
 * leaves the byte stream's position unknown, so it breaks the connection.
 *
 * <p>The byte stream is a {@link Transport}: the socket, or TLS over it when the URI asked for TLS
 * (the handshake switched after STARTTLS); every reconnect runs the whole handshake, TLS included.
 */
final class NbdConnection {

    /** The connection failed: the request may or may not have been carried out. */
    static final class Broken extends IOException {
        Broken(String message) {
            super(message);
        }
    }

    /** The server carried out the request's exchange and answered it with an error. */
    static final class ServerError extends IOException {
        final int errno;

        ServerError(String message, int errno) {
            super(message);
            this.errno = errno;
        }
    }

    static final class Pending {
        final int type;
        final long offset;
        final int length;
        /** Where the reader puts the data: the caller's buffer, or a bounce when the reader may not touch it. */
        final MemorySegment dst;
        /** The caller's buffer when {@code dst} is a bounce (copied on the caller's thread), else null. */
        final MemorySegment copyBack;
        long covered;
        int errno;
        String message;
        volatile IOException failure;
        /** A BLOCK_STATUS reply's descriptors: length, flags, length, flags, ... (unsigned); null before it. */
        int[] status;
        /** Run by the reader once the outcome is known, before waiters wake; null for none. */
        java.util.function.Consumer<Pending> onDone;
        final CountDownLatch done = new CountDownLatch(1);

        Pending(int type, long offset, int length, MemorySegment dst, MemorySegment copyBack) {
            this.type = type;
            this.offset = offset;
            this.length = length;
            this.dst = dst;
            this.copyBack = copyBack;
        }
    }

    private static final int SCRATCH = 64 << 10;
    /** Most BLOCK_STATUS descriptors kept of one reply (512 KiB); the rest are read and dropped. */
    static final int MAX_STATUS_DESCRIPTORS = 1 << 16;

    private final SocketChannel socket;
    private final Transport ch;
    final NbdExportInfo info;
    private final String where;
    private final ReentrantLock sendLock = new ReentrantLock();
    /** Guarded by sendLock. */
    private final ByteBuffer requestHeader = ByteBuffer.allocateDirect(NbdConstants.REQUEST_HEADER_SIZE);
    private final ConcurrentHashMap<Long, Pending> pending = new ConcurrentHashMap<>();
    private final AtomicLong handles = new AtomicLong(1);
    private volatile long lastProgress = System.nanoTime();
    private volatile String broken;
    private final CountDownLatch readerDone = new CountDownLatch(1);
    private final Thread reader;

    private NbdConnection(SocketChannel socket, Transport ch, NbdExportInfo info, String where) {
        this.socket = socket;
        this.ch = ch;
        this.info = info;
        this.where = where;
        this.reader = Thread.ofPlatform().daemon().name("pmcache-nbd-client-reader").start(this::readLoop);
    }

    /**
     * Connects and shakes hands (TLS too, when {@code tls} is not null), all within
     * {@code options.connectTimeout()}.
     */
    static NbdConnection open(NbdUri uri, NbdClientOptions options, TlsClientConfig tls) throws IOException {
        var address = uri.address();
        SocketChannel ch = uri.isUnix() ? SocketChannel.open(StandardProtocolFamily.UNIX) : SocketChannel.open();
        AtomicBoolean settled = new AtomicBoolean();
        long ms = options.connectTimeout().toMillis();
        Thread timer = Thread.ofVirtual().name("pmcache-nbd-connect-timer").start(() -> {
            try {
                Thread.sleep(ms);
                if (settled.compareAndSet(false, true)) {
                    ch.close();
                }
            } catch (InterruptedException | IOException e) {
                // settled in time, or closing failed: nothing to do
            }
        });
        try {
            if (!uri.isUnix()) {
                ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
                ch.setOption(StandardSocketOptions.SO_KEEPALIVE, true);
                if (((InetSocketAddress) address).isUnresolved()) {
                    throw new IOException(uri + ": cannot resolve host '" + uri.host() + "'");
                }
            }
            ch.connect(address);
            NbdClientHandshake.TlsStart startTls = tls == null ? null
                    : () -> tls.handshake(ch, uri.certificateHost(), uri.port(), uri.toString());
            var agreed = NbdClientHandshake.negotiate(Transport.plain(ch), startTls, uri.exportName(), uri.toString());
            if (!settled.compareAndSet(false, true)) {
                throw new IOException("timed out");
            }
            return new NbdConnection(ch, agreed.transport(), agreed.info(), uri.toString());
        } catch (IOException | RuntimeException e) {
            boolean timedOut = !settled.compareAndSet(false, true);
            closeQuietly(ch);
            if (timedOut) {
                throw new IOException(uri + ": connect and handshake did not finish within " + ms + " ms", e);
            }
            if (e instanceof IOException io && io.getMessage() != null && io.getMessage().startsWith(uri.toString())) {
                throw io;
            }
            throw new IOException(uri + ": cannot connect: " + e, e);
        } finally {
            timer.interrupt();
        }
    }

    // ---- sending ----

    /** Registers and sends one request; the caller then {@link #await}s it. */
    Pending submit(int type, int flags, long offset, int length, MemorySegment payload, MemorySegment dst)
            throws IOException {
        return submit(type, flags, offset, length, payload, dst, null);
    }

    /**
     * As {@link #submit(int, int, long, int, MemorySegment, MemorySegment)}, with {@code onDone}
     * run on the reader thread once the request's outcome is known. {@code onDone} runs exactly
     * when this method returns normally; when it throws, the request was not (or will never be
     * known to have been) sent and {@code onDone} never runs.
     */
    Pending submit(int type, int flags, long offset, int length, MemorySegment payload, MemorySegment dst,
                   java.util.function.Consumer<Pending> onDone) throws IOException {
        ensureNotBroken();
        // A segment confined to the caller's thread cannot be filled by the reader: bounce it.
        boolean bounce = dst != null && !dst.isAccessibleBy(reader);
        Pending p = new Pending(type, offset, length,
                bounce ? MemorySegment.ofArray(new byte[length]) : dst, bounce ? dst : null);
        p.onDone = onDone;
        long handle = handles.getAndIncrement();
        if (pending.isEmpty()) {
            lastProgress = System.nanoTime();
        }
        pending.put(handle, p);
        if (broken != null && pending.remove(handle) != null) {
            throw brokenException();
        }
        ByteBuffer body = payload == null ? null : asBuffer(payload);
        sendLock.lock();
        if (broken != null) { // given up while this thread waited for the lock: never send
            sendLock.unlock();
            if (pending.remove(handle) != null) {
                throw brokenException();
            }
            return p;
        }
        try {
            requestHeader.clear();
            requestHeader.putInt(NBD_REQUEST_MAGIC).putShort((short) flags).putShort((short) type)
                    .putLong(handle).putLong(offset).putInt(length).flip();
            if (body == null) {
                while (requestHeader.hasRemaining()) {
                    ch.write(requestHeader);
                }
            } else {
                ByteBuffer[] both = {requestHeader, body};
                long left = requestHeader.remaining() + (long) body.remaining();
                while (left > 0) {
                    left -= ch.write(both);
                }
            }
        } catch (IOException e) {
            if (broken == null) {
                breakNow("sending a request failed: " + e.getMessage());
            } // else being given up gracefully: the reader keeps taking the replies of what was sent
            if (pending.remove(handle) != null) {
                throw brokenException();
            }
            // else the reader completed it (as broken, or the server answered in between)
        } finally {
            sendLock.unlock();
        }
        return p;
    }

    /**
     * Waits for a request's completion. Not interruptible (the reader may be writing into the
     * buffer): the device's watchdog bounds the wait; an interrupt is kept for the caller.
     */
    static void await(Pending p) throws IOException {
        boolean interrupted = false;
        while (true) {
            try {
                p.done.await();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        IOException f = p.failure;
        if (f instanceof Broken) {
            throw new Broken(f.getMessage());
        }
        if (f instanceof ServerError s) {
            throw new ServerError(s.getMessage(), s.errno);
        }
        if (f != null) {
            throw new IOException(f.getMessage(), f);
        }
        if (p.copyBack != null) {
            MemorySegment.copy(p.dst, 0, p.copyBack, 0, p.length);
        }
    }

    private ByteBuffer asBuffer(MemorySegment s) {
        if (s.isNative() || s.heapBase().map(b -> b instanceof byte[]).orElse(false)) {
            return s.asByteBuffer();
        }
        byte[] copy = new byte[(int) s.byteSize()];
        MemorySegment.copy(s, 0, MemorySegment.ofArray(copy), 0, copy.length);
        return ByteBuffer.wrap(copy);
    }

    // ---- state for the watchdog ----

    /** How long requests have been outstanding without any reply arriving; 0 when none is outstanding. */
    long stalledNanos(long now) {
        return pending.isEmpty() ? 0 : Math.max(0, now - lastProgress);
    }

    int outstanding() {
        return pending.size();
    }

    /** Outstanding requests that change data (write, write-zeroes, trim): what must not land late. */
    int outstandingChanges() {
        int n = 0;
        for (Pending p : pending.values()) {
            if (p.type == NBD_CMD_WRITE || p.type == NBD_CMD_WRITE_ZEROES || p.type == NBD_CMD_TRIM) {
                n++;
            }
        }
        return n;
    }

    boolean isBroken() {
        return broken != null;
    }

    String brokenReason() {
        return broken;
    }

    /** Drops the connection at once: outstanding requests fail with {@link Broken}. */
    void breakNow(String reason) {
        if (broken == null) {
            broken = reason;
        }
        closeQuietly(socket);
    }

    /**
     * Stops sending and lets the server finish: shuts down the sending side, so the server reads
     * end-of-stream after the requests it already has, carries them out and closes; the reader
     * keeps taking their replies until then. The caller bounds this with {@link #awaitClosed} and
     * {@link #breakNow}.
     */
    void breakGracefully(String reason) {
        if (broken == null) {
            broken = reason;
        }
        try {
            ch.shutdownOutput();
        } catch (IOException e) {
            closeQuietly(socket);
        }
    }

    /** Waits until the reader has ended (the server closed or the channel was closed); true if it did. */
    boolean awaitClosed(long nanos) throws InterruptedException {
        return readerDone.await(nanos, TimeUnit.NANOSECONDS);
    }

    /** A clean goodbye: NBD_CMD_DISC (when nothing is outstanding), then close. */
    void close() {
        if (broken == null && pending.isEmpty() && sendLock.tryLock()) {
            try {
                requestHeader.clear();
                requestHeader.putInt(NBD_REQUEST_MAGIC).putShort((short) 0).putShort((short) NBD_CMD_DISC)
                        .putLong(0).putLong(0).putInt(0).flip();
                while (requestHeader.hasRemaining()) {
                    ch.write(requestHeader);
                }
            } catch (IOException e) {
                // closing anyway
            } finally {
                sendLock.unlock();
            }
            if (broken == null) {
                broken = "closed";
            }
            ch.closeGracefully(); // TLS: close_notify after NBD_CMD_DISC, as the spec asks
        }
        breakNow("closed");
        try {
            awaitClosed(TimeUnit.SECONDS.toNanos(5));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void ensureNotBroken() throws Broken {
        if (broken != null) {
            throw brokenException();
        }
    }

    private Broken brokenException() {
        return new Broken(where + ": connection lost (" + broken + ")");
    }

    // ---- the reader ----

    private final ByteBuffer in = ByteBuffer.allocateDirect(32);
    private final byte[] scratch = new byte[SCRATCH];

    private void readLoop() {
        String reason = null;
        try {
            while (true) {
                readReply();
            }
        } catch (EOFException e) {
            reason = "the server closed the connection";
        } catch (IOException | RuntimeException e) {
            reason = String.valueOf(e.getMessage());
        } finally {
            if (broken == null) {
                broken = reason;
            }
            closeQuietly(socket);
            Broken failure = brokenException();
            failure = new Broken(failure.getMessage() + "; the request may or may not have been carried out");
            for (Long h : pending.keySet()) {
                Pending p = pending.remove(h);
                if (p != null) {
                    p.failure = failure;
                    finish(p);
                }
            }
            readerDone.countDown();
        }
    }

    private void readReply() throws IOException {
        fill(4);
        int magic = in.getInt();
        if (magic == NBD_SIMPLE_REPLY_MAGIC) {
            fill(12);
            int error = in.getInt();
            long handle = in.getLong();
            Pending p = lookup(handle);
            if (error == 0 && p.type == NBD_CMD_READ) {
                readInto(p.dst, 0, p.length);
                p.covered = p.length;
            }
            if (error != 0) {
                p.errno = error;
            }
            complete(handle, p);
        } else if (magic == NBD_STRUCTURED_REPLY_MAGIC) {
            fill(16);
            int flags = in.getShort() & 0xffff;
            int type = in.getShort() & 0xffff;
            long handle = in.getLong();
            long length = Integer.toUnsignedLong(in.getInt());
            Pending p = lookup(handle);
            chunk(p, type, length);
            if ((flags & NBD_REPLY_FLAG_DONE) != 0) {
                complete(handle, p);
            }
        } else {
            throw new IOException("bad reply magic 0x" + Integer.toHexString(magic));
        }
        lastProgress = System.nanoTime();
    }

    private void chunk(Pending p, int type, long length) throws IOException {
        switch (type) {
            case NBD_REPLY_TYPE_NONE -> {
                if (length != 0) {
                    throw new IOException("NBD_REPLY_TYPE_NONE with " + length + " bytes of payload");
                }
            }
            case NBD_REPLY_TYPE_OFFSET_DATA -> {
                if (p.type != NBD_CMD_READ || length <= 8) {
                    throw new IOException("an OFFSET_DATA chunk of " + length + " bytes to a "
                            + NbdConstants.commandName(p.type));
                }
                fill(8);
                long at = in.getLong();
                long n = length - 8;
                checkInside(p, at, n);
                readInto(p.dst, at - p.offset, n);
                p.covered += n;
            }
            case NBD_REPLY_TYPE_OFFSET_HOLE -> {
                if (p.type != NBD_CMD_READ || length != 12) {
                    throw new IOException("an OFFSET_HOLE chunk of " + length + " bytes to a "
                            + NbdConstants.commandName(p.type));
                }
                fill(12);
                long at = in.getLong();
                long n = Integer.toUnsignedLong(in.getInt());
                checkInside(p, at, n);
                p.dst.asSlice(at - p.offset, n).fill((byte) 0);
                p.covered += n;
            }
            case NBD_REPLY_TYPE_BLOCK_STATUS -> blockStatusChunk(p, length);
            default -> {
                if ((type & 0x8000) == 0) {
                    skip(length); // an informational chunk this client did not ask for
                    return;
                }
                if (length < 6) {
                    throw new IOException("an error chunk of " + length + " bytes");
                }
                fill(6);
                int errno = in.getInt();
                int msgLen = in.getShort() & 0xffff;
                if (msgLen > length - 6) {
                    throw new IOException("an error chunk's message of " + msgLen + " bytes in " + length);
                }
                byte[] msg = new byte[msgLen];
                readInto(MemorySegment.ofArray(msg), 0, msgLen);
                skip(length - 6 - msgLen); // ERROR_OFFSET's offset, or what a newer type carries
                if (p.errno == 0) {
                    p.errno = errno == 0 ? NbdConstants.NBD_EIO : errno;
                    p.message = new String(msg, StandardCharsets.UTF_8)
                            + (type == NBD_REPLY_TYPE_ERROR || type == NBD_REPLY_TYPE_ERROR_OFFSET ? "" : " (type "
                            + type + ")");
                }
            }
        }
    }

    /**
     * A BLOCK_STATUS chunk: the context id (the one base:allocation got at the handshake, the only
     * one asked for), then (length, flags) descriptors. One chunk per request; the first
     * {@link #MAX_STATUS_DESCRIPTORS} descriptors are kept, the rest dropped (the caller asks again).
     */
    private void blockStatusChunk(Pending p, long length) throws IOException {
        if (p.type != NBD_CMD_BLOCK_STATUS || length < 12 || (length - 4) % 8 != 0) {
            throw new IOException("a BLOCK_STATUS chunk of " + length + " bytes to a "
                    + NbdConstants.commandName(p.type));
        }
        fill(4);
        long id = Integer.toUnsignedLong(in.getInt());
        if (id != info.allocationContext() || p.status != null) {
            throw new IOException((p.status != null ? "a second BLOCK_STATUS chunk" : "a BLOCK_STATUS chunk for meta "
                    + "context " + id + ", which was not asked for (base:allocation is " + info.allocationContext()
                    + ")") + " to the request of [" + p.offset + ", +" + p.length + ")");
        }
        long descriptors = (length - 4) / 8;
        int kept = (int) Math.min(descriptors, MAX_STATUS_DESCRIPTORS);
        byte[] raw = new byte[kept * 8];
        readInto(MemorySegment.ofArray(raw), 0, raw.length);
        skip((descriptors - kept) * 8);
        int[] words = new int[kept * 2];
        ByteBuffer.wrap(raw).asIntBuffer().get(words);
        p.status = words;
    }

    private void complete(long handle, Pending p) {
        pending.remove(handle);
        String lostFor = broken;
        if (p.errno != 0 && lostFor != null) {
            // An error to a request of a connection being given up (a server answers ESHUTDOWN once it
            // read the end of the stream): the connection's loss is the cause.
            p.failure = new Broken(where + ": connection lost (" + lostFor + "); the server answered "
                    + NbdConstants.errorName(p.errno) + " to " + NbdConstants.commandName(p.type));
        } else if (p.errno == NbdConstants.NBD_ESHUTDOWN) {
            // The server is going away; the spec: the client MUST initiate a soft disconnect. As a
            // lost connection, the device gives the link up (the server finishes what it has, sees
            // our end of the stream, closes) and reconnects with backoff.
            p.failure = new Broken(where + ": the server is shutting down (it answered ESHUTDOWN to "
                    + NbdConstants.commandName(p.type) + " of [" + p.offset + ", +" + p.length + "))");
        } else if (p.errno != 0) {
            p.failure = new ServerError(where + ": the server answered " + NbdConstants.errorName(p.errno) + " to "
                    + NbdConstants.commandName(p.type) + " of [" + p.offset + ", +" + p.length + ")"
                    + (p.message != null && !p.message.isEmpty() ? ": " + p.message : ""), p.errno);
        } else if (p.type == NBD_CMD_BLOCK_STATUS && p.status == null) {
            p.failure = new IOException(where + ": the server answered block status of [" + p.offset + ", +"
                    + p.length + ") without a status chunk");
        } else if (p.type == NBD_CMD_READ && p.covered != p.length) {
            p.failure = new IOException(where + ": the server's reply to read of [" + p.offset + ", +" + p.length
                    + ") covered " + p.covered + " bytes");
        }
        finish(p);
    }

    private static void finish(Pending p) {
        if (p.onDone != null) {
            try {
                p.onDone.accept(p);
            } catch (RuntimeException e) {
                org.slf4j.LoggerFactory.getLogger(NbdConnection.class).error("completion of a request failed", e);
            }
        }
        p.done.countDown();
    }

    private Pending lookup(long handle) throws IOException {
        Pending p = pending.get(handle);
        if (p == null) {
            throw new IOException("a reply for handle " + handle + ", which no outstanding request has");
        }
        return p;
    }

    private static void checkInside(Pending p, long at, long n) throws IOException {
        if (at < p.offset || n > p.length || at - p.offset > p.length - n) {
            throw new IOException("a reply chunk for [" + at + ", +" + n + ") outside the read of [" + p.offset
                    + ", +" + p.length + ")");
        }
    }

    private void fill(int n) throws IOException {
        in.clear().limit(n);
        while (in.hasRemaining()) {
            if (ch.read(in) < 0) {
                throw new EOFException();
            }
        }
        in.flip();
    }

    private void readInto(MemorySegment dst, long at, long n) throws IOException {
        MemorySegment part = dst.asSlice(at, n);
        if (part.isNative() || part.heapBase().map(b -> b instanceof byte[]).orElse(false)) {
            ByteBuffer b = part.asByteBuffer();
            while (b.hasRemaining()) {
                if (ch.read(b) < 0) {
                    throw new EOFException();
                }
            }
            return;
        }
        MemorySegment s = MemorySegment.ofArray(scratch);
        for (long done = 0; done < n; ) {
            int k = (int) Math.min(SCRATCH, n - done);
            ByteBuffer b = ByteBuffer.wrap(scratch, 0, k);
            while (b.hasRemaining()) {
                if (ch.read(b) < 0) {
                    throw new EOFException();
                }
            }
            MemorySegment.copy(s, 0, part, done, k);
            done += k;
        }
    }

    private void skip(long n) throws IOException {
        for (long done = 0; done < n; ) {
            int k = (int) Math.min(SCRATCH, n - done);
            ByteBuffer b = ByteBuffer.wrap(scratch, 0, k);
            while (b.hasRemaining()) {
                if (ch.read(b) < 0) {
                    throw new EOFException();
                }
            }
            done += k;
        }
    }

    private static void closeQuietly(SocketChannel ch) {
        try {
            ch.close();
        } catch (IOException e) {
            // nothing more to release
        }
    }
}
