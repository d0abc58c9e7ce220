package io.pmcache.device;

import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * The data of a write that is not in memory yet (the NBD server's WRITE payload, still arriving on
 * the socket), delivered in order as the device asks for it ({@link BlockDevice#writeFrom}):
 * straight into memory of the device's own, with no buffer in between, or the rest of it at once
 * in a buffer the source provides. Each byte is delivered once.
 */
public interface PayloadSource {
    /** Fills {@code dst} completely with the next {@code dst.byteSize()} bytes. */
    void readInto(MemorySegment dst) throws IOException;

    /**
     * Every byte not delivered yet, in a buffer of the source's (it may wait for memory to hold
     * them), valid until the write that asked returns.
     */
    MemorySegment rest() throws IOException;
}
