package io.pmcache.nbd;

import java.nio.ByteBuffer;
import java.util.concurrent.ArrayBlockingQueue;

/**
 * Direct buffers for request payloads and read replies, recycled by power-of-two size class from
 * 4 KiB to {@link NbdConstants#MAX_PAYLOAD_SIZE}, so the hot path neither allocates nor zeroes
 * memory. Each class keeps at most {@code retainPerClass} bytes of idle buffers (and at least one);
 * beyond that a released buffer is left to the garbage collector. Thread-safe and lock-light.
 */
final class BufferPool {
    static final int MIN_SHIFT = 12;
    static final int MAX_SHIFT = Integer.numberOfTrailingZeros(NbdConstants.MAX_PAYLOAD_SIZE);

    private final ArrayBlockingQueue<ByteBuffer>[] classes;

    @SuppressWarnings("unchecked")
    BufferPool(long retainPerClass) {
        classes = new ArrayBlockingQueue[MAX_SHIFT - MIN_SHIFT + 1];
        for (int shift = MIN_SHIFT; shift <= MAX_SHIFT; shift++) {
            long count = Math.clamp(retainPerClass >> shift, 1, 1024);
            classes[shift - MIN_SHIFT] = new ArrayBlockingQueue<>((int) count);
        }
    }

    /** A buffer with position 0 and limit {@code size} (1 .. MAX_PAYLOAD_SIZE). */
    ByteBuffer acquire(int size) {
        int shift = shiftFor(size);
        ByteBuffer buf = classes[shift - MIN_SHIFT].poll();
        if (buf == null) {
            buf = ByteBuffer.allocateDirect(1 << shift);
        }
        return buf.clear().limit(size);
    }

    /** Gives {@code buf} back; it must not be used afterwards. */
    void release(ByteBuffer buf) {
        int shift = Integer.numberOfTrailingZeros(buf.capacity());
        classes[shift - MIN_SHIFT].offer(buf);
    }

    static int shiftFor(int size) {
        if (size <= 0 || size > NbdConstants.MAX_PAYLOAD_SIZE) {
            throw new IllegalArgumentException("buffer size " + size + " outside 1.." + NbdConstants.MAX_PAYLOAD_SIZE);
        }
        return Math.max(MIN_SHIFT, 32 - Integer.numberOfLeadingZeros(size - 1));
    }
}
