package io.pmcache.nbd;

import io.pmcache.device.BlockDevice;
import io.pmcache.device.Ranges;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A RAM-backed {@link BlockDevice} for tests and transport benchmarks, with two test hooks: an
 * offset whose reads and writes fail with an IOException, and a latch that holds reads at one
 * offset until it is opened.
 */
public final class MemoryBlockDevice implements BlockDevice {
    private final Arena arena = Arena.ofShared();
    private final MemorySegment data;
    private final AtomicInteger flushes = new AtomicInteger();
    private volatile long failingOffset = -1;
    private volatile long heldOffset = -1;
    private volatile CountDownLatch gate;
    private volatile ReadHook readHook;
    private volatile boolean closed;

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
        MemorySegment.copy(src, 0, data, offset, src.byteSize());
    }

    @Override
    public void flush() {
        flushes.incrementAndGet();
    }

    @Override
    public void trim(long offset, long length) throws IOException {
        check(offset, length);
        data.asSlice(offset, length).fill((byte) 0);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean fua) throws IOException {
        trim(offset, length);
    }

    @Override
    public void close() {
        closed = true;
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

    public int flushes() {
        return flushes.get();
    }

    public boolean isClosed() {
        return closed;
    }

    private void check(long offset, long length) throws IOException {
        Ranges.check(this, offset, length);
        long f = failingOffset;
        if (f >= offset && f < offset + length) {
            throw new IOException("injected media error at " + f);
        }
    }
}
