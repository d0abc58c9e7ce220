package io.pmcache.backing;

import java.time.Duration;

/**
 * The NBD client's bounds (see docs/connect.md, "pmcache in front of remote storage").
 *
 * @param connectTimeout TCP/unix connect plus the whole handshake, per connection
 * @param requestTimeout how long requests may be outstanding on a connection with no reply bytes
 *                       arriving before the connection is declared stalled and dropped (a slow but
 *                       progressing server is never cut off: any reply resets the clock)
 * @param fenceTimeout   after a stall, how long the client waits, having shut down its sending side,
 *                       for the server to finish the requests it already received and close; only
 *                       then does it reconnect (so a late write of the old connection cannot land
 *                       after a newer one sent on the new connection)
 * @param reconnectMin   first delay between reconnect attempts; doubles per failure
 * @param reconnectMax   the longest delay between reconnect attempts
 * @param connections    connections to open when the server offers CAN_MULTI_CONN (else one)
 */
public record NbdClientOptions(Duration connectTimeout, Duration requestTimeout, Duration fenceTimeout,
                               Duration reconnectMin, Duration reconnectMax, int connections) {

    public NbdClientOptions {
        if (connections < 1 || connections > 64) {
            throw new IllegalArgumentException("connections must be in [1, 64], got " + connections);
        }
        for (Duration d : new Duration[] {connectTimeout, requestTimeout, fenceTimeout, reconnectMin, reconnectMax}) {
            if (d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException("NBD client timeouts must be positive, got " + d);
            }
        }
    }

    public static NbdClientOptions defaults() {
        return new NbdClientOptions(Duration.ofSeconds(10), Duration.ofSeconds(30), Duration.ofSeconds(10),
                Duration.ofMillis(100), Duration.ofSeconds(10), 4);
    }

    public NbdClientOptions withRequestTimeout(Duration d) {
        return new NbdClientOptions(connectTimeout, d, fenceTimeout, reconnectMin, reconnectMax, connections);
    }

    public NbdClientOptions withFenceTimeout(Duration d) {
        return new NbdClientOptions(connectTimeout, requestTimeout, d, reconnectMin, reconnectMax, connections);
    }

    public NbdClientOptions withReconnect(Duration min, Duration max) {
        return new NbdClientOptions(connectTimeout, requestTimeout, fenceTimeout, min, max, connections);
    }

    public NbdClientOptions withConnections(int n) {
        return new NbdClientOptions(connectTimeout, requestTimeout, fenceTimeout, reconnectMin, reconnectMax, n);
    }
}
