package io.pmcache.backing;

import static io.pmcache.nbd.NbdConstants.NBD_FLAG_CAN_MULTI_CONN;
import static io.pmcache.nbd.NbdConstants.NBD_FLAG_READ_ONLY;
import static io.pmcache.nbd.NbdConstants.NBD_FLAG_SEND_FLUSH;
import static io.pmcache.nbd.NbdConstants.NBD_FLAG_SEND_FUA;
import static io.pmcache.nbd.NbdConstants.NBD_FLAG_SEND_TRIM;
import static io.pmcache.nbd.NbdConstants.NBD_FLAG_SEND_WRITE_ZEROES;

/**
 * What the handshake learnt about an export: its size, transmission flags and block-size
 * constraints (the spec's defaults when the server sent none: minimum 1, maximum 32 MiB), and
 * whether structured replies were agreed, the id of the {@code base:allocation} meta context (-1
 * when the server offers none: it then reports no holes), and whether the connection is TLS.
 *
 * <p>Invariants (checked by {@link #of}): {@code minBlock} is a power of two in [1, 64 KiB];
 * {@code maxPayload} is a multiple of {@code minBlock} in [{@code minBlock}, 32 MiB].
 */
public record NbdExportInfo(long size, int flags, int minBlock, int preferredBlock, int maxPayload,
                            boolean structuredReplies, long allocationContext, boolean tls) {

    /** The most a READ or WRITE carries in one request (the spec's interoperable maximum). */
    static final int MAX_PAYLOAD = 32 << 20;

    public boolean readOnly() {
        return (flags & NBD_FLAG_READ_ONLY) != 0;
    }

    public boolean canFlush() {
        return (flags & NBD_FLAG_SEND_FLUSH) != 0;
    }

    public boolean canFua() {
        return (flags & NBD_FLAG_SEND_FUA) != 0;
    }

    public boolean canTrim() {
        return (flags & NBD_FLAG_SEND_TRIM) != 0;
    }

    public boolean canWriteZeroes() {
        return (flags & NBD_FLAG_SEND_WRITE_ZEROES) != 0;
    }

    /** True when the server reports holes and zeros ({@code NBD_CMD_BLOCK_STATUS} on base:allocation). */
    public boolean hasAllocation() {
        return allocationContext >= 0;
    }

    public boolean canMultiConn() {
        return (flags & NBD_FLAG_CAN_MULTI_CONN) != 0;
    }

    /** Builds the info from the server's figures, clamping the maximum to what this client sends. */
    static NbdExportInfo of(long size, int flags, int min, int preferred, int max, boolean structured,
                            long allocationContext, boolean tls, String where) throws java.io.IOException {
        if (size <= 0) {
            throw new java.io.IOException(where + ": the export has size " + size + "; a backing device needs bytes");
        }
        if (min < 1 || min > (64 << 10) || Integer.bitCount(min) != 1) {
            throw new java.io.IOException(where + ": the server's minimum block size " + min
                    + " is not a power of two in [1, 64 KiB]");
        }
        long maxPayload = max <= 0 ? MAX_PAYLOAD : Math.min(Integer.toUnsignedLong(max), MAX_PAYLOAD);
        maxPayload -= maxPayload % min;
        if (maxPayload < min) {
            throw new java.io.IOException(where + ": the server's maximum block size " + Integer.toUnsignedString(max)
                    + " is below its minimum " + min);
        }
        return new NbdExportInfo(size, flags, min, preferred, (int) maxPayload, structured, allocationContext, tls);
    }

    String describeFlags() {
        StringBuilder b = new StringBuilder();
        if (readOnly()) b.append("read-only ");
        if (canFlush()) b.append("flush ");
        if (canFua()) b.append("fua ");
        if (canTrim()) b.append("trim ");
        if (canWriteZeroes()) b.append("write-zeroes ");
        if (canMultiConn()) b.append("multi-conn ");
        if (structuredReplies) b.append("structured-replies ");
        if (hasAllocation()) b.append("base:allocation ");
        if (tls) b.append("tls ");
        return b.toString().strip();
    }
}
