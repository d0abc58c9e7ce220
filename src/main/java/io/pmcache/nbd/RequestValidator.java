package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;

/**
 * Checks a request against the spec and the session before anything touches the device.
 *
 * <p>Order of checks (first failure wins): unknown command; a flag not documented for the command
 * (FUA is accepted on every command, as the spec requires once SEND_FUA is advertised; DF on READ
 * only with structured replies, where SEND_DF is advertised); writes,
 * trims and zeroing on a read-only export; zero length; a READ or WRITE over
 * {@link NbdConstants#MAX_PAYLOAD_SIZE}; the range against the export size (ENOSPC for WRITE and
 * WRITE_ZEROES, which the spec lets answer ENOSPC; EINVAL for everything else, TRIM included);
 * FLUSH with a range; BLOCK_STATUS without {@code base:allocation};
 * WRITE_ZEROES with FAST_ZERO (ENOTSUP: a {@code BlockDevice} cannot tell whether it zeroes fast,
 * so this server never promises it — the client then falls back to writing zeroes itself).
 * Unaligned requests are accepted: the device is byte-addressed.
 */
final class RequestValidator {
    private final long size;
    private final boolean readOnly;
    private final boolean baseAllocation;
    private final boolean structuredReplies;

    RequestValidator(Session session) {
        this.size = session.export().size();
        this.readOnly = session.export().readOnly();
        this.baseAllocation = session.baseAllocation();
        this.structuredReplies = session.structuredReplies();
    }

    /** The reason to refuse {@code r}, or null when it may run. */
    Rejection validate(Request r) {
        int allowed = allowedFlags(r.type(), structuredReplies);
        if (allowed < 0) {
            return Rejection.UNKNOWN_COMMAND;
        }
        if ((r.flags() & ~allowed) != 0) {
            return Rejection.UNSUPPORTED_FLAGS;
        }
        if (r.type() == NBD_CMD_FLUSH) {
            return r.offset() == 0 && r.length() == 0 ? null : Rejection.FLUSH_RANGE;
        }
        boolean writes = writes(r.type());
        if (writes && readOnly) {
            return Rejection.READ_ONLY;
        }
        if (r.length() == 0) {
            return Rejection.ZERO_LENGTH;
        }
        if ((r.type() == NBD_CMD_READ || r.type() == NBD_CMD_WRITE) && r.length() > MAX_PAYLOAD_SIZE) {
            return Rejection.TOO_LARGE;
        }
        if (r.offset() < 0 || r.offset() > size || r.length() > size - r.offset()) {
            return r.type() == NBD_CMD_WRITE || r.type() == NBD_CMD_WRITE_ZEROES ? Rejection.NO_SPACE
                    : Rejection.BEYOND_END;
        }
        if (r.type() == NBD_CMD_BLOCK_STATUS && !baseAllocation) {
            return Rejection.NO_META_CONTEXT;
        }
        if ((r.flags() & NBD_CMD_FLAG_FAST_ZERO) != 0) {
            return Rejection.FAST_ZERO;
        }
        return null;
    }

    private static boolean writes(int type) {
        return type == NBD_CMD_WRITE || type == NBD_CMD_TRIM || type == NBD_CMD_WRITE_ZEROES;
    }

    /** Flags documented for a command, or -1 for a command this server does not know. */
    private static int allowedFlags(int type, boolean structuredReplies) {
        return switch (type) {
            case NBD_CMD_READ -> structuredReplies ? NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_DF : NBD_CMD_FLAG_FUA;
            case NBD_CMD_WRITE, NBD_CMD_FLUSH, NBD_CMD_TRIM, NBD_CMD_CACHE, NBD_CMD_DISC ->
                    NBD_CMD_FLAG_FUA;
            case NBD_CMD_WRITE_ZEROES -> NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
            case NBD_CMD_BLOCK_STATUS -> NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE;
            default -> -1;
        };
    }
}
