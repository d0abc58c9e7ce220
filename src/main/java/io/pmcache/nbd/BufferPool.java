package io.pmcache.nbd;

import java.nio.ByteBuffer;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntFunction;

/**
 * Direct buffers for request payloads, read replies and connection input, recycled by power-of-two
 * size class from 4 KiB to {@link NbdConstants#MAX_PAYLOAD_SIZE}, so the hot path neither allocates
 * nor zeroes memory. Idle buffers are kept up to {@code retainBytes} in all (at least one per class,
 * at most 1024); beyond that a released buffer is left to the garbage collector.
 *
 * <p>How much is lent out is bounded elsewhere ({@link PayloadBudget} for payloads, the connection
 * limit for input buffers); this class only allocates. An allocation that fails (direct memory
 * exhausted: {@link OutOfMemoryError}) is retried once after dropping every idle buffer, then
 * reported as {@link OutOfBuffers}, so that the caller can fail just the one request.
 * Thread-safe and lock-light.
 */
final class BufferPool {
    static final int MIN_SHIFT = 12;
    static final int MAX_SHIFT = Integer.numberOfTrailingZeros(NbdConstants.MAX_PAYLOAD_SIZE);

    /** No buffer could be allocated (direct memory is exhausted). */
    static final class OutOfBuffers extends Exception {
        OutOfBuffers(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private final ArrayBlockingQueue<ByteBuffer>[] classes;
    private final long retainBytes;
    private final AtomicLong idleBytes = new AtomicLong();
    private final IntFunction<ByteBuffer> allocator;

    BufferPool(long retainBytes) {
        this(retainBytes, ByteBuffer::allocateDirect);
    }

    /** {@code allocator}: makes a direct buffer of the given capacity (tests inject failures). */
    @SuppressWarnings("unchecked")
    BufferPool(long retainBytes, IntFunction<ByteBuffer> allocator) {
        this.retainBytes = retainBytes;
        this.allocator = allocator;
        classes = new ArrayBlockingQueue[MAX_SHIFT - MIN_SHIFT + 1];
        for (int shift = MIN_SHIFT; shift <= MAX_SHIFT; shift++) {
            long count = Math.clamp(retainBytes >> shift, 1, 1024);
            classes[shift - MIN_SHIFT] = new ArrayBlockingQueue<>((int) count);
        }
    }

    /** A buffer with position 0 and limit {@code size} (1 .. MAX_PAYLOAD_SIZE). */
    ByteBuffer acquire(int size) throws OutOfBuffers {
        int shift = shiftFor(size);
        ByteBuffer buf = classes[shift - MIN_SHIFT].poll();
        if (buf != null) {
            idleBytes.addAndGet(-buf.capacity());
        } else {
            buf = allocate(1 << shift);
        }
        return buf.clear().limit(size);
    }

    private ByteBuffer allocate(int capacity) throws OutOfBuffers {
        try {
            return allocator.apply(capacity);
        } catch (OutOfMemoryError first) {
            dropIdle(); // garbage now: the allocator's own retry (a GC) can reclaim them
            try {
                return allocator.apply(capacity);
            } catch (OutOfMemoryError again) {
                throw new OutOfBuffers("no " + capacity + "-byte direct buffer: " + again.getMessage(), again);
            }
        }
    }

    /** Gives {@code buf} back; it must not be used afterwards. */
    void release(ByteBuffer buf) {
        int capacity = buf.capacity();
        if (idleBytes.addAndGet(capacity) > retainBytes && idleBytes.get() > capacity) {
            idleBytes.addAndGet(-capacity); // over the retention: leave it to the GC
            return;
        }
        if (!classes[Integer.numberOfTrailingZeros(capacity) - MIN_SHIFT].offer(buf)) {
            idleBytes.addAndGet(-capacity);
        }
    }

    /** Bytes of idle buffers kept for reuse now. */
    long idleBytes() {
        return idleBytes.get();
    }

    private void dropIdle() {
        for (ArrayBlockingQueue<ByteBuffer> q : classes) {
            ByteBuffer b;
            while ((b = q.poll()) != null) {
                idleBytes.addAndGet(-b.capacity());
            }
        }
    }

    /** The capacity of the buffer {@link #acquire} hands out for {@code size} bytes. */
    static int capacityFor(int size) {
        return 1 << shiftFor(size);
    }

    static int shiftFor(int size) {
        if (size <= 0 || size > NbdConstants.MAX_PAYLOAD_SIZE) {
            throw new IllegalArgumentException("buffer size " + size + " outside 1.." + NbdConstants.MAX_PAYLOAD_SIZE);
        }
        return Math.max(MIN_SHIFT, 32 - Integer.numberOfLeadingZeros(size - 1));
    }
}
