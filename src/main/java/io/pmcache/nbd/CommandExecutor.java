package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;

import io.pmcache.device.BlockDevice;
import io.pmcache.device.BlockStatus;
import io.pmcache.device.DeviceClosedException;
import io.pmcache.device.DeviceFailedException;
import io.pmcache.device.PayloadSource;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.net.SocketTimeoutException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedByInterruptException;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs one validated request against the device and sends its reply.
 *
 * <ul>
 *   <li>READ reads into the request's pooled buffer and sends it; WRITE hands the payload buffer
 *       (already filled from the socket) to the device as a {@link MemorySegment} view — one copy —
 *       or, when the connection streams it ({@link #executeWrite}), lets the device read it from
 *       the socket itself (into the cache's medium: no copy).</li>
 *   <li>FLUSH calls {@link BlockDevice#flush()}, which covers every write that returned before it;
 *       a write is answered only after it returned, so a FLUSH covers every write any connection
 *       saw answered (what CAN_MULTI_CONN promises).</li>
 *   <li>TRIM with FUA is followed by a flush; WRITE_ZEROES passes FUA to the device; NO_HOLE needs
 *       nothing (the device decides how to zero; either way the range reads as zeros).</li>
 *   <li>CACHE is advisory and a {@code BlockDevice} has no prefetch, so it is validated and
 *       acknowledged.</li>
 *   <li>BLOCK_STATUS ({@code base:allocation}) sends what {@link BlockDevice#blockStatus} reports:
 *       one extent with REQ_ONE, else up to {@link NbdConstants#MAX_BLOCK_STATUS_EXTENTS}, never
 *       past the request's length (the client asks again for the rest).</li>
 *   <li>READ with DF needs nothing: a read is always one chunk.</li>
 * </ul>
 * Errors, on every command alike (the connection keeps serving):
 * <ul>
 *   <li>{@link DeviceClosedException} (the device is stopping), {@link InterruptedIOException} or
 *       {@link ClosedByInterruptException} (a wait inside the device was interrupted), and any
 *       exception that leaves the thread interrupted: ESHUTDOWN, "the request was not done, the
 *       server is going away" (the spec's value for shutdown; the client disconnects and may retry
 *       elsewhere). A {@link SocketTimeoutException} is an InterruptedIOException too but a failed
 *       I/O: EIO.</li>
 *   <li>{@link NoPayloadMemory}: ENOMEM, as for a request whose buffer could not be allocated.</li>
 *   <li>{@link DeviceFailedException} (the device refuses writes and flushes after a failure it
 *       could not recover from) and any other {@link IOException}: EIO.</li>
 *   <li>Any other exception: EIO, logged with its trace (a bug in the device).</li>
 * </ul>
 * An interrupt a device call leaves set is cleared before the reply is sent: a socket channel
 * written by an interrupted thread closes itself.
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
     * Returns how long the device took (the reply's sending not included: a client that reads
     * slowly, or a reply handed to a platform thread, is no slow device). Throws only when the reply
     * cannot be sent.
     */
    long execute(Request r, ByteBuffer buf) throws IOException {
        return execute(r, buf, null);
    }

    /**
     * As {@link #execute}, for a WRITE whose payload the device takes from {@code payload} as it
     * needs it ({@link BlockDevice#writeFrom}). When the payload cannot be read ({@link PayloadLost})
     * nothing is answered: the exception is passed on, the connection is lost.
     */
    long executeWrite(Request r, PayloadSource payload) throws IOException {
        return execute(r, null, payload);
    }

    /** A WRITE's payload could not be read from the socket while the device took it: the connection is lost. */
    static final class PayloadLost extends IOException {
        private final IOException socketFailure;

        PayloadLost(IOException socketFailure) {
            super("payload not received: " + socketFailure.getMessage(), socketFailure);
            this.socketFailure = socketFailure;
        }

        /** What the socket read threw. */
        IOException socketFailure() {
            return socketFailure;
        }
    }

    /** No memory to hold a streamed WRITE's payload when the device asked for it whole: ENOMEM. */
    static final class NoPayloadMemory extends IOException {
        NoPayloadMemory(String message) {
            super(message);
        }
    }

    private long execute(Request r, ByteBuffer buf, PayloadSource payload) throws IOException {
        long start = System.nanoTime();
        List<BlockStatus> status = null;
        Failure failure;
        if (r.type() == NBD_CMD_BLOCK_STATUS) {
            try {
                int max = (r.flags() & NBD_CMD_FLAG_REQ_ONE) != 0 ? 1 : MAX_BLOCK_STATUS_EXTENTS;
                status = device.blockStatus(r.offset(), r.length(), max);
                if (status.isEmpty()) {
                    throw new IllegalStateException("the device reported no extent"); // a reply needs one
                }
                failure = null;
            } catch (IOException e) {
                failure = failure(r, e);
            } catch (RuntimeException e) {
                failure = unexpected(r, e);
            }
        } else {
            failure = run(r, buf, payload);
        }
        long device = System.nanoTime() - start;
        Thread.interrupted(); // see class comment
        if (failure != null) {
            stats.error(failure.error());
            replies.error(r.handle(), failure.error(), failure.message());
            return device;
        }
        switch (r.type()) {
            case NBD_CMD_READ -> replies.data(r.handle(), r.offset(), buf);
            case NBD_CMD_BLOCK_STATUS -> replies.blockStatus(r.handle(), BASE_ALLOCATION_ID, status);
            default -> replies.ok(r.handle());
        }
        return device;
    }

    /** The error value and message of a failed request. */
    record Failure(int error, String message) {
    }

    /** Does the device work; null on success. */
    private Failure run(Request r, ByteBuffer buf, PayloadSource payload) throws PayloadLost {
        try {
            switch (r.type()) {
                case NBD_CMD_READ -> {
                    device.read(r.offset(), MemorySegment.ofBuffer(buf));
                    stats.bytesRead(r.length());
                }
                case NBD_CMD_WRITE -> {
                    if (payload != null) {
                        device.writeFrom(r.offset(), (int) r.length(), payload, r.fua());
                    } else {
                        device.write(r.offset(), MemorySegment.ofBuffer(buf), r.fua());
                    }
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
                case NBD_CMD_CACHE -> {
                    // nothing to do on the device (see class comment)
                }
                default -> throw new IllegalStateException("unvalidated command " + r.type());
            }
            return null;
        } catch (PayloadLost e) {
            throw e;
        } catch (IOException e) {
            return failure(r, e);
        } catch (RuntimeException e) {
            return unexpected(r, e);
        }
    }

    /** The reply for a device call that threw an unchecked exception; see the class comment. */
    private Failure unexpected(Request r, RuntimeException e) {
        if (Thread.currentThread().isInterrupted()) {
            log.debug("{}: {} interrupted: {}", peer, r, e.toString());
            return new Failure(NBD_ESHUTDOWN, "interrupted, the server is shutting down: " + e.getMessage());
        }
        log.error("{}: {} failed unexpectedly", peer, r, e);
        return new Failure(NBD_EIO, "internal error: " + e);
    }

    /** The reply for a device call that threw {@code e}; see the class comment. */
    private Failure failure(Request r, IOException e) {
        if (e instanceof NoPayloadMemory) {
            return new Failure(NBD_ENOMEM, "the server is out of memory for this request"); // the connection logged it
        }
        if (e instanceof DeviceClosedException || e instanceof ClosedByInterruptException
                || (e instanceof InterruptedIOException && !(e instanceof SocketTimeoutException))) {
            log.debug("{}: {} not done, the device is stopping: {}", peer, r, e.toString());
            return new Failure(NBD_ESHUTDOWN, "not done, the server is shutting down: " + e.getMessage());
        }
        if (e instanceof DeviceFailedException) {
            // the device logged the failure that put it in this state; one line per request is noise
            log.debug("{}: {} refused, the device has failed: {}", peer, r, e.toString());
            return new Failure(NBD_EIO, "the device has failed: " + e.getMessage());
        }
        log.warn("{}: {} failed: {}", peer, r, e.toString());
        return new Failure(NBD_EIO, "I/O error: " + e.getMessage());
    }
}
