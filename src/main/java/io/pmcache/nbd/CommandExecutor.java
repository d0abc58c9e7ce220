package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;

import io.pmcache.device.BlockDevice;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs one validated request against the device and sends its reply.
 *
 * <ul>
 *   <li>READ reads into the request's pooled buffer and sends it; WRITE hands the payload buffer
 *       (already filled from the socket) to the device as a {@link MemorySegment} view — one copy.</li>
 *   <li>FLUSH calls {@link BlockDevice#flush()}, which covers every write that returned before it;
 *       a write is answered only after it returned, so a FLUSH covers every write any connection
 *       saw answered (what CAN_MULTI_CONN promises).</li>
 *   <li>TRIM with FUA is followed by a flush; WRITE_ZEROES passes FUA to the device; NO_HOLE needs
 *       nothing (the device decides how to zero; either way the range reads as zeros).</li>
 *   <li>CACHE is advisory and a {@code BlockDevice} has no prefetch, so it is validated and
 *       acknowledged.</li>
 *   <li>BLOCK_STATUS reports the whole range as one allocated data extent (status 0), which the
 *       spec allows for any block.</li>
 * </ul>
 * An {@link IOException} from the device becomes EIO, any other exception EIO with a logged trace
 * (it is a bug in the device); the connection keeps serving.
 */
final class CommandExecutor {
    private static final Logger log = LoggerFactory.getLogger(CommandExecutor.class);

    private final BlockDevice device;
    private final ReplyWriter replies;
    private final NbdStats stats;
    private final String peer;

    CommandExecutor(BlockDevice device, ReplyWriter replies, NbdStats stats, String peer) {
        this.device = device;
        this.replies = replies;
        this.stats = stats;
        this.peer = peer;
    }

    /**
     * Executes {@code r}; {@code buf} is the write payload or the read destination (else null).
     * Throws only when the reply cannot be sent.
     */
    void execute(Request r, ByteBuffer buf) throws IOException {
        String failure = run(r, buf);
        if (failure != null) {
            stats.error(NBD_EIO);
            replies.error(r.handle(), NBD_EIO, failure);
            return;
        }
        switch (r.type()) {
            case NBD_CMD_READ -> replies.data(r.handle(), r.offset(), buf);
            case NBD_CMD_BLOCK_STATUS -> replies.blockStatus(r.handle(), BASE_ALLOCATION_ID, (int) r.length(), 0);
            default -> replies.ok(r.handle());
        }
    }

    /** Does the device work; null on success, else the message for the EIO reply. */
    private String run(Request r, ByteBuffer buf) {
        try {
            switch (r.type()) {
                case NBD_CMD_READ -> {
                    device.read(r.offset(), MemorySegment.ofBuffer(buf));
                    stats.bytesRead(r.length());
                }
                case NBD_CMD_WRITE -> {
                    device.write(r.offset(), MemorySegment.ofBuffer(buf), r.fua());
                    stats.bytesWritten(r.length());
                }
                case NBD_CMD_FLUSH -> device.flush();
                case NBD_CMD_TRIM -> {
                    device.trim(r.offset(), r.length());
                    if (r.fua()) {
                        device.flush();
                    }
                }
                case NBD_CMD_WRITE_ZEROES -> device.writeZeroes(r.offset(), r.length(), r.fua());
                case NBD_CMD_CACHE, NBD_CMD_BLOCK_STATUS -> {
                    // nothing to do on the device (see class comment)
                }
                default -> throw new IllegalStateException("unvalidated command " + r.type());
            }
            return null;
        } catch (IOException e) {
            log.warn("{}: {} failed: {}", peer, r, e.toString());
            return "I/O error: " + e.getMessage();
        } catch (RuntimeException e) {
            log.error("{}: {} failed unexpectedly", peer, r, e);
            return "internal error: " + e;
        }
    }
}
