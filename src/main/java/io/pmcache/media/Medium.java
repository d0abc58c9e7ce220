package io.pmcache.media;

import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * The persistent cache medium: a byte-addressable mapped region.
 *
 * <p>The engine reads and writes {@link #segment()} directly (loads and stores into mapped memory).
 * A store is visible to every thread at once and survives a crash of this process (the mapped
 * pages live in the OS), but it survives power loss only after {@link #persist} covering it has
 * returned. Persistence is at 64-byte cache-line granularity at the least: {@code persist} may
 * widen the range (to lines or pages) but never narrows it.
 *
 * <p>Implementations: {@link MappedFileMedium} (a file or DAX device; msync, or cache-line
 * write-back on a {@code READ_WRITE_SYNC} mapping) and {@link PowerCutMedium} (tests: keeps only
 * what was persisted, plus an arbitrary subset of the words stored since).
 */
public interface Medium extends AutoCloseable {

    /** The whole medium, {@link #size()} bytes. Valid until {@link #close()}. */
    MemorySegment segment();

    /** Size in bytes. */
    long size();

    /**
     * Makes the stores in {@code [offset, offset + length)} durable before returning. A zero
     * length is a no-op.
     *
     * @throws IndexOutOfBoundsException if the range is not inside {@code [0, size())}
     */
    void persist(long offset, long length);

    /** A short human description (path, mapping mode) for logs and errors. */
    String describe();

    /** Unmaps. The segment must not be used afterwards. */
    @Override
    void close() throws IOException;
}
