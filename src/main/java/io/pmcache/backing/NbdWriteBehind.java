package io.pmcache.backing;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The writes sent but not yet answered ("write-behind"). A write behind ({@code writeBehind})
 * returns once its bytes are on the socket, so one caller (the cache's writeback is one thread)
 * keeps many writes in flight to a remote whose latency would otherwise allow one write per round
 * trip.
 *
 * <p>Rules that keep the device a disk:
 * <ul>
 *   <li>NBD may carry out requests in any order, so a request that overlaps a write in flight waits
 *       for that write's reply before it is sent: reads see the writes made before them, and
 *       overlapping writes land in the order they were made.</li>
 *   <li>The device's own flush first waits for every write made before it; if one of them failed,
 *       the flush fails (reporting each failed write once), so the caller writes again what it
 *       cannot know landed — as a disk reports a lost cached write at the next flush. Writes made
 *       after the flush began keep their failure for a later flush. Only the writer that writes
 *       behind learns of these failures: it flushes with the device's own flush.</li>
 *   <li>A link lost after writes no flush covered fails the next flush of every flusher
 *       ({@link Cursor}): each flushes for writes that may have been dropped with it.</li>
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
    /** Failed writes not yet reported by a flush, by sequence; guarded by this. */
    private final TreeMap<Long, String> failed = new TreeMap<>();
    private long nextSeq = 1;
    private final List<Cursor> cursors = new CopyOnWriteArrayList<>();

    /** One flusher: whether a link was lost since it last said so. */
    static final class Cursor {
        private final AtomicBoolean linkLost = new AtomicBoolean();
    }

    /** A new flusher's cursor (its flushes report the links lost from now on). */
    Cursor newCursor() {
        Cursor c = new Cursor();
        cursors.add(c);
        return c;
    }

    /** Forgets a closed flusher's cursor. */
    void dropCursor(Cursor c) {
        cursors.remove(c);
    }

    /** Number of flushers' cursors (tests). */
    int cursorCount() {
        return cursors.size();
    }

    /** A link was lost after writes that no flush had covered: every flusher's next flush must fail. */
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

    /** Waits for every write before {@code mark}; fails, and forgets them, if any of those failed. */
    void settle(long mark, String where) throws IOException {
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
            var head = failed.headMap(mark);
            lost = new ArrayList<>(head.values());
            head.clear();
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
