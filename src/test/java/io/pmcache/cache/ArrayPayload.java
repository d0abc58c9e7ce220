package io.pmcache.cache;

import io.pmcache.device.PayloadSource;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * A {@link PayloadSource} over a byte array that checks how the device uses it: bytes in order,
 * each once, {@link #rest} at most once; {@link #failAfter} makes it fail as a lost socket would.
 */
final class ArrayPayload implements PayloadSource {
    private final byte[] data;
    private int delivered;
    private int pieces;
    private boolean restTaken;
    private long failAfter = Long.MAX_VALUE;

    ArrayPayload(byte[] data) {
        this.data = data;
    }

    /** Fails with an IOException once {@code bytes} have been delivered and more are asked for. */
    ArrayPayload failAfter(long bytes) {
        failAfter = bytes;
        return this;
    }

    @Override
    public void readInto(MemorySegment dst) throws IOException {
        if (restTaken) {
            throw new AssertionError("readInto after rest()");
        }
        int n = (int) dst.byteSize();
        if (n > data.length - delivered) {
            throw new AssertionError("asked for " + n + " bytes, " + (data.length - delivered) + " left");
        }
        if (delivered + n > failAfter) {
            throw new IOException("payload lost after " + delivered + " bytes (test)");
        }
        MemorySegment.copy(MemorySegment.ofArray(data), delivered, dst, 0, n);
        delivered += n;
        pieces++;
    }

    @Override
    public MemorySegment rest() throws IOException {
        if (restTaken) {
            throw new AssertionError("rest() asked twice");
        }
        if (failAfter < data.length) {
            throw new IOException("payload lost after " + delivered + " bytes (test)");
        }
        restTaken = true;
        MemorySegment rest = MemorySegment.ofArray(data).asSlice(delivered);
        delivered = data.length;
        return rest;
    }

    /** Bytes delivered so far. */
    int delivered() {
        return delivered;
    }

    /** Pieces delivered straight into the device ({@link #readInto} calls). */
    int pieces() {
        return pieces;
    }

    boolean restTaken() {
        return restTaken;
    }
}
