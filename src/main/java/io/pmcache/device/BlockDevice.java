package io.pmcache.device;

import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * A block device: a fixed-size array of bytes with read, write, flush and trim.
 *
 * <p>The cache, every backing device and anything the NBD server serves implement this.
 * Implementations are thread-safe: any number of threads may call any method concurrently.
 *
 * <p>Contract (checked by the device contract test suite):
 * <ul>
 *   <li>{@code read} fills {@code dst} completely with the newest data written at
 *       {@code [offset, offset + dst.byteSize())}; bytes never written read as zero.</li>
 *   <li>{@code write} returns once later reads see the data; with {@code fua} the data is also
 *       durable (survives power loss) on return.</li>
 *   <li>{@code flush} makes every write that returned before {@code flush} was called durable.</li>
 *   <li>{@code trim} discards a range: until it is written again it reads as zeros.</li>
 *   <li>{@code blockStatus} never reports ZERO or HOLE for a byte that would not read as zero.</li>
 *   <li>Ranges outside {@code [0, size())} throw {@link IllegalArgumentException}.</li>
 * </ul>
 */
public interface BlockDevice extends AutoCloseable {

    /** Size in bytes. Constant for the life of the device. */
    long size();

    /** Reads {@code dst.byteSize()} bytes at {@code offset} into {@code dst}. */
    void read(long offset, MemorySegment dst) throws IOException;

    /**
     * Writes all of {@code src} at {@code offset}: done (or failed, throwing) on return; durable on
     * return when {@code fua}.
     */
    void write(long offset, MemorySegment src, boolean fua) throws IOException;

    /**
     * Writes all of {@code src} at {@code offset}, perhaps only sent on return: a device may keep
     * such writes in flight (a remote's round trips), and one that fails after returning fails the
     * next {@link #flush} of the device — its own flush, not other {@link Flusher}s'. For a writer
     * that writes again whatever its next flush cannot confirm (the cache's writeback). The memory
     * of {@code src} must stay valid and unchanged until that flush returned: a device may write
     * from it after returning (a file's direct writes). The default is {@link #write}.
     */
    default void writeBehind(long offset, MemorySegment src) throws IOException {
        write(offset, src, false);
    }

    /**
     * Writes the {@code length} bytes {@code data} delivers at {@code offset}: {@link #write} for
     * data that is not in memory yet. The default takes it whole ({@link PayloadSource#rest}); a
     * device with memory of its own (the cache's medium) reads it straight to where it keeps it. An
     * exception from {@code data} is passed on as it is; the bytes written before it are undefined.
     */
    default void writeFrom(long offset, int length, PayloadSource data, boolean fua) throws IOException {
        Ranges.check(this, offset, length);
        write(offset, data.rest(), fua);
    }

    /**
     * Makes every write completed before this call durable. A write lost after it returned (a
     * page cache's write-out error, a remote's connection lost before its flush) fails the next
     * flush of each {@link Flusher} once (see {@link #newFlusher}); a failed {@link #writeBehind}
     * fails only this method's. This method is the device's own flusher.
     */
    void flush() throws IOException;

    /**
     * Flushes a device as one of its flushers (see {@link #newFlusher}). A device may hold
     * something for each flusher (a file descriptor) until the flusher or the device is closed, so
     * whoever makes one closes it when done with it.
     */
    @FunctionalInterface
    interface Flusher extends AutoCloseable {
        /** {@link BlockDevice#flush}, reporting failures to this flusher. */
        void flush() throws IOException;

        /**
         * Gives back what the device holds for this flusher; not to be flushed afterwards (the
         * devices' own flushers then fail). The default holds nothing.
         */
        @Override
        default void close() throws IOException {
        }
    }

    /**
     * A flusher of its own, for a part of a program that flushes for writers of its own. Where a
     * write can be lost after it returned — a page cache's write-out, whose error Linux reports once
     * to each open file; a remote's connection lost before its flush — each flusher learns of it at
     * its next flush, so one part's flush never consumes the report another part needs. (Failures
     * of {@link #writeBehind} go to the device's own {@link #flush} only.) The caller closes it
     * ({@link Flusher#close}) when done, at the latest when it closes itself: a device may hold a
     * descriptor per flusher. The default is {@link #flush} itself, right for devices that lose no
     * write after it returned.
     */
    default Flusher newFlusher() throws IOException {
        return this::flush;
    }

    /**
     * Told by a front end's I/O thread that it has nothing to do until its next request arrives
     * (the replies are sent): the device may do a little deferred work here, never waiting. The
     * default does nothing.
     */
    default void idle() {
    }

    /** Discards {@code [offset, offset + length)}; the range then reads as zeros. */
    void trim(long offset, long length) throws IOException;

    /**
     * Makes {@code [offset, offset + length)} read as zeros; durable on return when {@code fua}.
     * The default writes zero-filled buffers; devices override it with something cheaper.
     */
    default void writeZeroes(long offset, long length, boolean fua) throws IOException {
        Ranges.check(this, offset, length);
        final int chunk = 1 << 20;
        try (var arena = java.lang.foreign.Arena.ofConfined()) {
            MemorySegment zeros = arena.allocate(Math.min(chunk, Math.max(1, length)));
            long done = 0;
            while (done < length) {
                long n = Math.min(zeros.byteSize(), length - done);
                write(offset + done, zeros.asSlice(0, n), false);
                done += n;
            }
        }
        if (fua) {
            flush();
        }
    }

    /**
     * The allocation status of {@code [offset, offset + length)} ({@code length > 0}): consecutive
     * extents starting at {@code offset}, at most {@code maxExtents} of them ({@code >= 1}), covering
     * all of the range or a prefix of it (the caller asks again for the rest). ZERO and HOLE only
     * where the bytes read as zeros (see {@link BlockStatus}). The default knows nothing: one DATA
     * extent for the whole range, always correct.
     */
    default java.util.List<BlockStatus> blockStatus(long offset, long length, int maxExtents) throws IOException {
        Ranges.check(this, offset, length);
        return java.util.List.of(new BlockStatus(offset, length, BlockStatus.Kind.DATA));
    }

    @Override
    void close() throws IOException;
}
