package io.pmcache.nbd;

import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ScheduledExecutorService;

/**
 * What every connection of one server shares: the export, where requests run, the buffer pool,
 * the counters, a timer for handshake deadlines, the per-connection limits, and the watch over
 * requests running inline on a reader.
 */
record ConnectionContext(Export export, ExecutorService requests, BufferPool buffers, NbdStats stats,
                         ScheduledExecutorService timer, int maxInFlightRequests, long maxInFlightBytes,
                         Duration handshakeTimeout, InlineWatch inlineWatch) {
}
