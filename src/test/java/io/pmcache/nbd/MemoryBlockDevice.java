package io.pmcache.nbd;

import io.pmcache.device.BlockDevice;
import io.pmcache.device.DeviceClosedException;
import io.pmcache.device.PayloadSource;
import io.pmcache.device.Ranges;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A RAM-backed {@link BlockDevice} for tests and transport benchmarks, with test hooks: an offset
 * whose reads and writes fail with an IOException, a latch that holds reads at one offset until it
 * is opened, a hook every read runs first, and a hook every call runs first. Like the cache, it
 * answers every call after {@link #close()} with {@link DeviceClosedException}, and
 * {@link #awaitClose()} lets a hook block until the device is closed (a call blocked inside a
 * device that its close then fails).
 */
public final class MemoryBlockDevice implements BlockDevice {
    /** Freed by the GC once the device and its data are unreachable: tests need not close it. */
    private final Arena arena = Arena.ofAuto();
    private final MemorySegment data;
    private final AtomicInteger flushes = new AtomicInteger();
    private final AtomicInteger idles = new AtomicInteger();
    private volatile long failingOffset = -1;
    private volatile long heldOffset = -1;
    private volatile CountDownLatch gate;
    private volatile ReadHook readHook;
    private volatile CallHook callHook;
    private final CountDownLatch closing = new CountDownLatch(1);
    private volatile boolean closed;
    private volatile int streamPiece;
    private final AtomicInteger streamedWrites = new AtomicInteger();

    public MemoryBlockDevice(long size) {
        this.data = arena.allocate(size, 4096);
    }

    @Override
    public long size() {
        return data.byteSize();
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        check(offset, dst.byteSize());
        call("read", offset);
        ReadHook h = readHook;
        if (h != null) {
            h.beforeRead(offset);
        }
        CountDownLatch g = gate;
        if (g != null && offset == heldOffset) {
            try {
                g.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted");
            }
        }
        MemorySegment.copy(data, offset, dst, 0, dst.byteSize());
    }

    @Override
    public void write(long offset, MemorySegment src, boolean fua) throws IOException {
        check(offset, src.byteSize());
        call("write", offset);
        MemorySegment.copy(src, 0, data, offset, src.byteSize());
    }

    /**
     * Without {@link #streamWrites}: the payload whole ({@link PayloadSource#rest}), as any device.
     * With it, like the cache: read straight into the device's memory piece by piece, the call
     * hook run before each piece as op {@code "piece"} (to fail or stall a write midway).
     */
    @Override
    public void writeFrom(long offset, int length, PayloadSource src, boolean fua) throws IOException {
        int piece = streamPiece;
        if (piece == 0) {
            BlockDevice.super.writeFrom(offset, length, src, fua);
            return;
        }
        check(offset, length);
        call("write", offset);
        streamedWrites.incrementAndGet();
        for (int done = 0, n; done < length; done += n) {
            n = Math.min(piece, length - done);
            call("piece", offset + done);
            src.readInto(data.asSlice(offset + done, n));
        }
    }

    /** From now on {@link #writeFrom} reads payloads straight into memory, {@code piece} bytes at a time. */
    public void streamWrites(int piece) {
        streamPiece = piece;
    }

    /** Writes whose payload {@link #writeFrom} read straight into memory. */
    public int streamedWrites() {
        return streamedWrites.get();
    }

    @Override
    public void flush() throws IOException {
        open();
        call("flush", 0);
        flushes.incrementAndGet();
    }

    @Override
    public void trim(long offset, long length) throws IOException {
        check(offset, length);
        call("trim", offset);
        data.asSlice(offset, length).fill((byte) 0);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean fua) throws IOException {
        check(offset, length);
        call("zero", offset);
        data.asSlice(offset, length).fill((byte) 0);
    }

    /** Marks the device closed: later calls, and calls blocked in {@link #awaitClose()}, fail. */
    @Override
    public void close() {
        closed = true;
        closing.countDown();
    }

    /**
     * For hooks: blocks until {@link #close()}, then throws {@link DeviceClosedException}, as the
     * cache does for a call that waits inside it (for space, say) when it is closed.
     */
    public void awaitClose() throws IOException {
        try {
            closing.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted while waiting for close");
        }
        throw new DeviceClosedException("device closed while the call waited");
    }

    /** Something every call does first: {@code op} is read, write, flush, trim or zero. */
    public interface CallHook {
        void beforeCall(String op, long offset) throws IOException;
    }

    public void onCall(CallHook hook) {
        callHook = hook;
    }

    /** Makes every read or write that covers {@code offset} fail. */
    public void failAt(long offset) {
        failingOffset = offset;
    }

    /** Holds reads starting at {@code offset} until {@code latch} opens. */
    public void holdReadsAt(long offset, CountDownLatch latch) {
        heldOffset = offset;
        gate = latch;
    }

    /** Something every read does first (block, count, fail). */
    public interface ReadHook {
        void beforeRead(long offset) throws IOException;
    }

    public void onRead(ReadHook hook) {
        readHook = hook;
    }

    @Override
    public void idle() {
        idles.incrementAndGet();
    }

    /** How many times a front end said it was idle ({@link #idle}). */
    public int idles() {
        return idles.get();
    }

    public int flushes() {
        return flushes.get();
    }

    public boolean isClosed() {
        return closed;
    }

    private void call(String op, long offset) throws IOException {
        CallHook h = callHook;
        if (h != null) {
            h.beforeCall(op, offset);
        }
    }

    private void open() throws DeviceClosedException {
        if (closed) {
            throw new DeviceClosedException("device is closed");
        }
    }

    private void check(long offset, long length) throws IOException {
        open();
        Ranges.check(this, offset, length);
        long f = failingOffset;
        if (f >= offset && f < offset + length) {
            throw new IOException("injected media error at " + f);
        }
    }
}
