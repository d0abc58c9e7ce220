package io.pmcache.nbd;

import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ScheduledExecutorService;

/**
 * What every connection of one server shares: the exports, where readers and requests run, the
 * buffer pool and the server-wide payload budget, the counters, a timer for handshake deadlines,
 * the per-connection limits, and the watch over requests running inline on a reader.
 *
 * @param readers platform threads for connection readers, reused (a takeover hands the reader's
 *                role to one of them instead of starting a thread), and for the socket writes of
 *                replies sent from virtual threads (see {@link ReplyWriter})
 * @param requests virtual threads for requests handed off by readers
 * @param tls whether and how connections may or must switch to TLS (NBD_OPT_STARTTLS)
 * @param busyPoll whether readers spin for the client's next bytes before they sleep
 */
record ConnectionContext(Exports exports, ExecutorService readers, ExecutorService requests, BufferPool buffers,
                         PayloadBudget budget, NbdStats stats, ScheduledExecutorService timer,
                         int maxInFlightRequests, long maxInFlightBytes, Duration handshakeTimeout,
                         InlineWatch inlineWatch, TlsConfig tls, BusyPoll busyPoll) {
}
