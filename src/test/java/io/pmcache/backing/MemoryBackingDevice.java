package io.pmcache.backing;

import io.pmcache.device.Ranges;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A {@link BackingDevice} in off-heap memory, for tests and tools. Zero-filled at creation; every
 * write is "durable" at once, so {@link #flush()} only counts. The fingerprint is whatever the
 * constructor was given, so tests can simulate the same or another device.
 *
 * <p>Allocation is tracked per {@link #BLOCK}-byte block, as a sparse file would: a write
 * allocates the blocks it touches, a trim or write-zeroes frees the blocks it covers whole (the
 * others keep their allocation, zero-filled). {@link #blockStatus} reports free blocks as HOLE
 * (they read as zeros: every byte of a free block is zero) and allocated ones as DATA.
 *
 * <p>Thread-safe: concurrent calls on disjoint ranges do not interfere; on overlapping ranges
 * each byte ends up with one of the written values. A write marks its blocks after copying, a
 * trim zeroes and frees under the same lock, so a block holding written bytes is never left free.
 */
public final class MemoryBackingDevice implements BackingDevice {

    private final long fingerprint;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment data;
    private final AtomicLong flushes = new AtomicLong();
    private final AtomicLong writes = new AtomicLong();
    private final AtomicLong reads = new AtomicLong();
    private volatile boolean closed;
    /** Allocation granularity, as a file system's block. */
    public static final int BLOCK = 4096;
    /** Allocated blocks; guarded by itself. */
    private final java.util.BitSet allocated = new java.util.BitSet();

    public MemoryBackingDevice(long size, long fingerprint) {
        if (size <= 0) {
            throw new IllegalArgumentException("size must be positive, got " + size);
        }
        this.fingerprint = fingerprint;
        this.data = arena.allocate(size, 4096);
    }

    @Override
    public long size() {
        return data.byteSize();
    }

    @Override
    public long fingerprint() {
        return fingerprint;
    }

    @Override
    public String describe() {
        return "memory backing device (" + size() + " bytes, fingerprint 0x" + Long.toHexString(fingerprint) + ")";
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        Ranges.check(this, offset, dst.byteSize());
        ensureOpen();
        MemorySegment.copy(data, offset, dst, 0, dst.byteSize());
        reads.incrementAndGet();
    }

    @Override
    public void write(long offset, MemorySegment src, boolean fua) throws IOException {
        Ranges.check(this, offset, src.byteSize());
        ensureOpen();
        MemorySegment.copy(src, 0, data, offset, src.byteSize());
        if (src.byteSize() > 0) {
            synchronized (allocated) {
                allocated.set(block(offset), block(offset + src.byteSize() - 1) + 1);
            }
        }
        writes.incrementAndGet();
        if (fua) {
            flushes.incrementAndGet();
        }
    }

    @Override
    public void flush() throws IOException {
        ensureOpen();
        flushes.incrementAndGet();
    }

    @Override
    public void trim(long offset, long length) throws IOException {
        Ranges.check(this, offset, length);
        ensureOpen();
        synchronized (allocated) {
            data.asSlice(offset, length).fill((byte) 0);
            int first = block(offset + BLOCK - 1);   // first block covered whole
            int last = block(offset + length);        // first block past the covered ones
            if (last > first) {
                allocated.clear(first, last);
            }
        }
    }

    /** Free blocks are HOLE, allocated ones DATA. */
    @Override
    public java.util.List<io.pmcache.device.BlockStatus> blockStatus(long offset, long length, int maxExtents)
            throws IOException {
        Ranges.check(this, offset, length);
        ensureOpen();
        var out = new io.pmcache.device.BlockStatus.Builder(offset, length, maxExtents);
        long end = offset + length;
        synchronized (allocated) {
            long pos = offset;
            while (!out.full()) {
                boolean used = allocated.get(block(pos));
                int next = used ? allocated.nextClearBit(block(pos)) : allocated.nextSetBit(block(pos));
                long stop = next < 0 ? end : Math.min(end, (long) next * BLOCK);
                out.add(stop - pos, used ? io.pmcache.device.BlockStatus.Kind.DATA
                        : io.pmcache.device.BlockStatus.Kind.HOLE);
                pos = stop;
            }
        }
        return out.build();
    }

    private static int block(long offset) {
        return (int) (offset / BLOCK);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean fua) throws IOException {
        trim(offset, length);
        writes.incrementAndGet();
        if (fua) {
            flushes.incrementAndGet();
        }
    }

    /** Flushes, including FUA writes, since creation. */
    public long flushCount() {
        return flushes.get();
    }

    /** Completed write and writeZeroes calls since creation. */
    public long writeCount() {
        return writes.get();
    }

    /** Completed read calls since creation. */
    public long readCount() {
        return reads.get();
    }

    /** A copy of the whole content, for assertions. */
    public byte[] toByteArray() throws IOException {
        ensureOpen();
        return data.toArray(ValueLayout.JAVA_BYTE);
    }

    /** Frees the memory; later calls throw IOException. */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            arena.close();
        }
    }

    private void ensureOpen() throws IOException {
        if (closed) {
            throw new IOException(describe() + " is closed");
        }
    }
}
