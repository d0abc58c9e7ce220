package io.pmcache.nbd;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.ByteChannel;
import java.nio.channels.ClosedSelectorException;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;

/**
 * One connection's socket as a blocking byte stream (the {@link Transport} contract: a read
 * returns at least one byte or -1, a write writes everything), in one of two modes:
 * <ul>
 *   <li>{@linkplain #blocking blocking}: every call goes straight to a blocking channel (the NBD
 *       client of a remote backing device);</li>
 *   <li>{@linkplain #polled polled} (the server's connections): the channel is non-blocking for
 *       good. A read that finds nothing spins for the client's next bytes as {@link BusyPoll} allows,
 *       then sleeps in a selector; a write that finds the socket full sleeps in another.
 *       {@link #close} wakes both sleepers, which then fail with
 *       {@link AsynchronousCloseException}, as a blocked channel's calls would.</li>
 * </ul>
 * Every close of the socket goes through {@link #close}: closing the channel alone would not wake
 * a sleeping selector.
 *
 * <p>Threads: one reader at a time, one writer at a time, a read and a write may overlap,
 * {@link #close} from any thread.
 */
final class SocketStream implements ByteChannel, GatheringByteChannel {
    private final SocketChannel ch;
    /** Null in blocking mode. */
    private final BusyPoll.Gate gate;
    /** Created on first sleep; volatile so that {@link #close} sees one published before it. */
    private volatile Selector readSelector;
    private volatile Selector writeSelector;

    private SocketStream(SocketChannel ch, BusyPoll.Gate gate) {
        this.ch = ch;
        this.gate = gate;
    }

    /** Calls go straight to {@code ch}, which must be in blocking mode. */
    static SocketStream blocking(SocketChannel ch) {
        return new SocketStream(ch, null);
    }

    /** Switches {@code ch} to non-blocking mode for good; reads busy-poll as {@code poll} allows. */
    static SocketStream polled(SocketChannel ch, BusyPoll poll) throws IOException {
        ch.configureBlocking(false);
        return new SocketStream(ch, poll.gate());
    }

    SocketChannel channel() {
        return ch;
    }

    /** The reader took {@code requests} requests from its last reads ({@link BusyPoll.Gate#requestsRead}). */
    void requestsRead(int requests) {
        if (gate != null) {
            gate.requestsRead(requests);
        }
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        int n = ch.read(dst);
        if (gate == null || n != 0 || !dst.hasRemaining()) {
            return n;
        }
        long start = System.nanoTime();
        if (gate.begin()) {
            boolean hit = false;
            try {
                long window = gate.windowNanos();
                do {
                    Thread.onSpinWait();
                    n = ch.read(dst);
                } while (n == 0 && System.nanoTime() - start < window);
                hit = n != 0;
            } finally {
                gate.end(hit);
            }
            if (hit) {
                return n;
            }
            start = System.nanoTime();
        }
        n = sleepAndRead(dst);
        gate.slept(System.nanoTime() - start);
        return n;
    }

    private int sleepAndRead(ByteBuffer dst) throws IOException {
        try {
            Selector s = readSelector;
            if (s == null) {
                s = readSelector = selector(SelectionKey.OP_READ);
            }
            while (true) {
                failIfClosed(s);
                s.select();
                s.selectedKeys().clear();
                failIfClosed(s);
                int n = ch.read(dst);
                if (n != 0) {
                    return n;
                }
            }
        } catch (ClosedSelectorException e) {
            throw closed(e);
        }
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        int total = 0;
        while (true) {
            int n = ch.write(src);
            total += n;
            if (!src.hasRemaining()) {
                return total;
            }
            awaitWritableIfFull(n);
        }
    }

    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
        long total = 0;
        while (true) {
            long n = ch.write(srcs, offset, length);
            total += n;
            if (length == 0 || !srcs[offset + length - 1].hasRemaining()) { // written in order
                return total;
            }
            awaitWritableIfFull(n);
        }
    }

    @Override
    public long write(ByteBuffer[] srcs) throws IOException {
        return write(srcs, 0, srcs.length);
    }

    /**
     * After a write that left bytes: in polled mode, if it wrote nothing (the socket is full),
     * sleeps until the socket takes more. A blocking channel's write blocks by itself but may
     * still write only part (one {@code writev}, e.g. when the peer's buffer fills midway): the
     * caller writes again.
     */
    private void awaitWritableIfFull(long written) throws IOException {
        if (gate == null || written > 0) {
            return;
        }
        try {
            Selector s = writeSelector;
            if (s == null) {
                s = writeSelector = selector(SelectionKey.OP_WRITE);
            }
            failIfClosed(s);
            s.select();
            s.selectedKeys().clear();
            failIfClosed(s);
        } catch (ClosedSelectorException e) {
            throw closed(e);
        }
    }

    /** A new selector with the socket registered for {@code ops}, for the caller to publish. */
    private Selector selector(int ops) throws IOException {
        Selector s = Selector.open();
        try {
            ch.register(s, ops);
        } catch (IOException | RuntimeException e) {
            closeSelector(s);
            throw e;
        }
        return s;
    }

    /**
     * Checked after the selector is published, before and after each select: a {@link #close}
     * either saw the selector (and closed it, which ends a select) or ran before it was published
     * and is seen here (the channel's closed flag and the selector fields are volatile).
     */
    private void failIfClosed(Selector s) throws AsynchronousCloseException {
        if (!ch.isOpen()) {
            closeSelector(s);
            throw new AsynchronousCloseException();
        }
    }

    private static AsynchronousCloseException closed(RuntimeException cause) {
        AsynchronousCloseException e = new AsynchronousCloseException();
        e.initCause(cause);
        return e;
    }

    void shutdownOutput() throws IOException {
        ch.shutdownOutput();
    }

    @Override
    public boolean isOpen() {
        return ch.isOpen();
    }

    /**
     * Closes the socket; a read or write sleeping in a selector wakes and fails. The selectors are
     * closed too, which releases the socket's descriptor (a registered channel's close is deferred
     * until it leaves its selectors).
     */
    @Override
    public void close() throws IOException {
        try {
            ch.close();
        } finally {
            closeSelector(readSelector);
            closeSelector(writeSelector);
        }
    }

    private static void closeSelector(Selector s) {
        if (s != null) {
            try {
                s.close(); // wakes a select in progress first
            } catch (IOException ignored) {
                // nothing is left to release
            }
        }
    }
}
