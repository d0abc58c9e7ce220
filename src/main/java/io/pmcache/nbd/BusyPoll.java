package io.pmcache.nbd;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Busy polling: whether a connection's reader, finding the socket empty, spins for the client's
 * next bytes before it goes to sleep — the one authority on that decision (Linux's
 * {@code net.core.busy_read}, for a Unix or TCP socket, in user space).
 *
 * <h2>Why</h2>
 * A client at queue depth 1 sends its next request a few microseconds after it reads the reply.
 * If the server's reader sleeps meanwhile, the request must wake it: on a virtual machine whose
 * vCPU went idle that is an interrupt to a halted vCPU, measured at ~25 µs each way on the
 * 2-vCPU VM of docs/benchmarks.md ("Session 19"), more than the request itself costs. A reader
 * that is still spinning when the request arrives takes it at once, which halves a QD1 round trip
 * there. The price is CPU: a spinning reader keeps a CPU busy for up to {@link #windowNanos} after
 * each reply.
 *
 * <h2>The rule</h2>
 * <ul>
 *   <li>A reader spins for at most the window, then sleeps as before.</li>
 *   <li>Per connection ({@link Gate#requestsRead}): no spin when the last reads brought more than
 *       one request (a pipelining client, e.g. at queue depth 32: measured 5-15 % slower with
 *       spinning on two CPUs, docs/benchmarks.md "Found at the end").</li>
 *   <li>Per connection ({@link Gate}): after {@value #MISSES_TO_STOP} spins in a row that ended
 *       with nothing read, the client is not answering within the window (a client with think
 *       time, an idle one): that connection stops spinning until a sleep of its reader ends
 *       within the window again.</li>
 *   <li>Server-wide: at most {@link #maxSpinners} readers spin at once (half the CPUs, at least
 *       one), so spinning never takes every CPU from the clients, the requests and writeback.</li>
 * </ul>
 */
public final class BusyPoll {
    /** The default window: Linux's recommended {@code busy_read} value. */
    public static final Duration DEFAULT_WINDOW = Duration.ofNanos(50_000);
    /** The longest window accepted: a spin longer than this costs more CPU than any wake-up saves. */
    public static final Duration MAX_WINDOW = Duration.ofMillis(1);
    static final int MISSES_TO_STOP = 2;
    /** No spinning: readers sleep as soon as the socket is empty. */
    public static final BusyPoll OFF = new BusyPoll(Duration.ZERO, 0, new NbdStats());

    private final long windowNanos;
    private final int maxSpinners;
    private final AtomicInteger spinners = new AtomicInteger();
    /** Counts the spins and those that read something. */
    private final NbdStats stats;

    BusyPoll(Duration window, int maxSpinners, NbdStats stats) {
        this.windowNanos = checkWindow(window).toNanos();
        this.maxSpinners = maxSpinners;
        this.stats = stats;
    }

    /** Returns {@code window} if it is one (0..{@link #MAX_WINDOW}); else IllegalArgumentException saying why. */
    public static Duration checkWindow(Duration window) {
        if (window.isNegative() || window.compareTo(MAX_WINDOW) > 0) {
            throw new IllegalArgumentException("busy-poll window must be 0.." + MAX_WINDOW.toNanos() / 1000
                    + " µs, got " + window.toNanos() / 1000 + " µs");
        }
        return window;
    }

    /** Spins of up to {@code window} (zero: off), by at most half the CPUs at once, counted in {@code stats}. */
    static BusyPoll of(Duration window, NbdStats stats) {
        return checkWindow(window).isZero() ? OFF
                : new BusyPoll(window, Math.max(1, Runtime.getRuntime().availableProcessors() / 2), stats);
    }

    long windowNanos() {
        return windowNanos;
    }

    /** A new connection's gate. */
    Gate gate() {
        return new Gate();
    }

    /** One connection's state; used by its reader only. */
    final class Gate {
        private int misses;
        private boolean pipelining;

        /**
         * The reader is about to read the socket again, having taken {@code requests} requests from
         * what its last reads brought. More than one: the client keeps several requests in flight,
         * and is not waiting on one reply. Its next requests come anyway, and a reader that sleeps
         * meanwhile wakes to a batch of them. A spinner would take them one at a time, with a
         * system call per spin, and answer in smaller batches. So the reader does not spin for
         * such a client.
         */
        void requestsRead(int requests) {
            pipelining = requests > 1;
        }

        /** True if the reader may spin now; if so, it must call {@link #end} after. */
        boolean begin() {
            if (windowNanos == 0 || misses >= MISSES_TO_STOP || pipelining) {
                return false;
            }
            if (spinners.incrementAndGet() > maxSpinners) {
                spinners.decrementAndGet();
                return false;
            }
            return true;
        }

        /** The spin begun by {@link #begin} is over; {@code hit}: it read something. */
        void end(boolean hit) {
            spinners.decrementAndGet();
            stats.busyPoll(hit);
            misses = hit ? 0 : misses + 1;
        }

        /** The reader slept for {@code nanos} before bytes (or the end) came. */
        void slept(long nanos) {
            if (nanos < windowNanos) {
                misses = 0;
            }
        }

        long windowNanos() {
            return windowNanos;
        }
    }
}
