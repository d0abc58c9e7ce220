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
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The writes that returned before they completed ("write-behind"): an NBD remote's writes sent and
 * not yet answered ({@link NbdBackingDevice}), a file's direct writes submitted and not yet
 * completed ({@link DirectWriteBehind}). A write behind ({@code writeBehind}) returns once it is
 * on its way, so one caller (the cache's writeback is one thread) keeps many writes in flight to a
 * device whose latency would otherwise allow one write per round trip.
 *
 * <p>Rules that keep the device a disk:
 * <ul>
 *   <li>A remote or a disk may carry out requests in any order, so a request that overlaps a write
 *       in flight waits for that write's end before it is sent: reads see the writes made before
 *       them, and overlapping writes land in the order they were made.</li>
 *   <li>The device's own flush first waits for every write made before it; if one of them failed,
 *       the flush fails (reporting each failed write once), so the caller writes again what it
 *       cannot know landed — as a disk reports a lost cached write at the next flush. Writes made
 *       after the flush began keep their failure for a later flush. Only the writer that writes
 *       behind learns of these failures: it flushes with the device's own flush.</li>
 *   <li>A link lost after writes no flush covered fails the next flush of every flusher
 *       ({@link Cursor}): each flushes for writes that may have been dropped with it (NBD only).</li>
 *   <li>At most {@code window} writes are in flight; a further write waits for one to end. A
 *       remote's write ends within the connection's request timeout and fence, unless the server
 *       still holds it then (it is waited for: carried out late, it would land after newer
 *       writes; see {@link NbdBackingDevice}); a file's, when the disk completes it. Closing a
 *       device bounds its wait ({@link #settle(long, String, long)}).</li>
 * </ul>
 */
final class WritesInFlight {
    /** A remote's window: enough to keep a link busy, few enough for the server's own queue. */
    static final int NBD_WINDOW = 64;

    private static final class Entry {
        final long start;
        final long end;
        final CountDownLatch done = new CountDownLatch(1);

        Entry(long start, long end) {
            this.start = start;
            this.end = end;
        }
    }

    private final Semaphore window;
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

    WritesInFlight(int window) {
        this.window = new Semaphore(window);
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
        settle(mark, where, Long.MAX_VALUE);
    }

    /** {@link #settle(long, String)}, failing when the writes are not all done within {@code timeoutNanos}. */
    void settle(long mark, String where, long timeoutNanos) throws IOException {
        long deadline = System.nanoTime() + Math.min(timeoutNanos, Long.MAX_VALUE / 4);
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
            if (timeoutNanos == Long.MAX_VALUE) {
                io.pmcache.os.Uninterruptibly.await(wait.done);
            } else if (!awaitUntil(wait.done, deadline)) {
                throw new IOException(where + ": " + inFlight() + " write(s) still in flight after "
                        + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms");
            }
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

    /** The byte range of write {@code seq} in flight, for a message ("?" when it ended). */
    synchronized String rangeOf(long seq) {
        Entry e = inFlight.get(seq);
        return e == null ? "?" : "[" + e.start + ", " + e.end + ")";
    }

    /** Ends every write in flight with {@code failure} (their outcome can no longer be learned). */
    void endAll(String failure) {
        List<Long> seqs;
        synchronized (this) {
            seqs = new ArrayList<>(inFlight.keySet());
        }
        for (long seq : seqs) {
            end(seq, failure);
        }
    }

    /** Waits for {@code latch} until {@code deadline} (nanoTime), keeping an interrupt for the caller. */
    private static boolean awaitUntil(CountDownLatch latch, long deadline) {
        boolean interrupted = false;
        try {
            while (true) {
                try {
                    return latch.await(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    synchronized int inFlight() {
        return inFlight.size();
    }
}
