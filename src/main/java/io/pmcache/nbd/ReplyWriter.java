package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;

import io.pmcache.device.BlockStatus;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.channels.ClosedChannelException;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.FutureTask;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The only writer of one connection's socket in the transmission phase. Each method sends one
 * complete reply (header and payload) under a lock, so replies from concurrent requests never
 * interleave.
 *
 * <p>Coalescing: replies of requests that ran inline on the connection's reader (the
 * {@link #deferFor deferring thread}) are appended to a buffer instead of being sent one system
 * call each; the reader sends the buffer with {@link #flush} before it may block reading the
 * socket, and any direct send flushes it first. So a pipelining client gets a batch of replies per
 * batch of requests read, and no reply waits longer than the batch it belongs to. Without structured replies everything is a simple reply; with them, reads answer with
 * one {@code NBD_REPLY_TYPE_OFFSET_DATA} chunk (the data is read before the header is sent, so no
 * error can follow and the chunk carries {@code NBD_REPLY_FLAG_DONE}), errors with
 * {@code NBD_REPLY_TYPE_ERROR} and a message, other successes with a simple reply (which the spec
 * allows for replies without payload). A read is never fragmented, so {@code NBD_CMD_FLAG_DF} needs
 * nothing more.
 *
 * <p>Platform writers: the socket is only ever written by platform threads. A reply sent from a
 * virtual thread (a handed-off request) is written by a thread of {@code platform}, while the
 * virtual thread holds the lock and waits; the lock still orders the replies. A server socket is
 * a {@link SocketStream} in polled mode, whose writes sleep in a selector while the socket is
 * full: a virtual thread would pin its carrier there. (The client's blocking sockets never see a
 * virtual thread either: the JDK would switch them to non-blocking mode for good.)
 */
final class ReplyWriter {
    private final Transport ch;
    private final boolean structured;
    private final ReentrantLock lock = new ReentrantLock();
    private final ByteBuffer header = ByteBuffer.allocateDirect(64);
    private final ByteBuffer[] trio = new ByteBuffer[3];
    /** Coalesced replies, in write mode; guarded by {@link #lock}. */
    private final ByteBuffer out = ByteBuffer.allocateDirect(OUT_CAPACITY);
    private volatile Thread deferring;
    /** Platform threads that write the replies of virtual threads (see class comment). */
    private final Executor platform;
    static final int OUT_CAPACITY = 64 << 10;
    /** Replies with a larger payload are never copied into the buffer. */
    static final int MAX_DEFERRED_PAYLOAD = 16 << 10;

    ReplyWriter(Transport ch, boolean structured, Executor platform) {
        this.ch = ch;
        this.structured = structured;
        this.platform = platform;
    }

    /**
     * From now on, replies sent by {@code t} (the reader) are coalesced until {@link #flush}. Under
     * the lock, so a reply the previous reader (overtaken in a slow request) coalesces is in the
     * buffer before this returns, and {@code t}'s next flush sends it; later ones go straight out.
     */
    void deferFor(Thread t) {
        lock.lock();
        try {
            deferring = t;
        } finally {
            lock.unlock();
        }
    }

    /** Sends the coalesced replies, if any. */
    void flush() throws IOException {
        lock.lock();
        try {
            flushLocked();
        } finally {
            lock.unlock();
        }
    }

    private void flushLocked() throws IOException {
        if (out.position() > 0) {
            out.flip();
            try {
                write(() -> ChannelIO.writeFully(ch, out));
            } finally {
                out.clear();
            }
        }
    }

    /** Success without data. */
    void ok(long handle) throws IOException {
        lock.lock();
        try {
            simpleHeader(0, handle);
            send(header.flip());
        } finally {
            lock.unlock();
        }
    }

    /** Failure with error value {@code error}; {@code message} reaches the user if structured. */
    void error(long handle, int error, String message) throws IOException {
        if (!structured) {
            lock.lock();
            try {
                simpleHeader(error, handle);
                send(header.flip());
            } finally {
                lock.unlock();
            }
            return;
        }
        byte[] text = message.getBytes(StandardCharsets.UTF_8);
        int n = Math.min(text.length, 1024);
        ByteBuffer payload = ByteBuffer.allocate(6 + n).putInt(error).putShort((short) n).put(text, 0, n).flip();
        lock.lock();
        try {
            chunkHeader(NBD_REPLY_TYPE_ERROR, handle, payload.remaining());
            send(header.flip(), payload);
        } finally {
            lock.unlock();
        }
    }

    /** A successful read of {@code data} (position to limit) at {@code offset}. */
    void data(long handle, long offset, ByteBuffer data) throws IOException {
        lock.lock();
        try {
            if (structured) {
                chunkHeader(NBD_REPLY_TYPE_OFFSET_DATA, handle, 8 + data.remaining());
                header.putLong(offset);
            } else {
                simpleHeader(0, handle);
            }
            send(header.flip(), data);
        } finally {
            lock.unlock();
        }
    }

    /**
     * A block status reply for one context: one {@code NBD_REPLY_TYPE_BLOCK_STATUS} chunk with a
     * descriptor per extent (each shorter than the request, so its length fits 32 bits).
     */
    void blockStatus(long handle, int contextId, List<BlockStatus> extents) throws IOException {
        ByteBuffer payload = ByteBuffer.allocate(4 + 8 * extents.size()).putInt(contextId);
        for (BlockStatus s : extents) {
            payload.putInt((int) s.length()).putInt(stateFlags(s.kind()));
        }
        payload.flip();
        lock.lock();
        try {
            chunkHeader(NBD_REPLY_TYPE_BLOCK_STATUS, handle, payload.remaining());
            send(header.flip(), payload);
        } finally {
            lock.unlock();
        }
    }

    /** {@code base:allocation} flags: DATA 0, ZERO {@code NBD_STATE_ZERO}, HOLE {@code NBD_STATE_HOLE|NBD_STATE_ZERO}. */
    static int stateFlags(BlockStatus.Kind kind) {
        return switch (kind) {
            case DATA -> 0;
            case ZERO -> NBD_STATE_ZERO;
            case HOLE -> NBD_STATE_HOLE | NBD_STATE_ZERO;
        };
    }

    private void simpleHeader(int error, long handle) {
        header.clear().putInt(NBD_SIMPLE_REPLY_MAGIC).putInt(error).putLong(handle);
    }

    private void chunkHeader(int type, long handle, int length) {
        header.clear().putInt(NBD_STRUCTURED_REPLY_MAGIC).putShort((short) NBD_REPLY_FLAG_DONE)
                .putShort((short) type).putLong(handle).putInt(length);
    }

    private void send(ByteBuffer only) throws IOException {
        if (Thread.currentThread() == deferring && only.remaining() <= out.remaining()) {
            out.put(only);
            return;
        }
        if (out.position() == 0) {
            write(() -> ChannelIO.writeFully(ch, only));
            return;
        }
        out.flip();
        trio[0] = out;
        trio[1] = only;
        trio[2] = EMPTY;
        writeTrio();
    }

    private void send(ByteBuffer first, ByteBuffer second) throws IOException {
        if (Thread.currentThread() == deferring && second.remaining() <= MAX_DEFERRED_PAYLOAD
                && first.remaining() + second.remaining() <= out.remaining()) {
            out.put(first).put(second);
            return;
        }
        out.flip();
        trio[0] = out;
        trio[1] = first;
        trio[2] = second;
        writeTrio();
    }

    /** Writes the pending buffer (already flipped) and a reply in one gathering write. */
    private void writeTrio() throws IOException {
        try {
            write(() -> ChannelIO.writeFully(ch, trio));
        } finally {
            out.clear();
            trio[0] = null;
            trio[1] = null;
            trio[2] = null;
        }
    }

    private interface SocketWrite {
        void run() throws IOException;
    }

    /**
     * Runs {@code w} (a whole write; the caller holds the lock) on this thread if it is a platform
     * thread, else on one of {@link #platform} and waits for it to end, interrupts or not: the
     * lock must not be released while the write still runs. See the class comment.
     */
    private void write(SocketWrite w) throws IOException {
        if (!Thread.currentThread().isVirtual()) {
            w.run();
            return;
        }
        FutureTask<Void> task = new FutureTask<>(() -> {
            w.run();
            return null;
        });
        try {
            platform.execute(task);
        } catch (RejectedExecutionException e) {
            throw new ClosedChannelException(); // the server has closed
        }
        try {
            io.pmcache.os.Uninterruptibly.get(task);
        } catch (ExecutionException e) {
            switch (e.getCause()) {
                case IOException io -> throw io;
                case RuntimeException re -> throw re;
                case Error err -> throw err;
                default -> throw new IllegalStateException(e.getCause());
            }
        }
    }

    private static final ByteBuffer EMPTY = ByteBuffer.allocate(0);
}
