package io.pmcache.cache;

import java.util.Collection;
import java.util.HashSet;
import java.util.Set;
import java.util.function.BooleanSupplier;

/**
 * A {@link StepHook} that freezes a background thread at a chosen point of a writeback or gc step,
 * so that the test thread can take a power-cut image with that step half done.
 *
 * <h2>Protocol</h2>
 * <ol>
 *   <li>The test thread {@link #arm arms} it for a point and an occurrence n.</li>
 *   <li>The n-th background thread to reach that point parks there ({@code PARKED}) and waits to
 *       be claimed.</li>
 *   <li>At its next operation boundary the test thread {@link #claim claims} it ({@code CLAIMED}):
 *       from then on every background thread that reaches any point parks too (freeze), so none
 *       can go on into the next store while the image is taken. The harness also holds the
 *       workers at their step boundaries, waits until every one is parked or held, and takes
 *       the image.</li>
 *   <li>{@link #release} lets every parked thread go on (the old instance then dies harmlessly:
 *       the image is a copy).</li>
 * </ol>
 * A parked thread that is not claimed gives up ({@code ARMED} again, and the next hit fires)
 * as soon as the test thread looks stuck — a writer waits for space, or the test thread is
 * blocked at all (it may wait for exactly the step that is frozen, and would never reach its next
 * boundary) — or after a long timeout; a point reached while a writer waits does not fire. The
 * test thread's own hits (a drain it runs, a segment reclaim its write triggers) never park it.
 */
final class CutHook implements StepHook {
    /** A parked thread not yet claimed gives up once the test thread has looked stuck this long. */
    private static final long STUCK_NANOS = 2_000_000L;
    private static final long CLAIM_TIMEOUT_NANOS = 10_000_000_000L;

    enum State { IDLE, ARMED, PARKED, CLAIMED }

    private final Thread foreground;
    private final BooleanSupplier writerWaiting;
    private State state = State.IDLE;
    private Point point;
    private int remaining;
    private Point firedAt;
    /** After a claim: every background thread reaching any point parks. */
    private boolean freeze;
    private final Set<Thread> parked = new HashSet<>();
    /** Threads between a point that starts a store into the medium and the one that ends it. */
    private final Set<Thread> inStore = new HashSet<>();
    private int retractions;
    /** Background hits per point, armed or not. */
    private final long[] hits = new long[Point.values().length];

    /**
     * @param foreground the test thread (never parked)
     * @param writerWaiting true while some writer waits for cache space
     */
    CutHook(Thread foreground, BooleanSupplier writerWaiting) {
        this.foreground = foreground;
        this.writerWaiting = writerWaiting;
    }

    @Override
    public void at(Point p) {
        Thread me = Thread.currentThread();
        if (me == foreground) {
            return;
        }
        synchronized (this) {
            hits[p.ordinal()]++;
            switch (p) {
                case WRITEBACK_AFTER_SYNC, GC_AFTER_UNREF -> inStore.add(me); // the tail store follows
                case WRITEBACK_AFTER_TAIL, GC_AFTER_TAIL -> inStore.remove(me);
                default -> { }
            }
            if (freeze) {
                parkUntilReleased(me);
                return;
            }
            if (state != State.ARMED || p != point || --remaining > 0) {
                return;
            }
            if (writerWaiting.getAsBoolean()) {
                remaining = 1; // a writer waits for space, maybe for this very step: fire at the next hit
                return;
            }
            state = State.PARKED;
            firedAt = p;
            parked.add(me);
            notifyAll();
            long start = System.nanoTime();
            long stuckSince = 0;
            while (state == State.PARKED) {
                long now = System.nanoTime();
                if (foregroundStuck()) {
                    stuckSince = stuckSince == 0 ? now : stuckSince;
                } else {
                    stuckSince = 0;
                }
                if ((stuckSince != 0 && now - stuckSince >= STUCK_NANOS) || now - start > CLAIM_TIMEOUT_NANOS) {
                    // not claimed: go on, and fire again at the next hit
                    state = State.ARMED;
                    remaining = 1;
                    parked.remove(me);
                    retractions++;
                    return;
                }
                waitQuietly(1);
            }
            parkUntilReleased(me); // claimed (or cancelled)
        }
    }

    /**
     * True when the test thread may be waiting for the parked thread: a writer waits for space, or
     * the test thread is blocked at all (it never blocks at an operation boundary).
     */
    private boolean foregroundStuck() {
        return writerWaiting.getAsBoolean() || foreground.getState() != Thread.State.RUNNABLE;
    }

    /** Caller holds the monitor. */
    private void parkUntilReleased(Thread me) {
        parked.add(me);
        notifyAll();
        try {
            while (freeze || state == State.CLAIMED) {
                waitQuietly(0);
            }
        } finally {
            parked.remove(me);
        }
    }

    private void waitQuietly(long ms) {
        try {
            wait(ms);
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while parked at a step hook", ex);
        }
    }

    /**
     * Takes the hook out of the way of an operation that would wait for a parked thread (a drain,
     * a restart): returns the occurrences still to go, after which it is disarmed (re-arm it with
     * them afterwards), or -1 when a thread is parked at the point, which is then claimed as by
     * {@link #claim} (cut there instead).
     */
    synchronized int suspend() {
        if (state == State.PARKED) {
            claim();
            return -1;
        }
        int left = state == State.ARMED ? remaining : 0;
        release();
        return left;
    }

    /** Background hits of {@code p} so far. */
    synchronized long hits(Point p) {
        return hits[p.ordinal()];
    }

    /** Fire at the {@code occurrence}-th (1-based) background hit of {@code p} from now. */
    synchronized void arm(Point p, int occurrence) {
        if (state != State.IDLE) {
            throw new IllegalStateException("hook is " + state);
        }
        state = State.ARMED;
        point = p;
        remaining = occurrence;
    }

    synchronized boolean armed() {
        return state != State.IDLE;
    }

    /** If a thread is parked at the armed point: claim it (freeze everything) and return true. */
    synchronized boolean claim() {
        if (state != State.PARKED) {
            return false;
        }
        state = State.CLAIMED;
        freeze = true;
        notifyAll();
        return true;
    }

    /** The point the claimed thread is parked at. */
    synchronized Point firedAt() {
        return firedAt;
    }

    /** Disarms; a parked or claimed thread goes on as if nothing had happened. */
    synchronized void cancel() {
        release();
    }

    /** Ends a claim or an arming: every parked thread goes on, no point is armed. */
    synchronized void release() {
        state = State.IDLE;
        freeze = false;
        point = null;
        notifyAll();
    }

    synchronized boolean isParked(Thread t) {
        return parked.contains(t);
    }

    /** True when a thread outside {@code workers} (writeback's syncer) is parked. */
    synchronized boolean parkedOutside(Collection<Thread> workers) {
        for (Thread t : parked) {
            if (!workers.contains(t)) {
                return true;
            }
        }
        return false;
    }

    /** True when {@code t} passed a point after which it stores a tail, and not yet the point after it. */
    synchronized boolean inStore(Thread t) {
        return inStore.contains(t) && !parked.contains(t);
    }

    /** How often a parked thread gave up waiting to be claimed. */
    synchronized int retractions() {
        return retractions;
    }

    synchronized String describe() {
        return "hook " + state + " at " + point + " (fired at " + firedAt + "), parked " + parked
                + ", in a store " + inStore;
    }
}
