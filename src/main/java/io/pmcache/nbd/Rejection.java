package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;

/** Why a request is refused before it reaches the device, with the error value the spec asks for. */
enum Rejection {
    UNKNOWN_COMMAND(NBD_EINVAL, "unknown command"),
    UNSUPPORTED_FLAGS(NBD_EINVAL, "command flags not valid for this command"),
    READ_ONLY(NBD_EPERM, "the export is read-only"),
    ZERO_LENGTH(NBD_EINVAL, "zero-length request"),
    TOO_LARGE(NBD_EINVAL, "length exceeds the 32 MiB maximum block size"),
    BEYOND_END(NBD_EINVAL, "range extends beyond the end of the export"),
    NO_SPACE(NBD_ENOSPC, "write extends beyond the end of the export"),
    FLUSH_RANGE(NBD_EINVAL, "flush must have zero offset and length"),
    NO_META_CONTEXT(NBD_EINVAL, "block status needs the base:allocation metadata context"),
    FAST_ZERO(NBD_ENOTSUP, "fast zeroing is not supported by this device");

    final int error;
    final String message;

    Rejection(int error, String message) {
        this.error = error;
        this.message = message;
    }
}
