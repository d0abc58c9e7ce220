package io.pmcache.nbd;

/**
 * The NBD protocol's numbers, under the names {@code doc/proto.md} of the NetworkBlockDevice/nbd
 * repository gives them. All integers travel big-endian (network byte order).
 *
 * <p>Handshake (fixed newstyle), server first:
 * <pre>
 * S: NBDMAGIC (u64) | IHAVEOPT (u64) | handshake flags (u16)
 * C: client flags (u32)
 * C: IHAVEOPT (u64) | option (u32) | length (u32) | data[length]      (repeated)
 * S: REPLY_MAGIC (u64) | option (u32) | reply type (u32) | length (u32) | data[length]
 * </pre>
 *
 * <p>Request (28 bytes, then {@code length} bytes of payload for {@code NBD_CMD_WRITE}):
 * <pre>
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                  NBD_REQUEST_MAGIC 0x25609513                 |
 * +-------------------------------+-------------------------------+
 * |        command flags          |             type              |
 * +-------------------------------+-------------------------------+
 * |                        handle (64 bits)                       |
 * +---------------------------------------------------------------+
 * |                        offset (64 bits)                       |
 * +---------------------------------------------------------------+
 * |                        length (32 bits)                       |
 * +---------------------------------------------------------------+
 * </pre>
 *
 * <p>Simple reply (16 bytes, then data for a successful read):
 * {@code NBD_SIMPLE_REPLY_MAGIC (u32) | error (u32) | handle (u64)}.
 * <br>Structured reply chunk (20 bytes, then {@code length} bytes of payload):
 * {@code NBD_STRUCTURED_REPLY_MAGIC (u32) | flags (u16) | type (u16) | handle (u64) | length (u32)}.
 */
public final class NbdConstants {
    private NbdConstants() {
    }

    // ---- magics
    public static final long NBDMAGIC = 0x4e42444d41474943L;
    public static final long IHAVEOPT = 0x49484156454F5054L;
    public static final long NBD_REP_MAGIC = 0x3e889045565a9L;
    public static final int NBD_REQUEST_MAGIC = 0x25609513;
    public static final int NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
    public static final int NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

    // ---- sizes
    public static final int REQUEST_HEADER_SIZE = 28;
    public static final int SIMPLE_REPLY_HEADER_SIZE = 16;
    public static final int STRUCTURED_REPLY_HEADER_SIZE = 20;
    /** Longest string (export name, description, query) the spec allows. */
    public static final int MAX_STRING_LENGTH = 4096;

    // ---- handshake flags (server, u16)
    public static final int NBD_FLAG_FIXED_NEWSTYLE = 1;
    public static final int NBD_FLAG_NO_ZEROES = 1 << 1;

    // ---- client flags (u32)
    public static final int NBD_FLAG_C_FIXED_NEWSTYLE = 1;
    public static final int NBD_FLAG_C_NO_ZEROES = 1 << 1;

    // ---- transmission flags (u16)
    public static final int NBD_FLAG_HAS_FLAGS = 1;
    public static final int NBD_FLAG_READ_ONLY = 1 << 1;
    public static final int NBD_FLAG_SEND_FLUSH = 1 << 2;
    public static final int NBD_FLAG_SEND_FUA = 1 << 3;
    public static final int NBD_FLAG_ROTATIONAL = 1 << 4;
    public static final int NBD_FLAG_SEND_TRIM = 1 << 5;
    public static final int NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
    public static final int NBD_FLAG_SEND_DF = 1 << 7;
    public static final int NBD_FLAG_CAN_MULTI_CONN = 1 << 8;
    public static final int NBD_FLAG_SEND_RESIZE = 1 << 9;
    public static final int NBD_FLAG_SEND_CACHE = 1 << 10;
    public static final int NBD_FLAG_SEND_FAST_ZERO = 1 << 11;

    // ---- options (numbers as assigned in the current proto.md; 9 and 10 were once reserved for other drafts)
    public static final int NBD_OPT_EXPORT_NAME = 1;
    public static final int NBD_OPT_ABORT = 2;
    public static final int NBD_OPT_LIST = 3;
    public static final int NBD_OPT_STARTTLS = 5;
    public static final int NBD_OPT_INFO = 6;
    public static final int NBD_OPT_GO = 7;
    public static final int NBD_OPT_STRUCTURED_REPLY = 8;
    public static final int NBD_OPT_LIST_META_CONTEXT = 9;
    public static final int NBD_OPT_SET_META_CONTEXT = 10;

    // ---- option reply types
    public static final int NBD_REP_ACK = 1;
    public static final int NBD_REP_SERVER = 2;
    public static final int NBD_REP_INFO = 3;
    public static final int NBD_REP_META_CONTEXT = 4;
    public static final int NBD_REP_FLAG_ERROR = 1 << 31;
    public static final int NBD_REP_ERR_UNSUP = NBD_REP_FLAG_ERROR | 1;
    public static final int NBD_REP_ERR_POLICY = NBD_REP_FLAG_ERROR | 2;
    public static final int NBD_REP_ERR_INVALID = NBD_REP_FLAG_ERROR | 3;
    public static final int NBD_REP_ERR_PLATFORM = NBD_REP_FLAG_ERROR | 4;
    public static final int NBD_REP_ERR_TLS_REQD = NBD_REP_FLAG_ERROR | 5;
    public static final int NBD_REP_ERR_UNKNOWN = NBD_REP_FLAG_ERROR | 6;
    public static final int NBD_REP_ERR_SHUTDOWN = NBD_REP_FLAG_ERROR | 7;
    public static final int NBD_REP_ERR_BLOCK_SIZE_REQD = NBD_REP_FLAG_ERROR | 8;
    public static final int NBD_REP_ERR_TOO_BIG = NBD_REP_FLAG_ERROR | 9;

    // ---- NBD_REP_INFO types
    public static final int NBD_INFO_EXPORT = 0;
    public static final int NBD_INFO_NAME = 1;
    public static final int NBD_INFO_DESCRIPTION = 2;
    public static final int NBD_INFO_BLOCK_SIZE = 3;

    // ---- commands
    public static final int NBD_CMD_READ = 0;
    public static final int NBD_CMD_WRITE = 1;
    public static final int NBD_CMD_DISC = 2;
    public static final int NBD_CMD_FLUSH = 3;
    public static final int NBD_CMD_TRIM = 4;
    public static final int NBD_CMD_CACHE = 5;
    public static final int NBD_CMD_WRITE_ZEROES = 6;
    public static final int NBD_CMD_BLOCK_STATUS = 7;
    /** One past the highest command this server knows; used to size per-command counters. */
    public static final int NBD_CMD_COUNT = 8;

    // ---- command flags (u16)
    public static final int NBD_CMD_FLAG_FUA = 1;
    public static final int NBD_CMD_FLAG_NO_HOLE = 1 << 1;
    public static final int NBD_CMD_FLAG_DF = 1 << 2;
    public static final int NBD_CMD_FLAG_REQ_ONE = 1 << 3;
    public static final int NBD_CMD_FLAG_FAST_ZERO = 1 << 4;

    // ---- structured reply flags and types
    public static final int NBD_REPLY_FLAG_DONE = 1;
    public static final int NBD_REPLY_TYPE_NONE = 0;
    public static final int NBD_REPLY_TYPE_OFFSET_DATA = 1;
    public static final int NBD_REPLY_TYPE_OFFSET_HOLE = 2;
    public static final int NBD_REPLY_TYPE_BLOCK_STATUS = 5;
    public static final int NBD_REPLY_TYPE_ERROR = (1 << 15) | 1;
    public static final int NBD_REPLY_TYPE_ERROR_OFFSET = (1 << 15) | 2;

    // ---- metadata contexts
    public static final String BASE_ALLOCATION = "base:allocation";
    /** The id this server gives {@code base:allocation} when a client selects it. */
    public static final int BASE_ALLOCATION_ID = 1;
    public static final int NBD_STATE_HOLE = 1;
    public static final int NBD_STATE_ZERO = 1 << 1;

    // ---- error values
    public static final int NBD_SUCCESS = 0;
    public static final int NBD_EPERM = 1;
    public static final int NBD_EIO = 5;
    public static final int NBD_ENOMEM = 12;
    public static final int NBD_EINVAL = 22;
    public static final int NBD_ENOSPC = 28;
    public static final int NBD_EOVERFLOW = 75;
    public static final int NBD_ENOTSUP = 95;
    public static final int NBD_ESHUTDOWN = 108;

    // ---- block size constraints this server advertises (NBD_INFO_BLOCK_SIZE)
    /** Any length and offset: the device is byte-addressed (unaligned writes cost no read-modify-write). */
    public static final int MIN_BLOCK_SIZE = 1;
    public static final int PREFERRED_BLOCK_SIZE = 4096;
    /** Largest READ or WRITE payload accepted: 32 MiB. */
    public static final int MAX_PAYLOAD_SIZE = 32 << 20;
    /**
     * Most descriptors in one BLOCK_STATUS reply (an 8 KiB payload); a client asks again from where
     * the reply ended.
     */
    public static final int MAX_BLOCK_STATUS_EXTENTS = 1024;

    /** The spec's name of a command, for logs and counters. */
    public static String commandName(int type) {
        return switch (type) {
            case NBD_CMD_READ -> "read";
            case NBD_CMD_WRITE -> "write";
            case NBD_CMD_DISC -> "disc";
            case NBD_CMD_FLUSH -> "flush";
            case NBD_CMD_TRIM -> "trim";
            case NBD_CMD_CACHE -> "cache";
            case NBD_CMD_WRITE_ZEROES -> "write_zeroes";
            case NBD_CMD_BLOCK_STATUS -> "block_status";
            default -> "unknown(" + type + ")";
        };
    }

    /** The spec's name of an error value. */
    public static String errorName(int error) {
        return switch (error) {
            case NBD_SUCCESS -> "success";
            case NBD_EPERM -> "EPERM";
            case NBD_EIO -> "EIO";
            case NBD_ENOMEM -> "ENOMEM";
            case NBD_EINVAL -> "EINVAL";
            case NBD_ENOSPC -> "ENOSPC";
            case NBD_EOVERFLOW -> "EOVERFLOW";
            case NBD_ENOTSUP -> "ENOTSUP";
            case NBD_ESHUTDOWN -> "ESHUTDOWN";
            default -> "error(" + error + ")";
        };
    }
}
