package io.pmcache.backing;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;

/**
 * The writes sent but not yet answered ("write-behind"). A plain write returns once its bytes are
 * on the socket, so one caller (the cache's writeback is one thread) keeps many writes in flight to
 * a remote whose latency would otherwise allow one write per round trip.
 *
 * <p>Rules that keep the device a disk:
 * <ul>
 *   <li>NBD may carry out requests in any order, so a request that overlaps a write in flight waits
 *       for that write's reply before it is sent: reads see the writes made before them, and
 *       overlapping writes land in the order they were made.</li>
 *   <li>A flush first waits for every write made before it; if one of them failed, the flush fails,
 *       so the caller writes again what it cannot know landed — as a disk reports a lost cached
 *       write at the next flush. Each failure is reported once to each {@link Cursor} (one per
 *       flusher, like the error sequence each open file of a Linux file keeps): a flush for one
 *       writer never consumes the report another writer's flush needs. Writes made after the flush
 *       began keep their failure for a later flush.</li>
 *   <li>At most {@link #WINDOW} writes are in flight; a further write waits for a reply. Each
 *       completes within the connection's request timeout and fence, so every wait here is bounded.</li>
 * </ul>
 */
final class NbdWriteBehind {
    static final int WINDOW = 64;

    private static final class Entry {
        final long start;
        final long end;
        final CountDownLatch done = new CountDownLatch(1);

        Entry(long start, long end) {
            this.start = start;
            this.end = end;
        }
    }

    private final Semaphore window = new Semaphore(WINDOW);
    /** In-flight writes by sequence; guarded by this. */
    private final TreeMap<Long, Entry> inFlight = new TreeMap<>();
    /** Failed writes some cursor has not reported yet, by sequence; guarded by this. */
    private final TreeMap<Long, String> failed = new TreeMap<>();
    private final List<Cursor> cursors = new CopyOnWriteArrayList<>();
    private long nextSeq = 1;

    /** One flusher's place in the failures: it has reported every failure below {@link #reportedBelow}. */
    static final class Cursor {
        private long reportedBelow;
        /** A link was lost after writes that no flush had covered, and this flusher has not said so yet. */
        private final java.util.concurrent.atomic.AtomicBoolean linkLost = new java.util.concurrent.atomic.AtomicBoolean();
    }

    /** A new flusher's cursor: its first flush reports every failure some other cursor has not reported yet. */
    Cursor newCursor() {
        Cursor c = new Cursor();
        synchronized (this) {
            c.reportedBelow = failed.isEmpty() ? 0 : failed.firstKey();
            cursors.add(c);
        }
        return c;
    }

    /** A link was lost after writes that no flush had covered: every cursor's next flush must fail. */
    void linkLost() {
        for (Cursor c : cursors) {
            c.linkLost.set(true);
        }
    }

    /** Whether a link was lost since {@code cursor} last said so (which it now does). */
    static boolean takeLinkLoss(Cursor cursor) {
        return cursor.linkLost.getAndSet(false);
    }

    /** Takes a place in the window (waiting while it is full) and registers the write; returns its sequence. */
    long begin(long start, long end) throws InterruptedIOException {
        try {
            window.acquire();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for a reply to an earlier write");
        }
        synchronized (this) {
            long seq = nextSeq++;
            inFlight.put(seq, new Entry(start, end));
            return seq;
        }
    }

    /** The write ended: answered ({@code failure} null), failed, or never sent (its caller got the error). */
    void end(long seq, String failure) {
        Entry e;
        synchronized (this) {
            e = inFlight.remove(seq);
            if (failure != null) {
                failed.put(seq, failure);
            }
        }
        if (e != null) {
            e.done.countDown();
            window.release();
        }
    }

    /** Waits until no write in flight overlaps {@code [start, end)}. */
    void awaitOverlapping(long start, long end) {
        while (true) {
            Entry wait = null;
            synchronized (this) {
                if (inFlight.isEmpty()) {
                    return;
                }
                for (Entry e : inFlight.values()) {
                    if (e.start < end && start < e.end) {
                        wait = e;
                        break;
                    }
                }
            }
            if (wait == null) {
                return;
            }
            io.pmcache.os.Uninterruptibly.await(wait.done);
        }
    }

    /** The sequence the next write will get: a flush that takes it covers every write before. */
    synchronized long mark() {
        return nextSeq;
    }

    /**
     * Waits for every write before {@code mark}; fails if any failure before it is new to
     * {@code cursor} (which then counts them reported).
     */
    void settle(long mark, Cursor cursor, String where) throws IOException {
        while (true) {
            Entry wait = null;
            synchronized (this) {
                Map.Entry<Long, Entry> first = inFlight.firstEntry();
                if (first != null && first.getKey() < mark) {
                    wait = first.getValue();
                }
            }
            if (wait == null) {
                break;
            }
            io.pmcache.os.Uninterruptibly.await(wait.done);
        }
        List<String> lost;
        synchronized (this) {
            lost = cursor.reportedBelow < mark ? new ArrayList<>(failed.subMap(cursor.reportedBelow, mark).values())
                    : List.of();
            cursor.reportedBelow = Math.max(cursor.reportedBelow, mark);
            long seen = Long.MAX_VALUE;
            for (Cursor c : cursors) {
                seen = Math.min(seen, c.reportedBelow);
            }
            failed.headMap(seen).clear(); // every cursor reported them
        }
        if (!lost.isEmpty()) {
            throw new IOException(where + ": flush failed: " + lost.size() + " earlier write"
                    + (lost.size() > 1 ? "s" : "") + " failed after returning (first: " + lost.getFirst()
                    + "); they must be written again");
        }
    }

    synchronized int inFlight() {
        return inFlight.size();
    }
}
