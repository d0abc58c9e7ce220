package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;

import io.pmcache.device.BlockDevice;
import java.util.Objects;

/**
 * The one export a server offers: a device, the name it answers to, a description and whether it
 * is read-only. The export answers to its name and to the empty ("default") name.
 */
record Export(String name, String description, BlockDevice device, boolean readOnly) {

    /** Transmission flags advertised for this export, before the connection's own ({@link #transmissionFlags(boolean)}). */
    static final int BASE_FLAGS = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA
            | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO
            | NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE;
    /**
     * What a read-only export advertises: no FUA, TRIM, WRITE_ZEROES or FAST_ZERO, which only make
     * sense for writes (as nbdkit and qemu-nbd do), so clients do not offer what would fail EPERM.
     */
    static final int READ_ONLY_FLAGS = NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH
            | NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE;

    Export {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(description, "description");
        Objects.requireNonNull(device, "device");
    }

    long size() {
        return device.size();
    }

    /**
     * Transmission flags for a connection; {@code structuredReplies}: negotiated so far, which adds
     * SEND_DF (a read is always answered in one chunk; the spec forbids the flag without structured
     * replies).
     */
    int transmissionFlags(boolean structuredReplies) {
        int flags = readOnly ? READ_ONLY_FLAGS : BASE_FLAGS;
        return structuredReplies ? flags | NBD_FLAG_SEND_DF : flags;
    }

    boolean answersTo(String requested) {
        return requested.isEmpty() || requested.equals(name);
    }
}
