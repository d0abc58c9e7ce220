package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * Counters of one server: requests per command, error replies per error value, payload bytes,
 * connections. Cheap to update from any thread; {@link #snapshot()} gives a consistent-enough copy
 * for metrics (each counter is read once).
 */
public final class NbdStats {
    /** Error values counted, in the order of {@link Snapshot#errors()}. */
    private static final int[] ERRORS = {NBD_EPERM, NBD_EIO, NBD_ENOMEM, NBD_EINVAL, NBD_ENOSPC, NBD_EOVERFLOW,
            NBD_ENOTSUP, NBD_ESHUTDOWN};

    private final LongAdder[] requests = adders(NBD_CMD_COUNT + 1);
    private final LongAdder[] errors = adders(ERRORS.length + 1);
    private final LongAdder bytesRead = new LongAdder();
    private final LongAdder bytesWritten = new LongAdder();
    private final LongAdder connectionsAccepted = new LongAdder();
    private final LongAdder connectionsRefused = new LongAdder();
    private final LongAdder protocolViolations = new LongAdder();
    private final LongAdder inlineRequests = new LongAdder();
    private final LongAdder inlineTakeovers = new LongAdder();
    private final LongAdder streamedWrites = new LongAdder();
    private final LongAdder busyPolls = new LongAdder();
    private final LongAdder busyPollHits = new LongAdder();
    private final LongAdder bufferWaits = new LongAdder();
    private final LongAdder allocationFailures = new LongAdder();
    private final AtomicInteger connectionsActive = new AtomicInteger();

    /**
     * A copy of the counters.
     *
     * @param requests requests received per command ("read", "write", "flush", "trim", "cache",
     *                 "write_zeroes", "block_status", "disc", "unknown"), including refused ones
     * @param errors error replies per error value ("EINVAL", "ENOSPC", "EPERM", "EIO", ...)
     * @param bytesRead bytes sent to clients by successful reads
     * @param bytesWritten bytes received from clients by successful writes
     * @param connectionsAccepted connections that were accepted (past the connection limit check)
     * @param connectionsRefused connections refused because the limit was reached (told so in the
     *                           handshake, see {@link NbdServer}) or the server was closing; never
     *                           counted as accepted
     * @param connectionsActive connections open now
     * @param protocolViolations connections closed because the client broke the protocol
     * @param inlineRequests requests run on the connection's reader (nothing else was in flight or
     *                       pending) instead of a request thread
     * @param inlineTakeovers inline requests that ran so long that a new thread took over reading
     * @param bufferWaits requests that waited for payload memory (the server-wide budget was in use)
     * @param allocationFailures requests answered ENOMEM because no buffer could be allocated
     * @param streamedWrites inline WRITEs whose payload the device read from the socket itself
     * @param busyPolls times a reader found the socket empty and spun for the client's next bytes
     *                  ({@link BusyPoll})
     * @param busyPollHits of those, the spins that read something before their window ended (the
     *                     others slept after it)
     */
    public record Snapshot(Map<String, Long> requests, Map<String, Long> errors, long bytesRead, long bytesWritten,
                           long connectionsAccepted, long connectionsRefused, int connectionsActive,
                           long protocolViolations, long inlineRequests,
                           long inlineTakeovers, long bufferWaits, long allocationFailures, long streamedWrites,
                           long busyPolls, long busyPollHits) {
        /** Requests received for a command name (0 if none). */
        public long requests(String command) {
            return requests.getOrDefault(command, 0L);
        }

        /** Error replies sent with an error name (0 if none). */
        public long errors(String error) {
            return errors.getOrDefault(error, 0L);
        }
    }

    public Snapshot snapshot() {
        Map<String, Long> req = new LinkedHashMap<>();
        for (int type = 0; type < NBD_CMD_COUNT; type++) {
            req.put(commandName(type), requests[type].sum());
        }
        req.put("unknown", requests[NBD_CMD_COUNT].sum());
        Map<String, Long> err = new LinkedHashMap<>();
        for (int i = 0; i < ERRORS.length; i++) {
            err.put(errorName(ERRORS[i]), errors[i].sum());
        }
        err.put("other", errors[ERRORS.length].sum());
        return new Snapshot(Map.copyOf(req), Map.copyOf(err), bytesRead.sum(), bytesWritten.sum(),
                connectionsAccepted.sum(), connectionsRefused.sum(), connectionsActive.get(), protocolViolations.sum(),
                inlineRequests.sum(), inlineTakeovers.sum(), bufferWaits.sum(), allocationFailures.sum(),
                streamedWrites.sum(), busyPolls.sum(), busyPollHits.sum());
    }

    void inlineTakeover() {
        inlineTakeovers.increment();
    }

    void bufferWait() {
        bufferWaits.increment();
    }

    void allocationFailure() {
        allocationFailures.increment();
    }

    void inlineRequest() {
        inlineRequests.increment();
    }

    void busyPoll(boolean hit) {
        busyPolls.increment();
        if (hit) {
            busyPollHits.increment();
        }
    }

    void streamedWrite() {
        streamedWrites.increment();
    }

    void request(int type) {
        requests[type >= 0 && type < NBD_CMD_COUNT ? type : NBD_CMD_COUNT].increment();
    }

    void error(int error) {
        int i = 0;
        while (i < ERRORS.length && ERRORS[i] != error) {
            i++;
        }
        errors[i].increment();
    }

    void bytesRead(long n) {
        bytesRead.add(n);
    }

    void bytesWritten(long n) {
        bytesWritten.add(n);
    }

    void connectionOpened() {
        connectionsAccepted.increment();
        connectionsActive.incrementAndGet();
    }

    void connectionClosed() {
        connectionsActive.decrementAndGet();
    }

    void connectionRefused() {
        connectionsRefused.increment();
    }

    void protocolViolation() {
        protocolViolations.increment();
    }

    private static LongAdder[] adders(int n) {
        LongAdder[] a = new LongAdder[n];
        for (int i = 0; i < n; i++) {
            a[i] = new LongAdder();
        }
        return a;
    }
}
