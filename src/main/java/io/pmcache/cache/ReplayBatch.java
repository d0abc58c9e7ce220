package io.pmcache.cache;

import io.pmcache.format.Layout;
import io.pmcache.index.Extent;
import io.pmcache.index.ExtentMap;
import io.pmcache.index.RangeIndex;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Replay's changes to the index, recorded in log order and applied range by range: the same
 * index as applying each change when it is recorded, built without a cache miss per key.
 *
 * <h2>Why</h2>
 * The key log interleaves the keys of every range; applied in log order, each key lands in a
 * different {@link ExtentMap}, whose directory and leaf are cold in the CPU cache (replay spent
 * three quarters of its time there). Changes of different ranges touch different maps and so
 * commute; only the order within a range matters.
 *
 * <h2>Steps, per batch of up to {@code capacity} changes</h2>
 * <ol>
 *   <li>Group the changes by range, keeping log order within a range (a counting sort over the
 *       ranges touched).</li>
 *   <li>Per range, when its run holds only inserts and, in start order, no two of them overlap
 *       except exact duplicates (same start and length): drop every duplicate but the newest and
 *       merge the rest into the map in one pass ({@link ExtentMap#insertSorted}). Inserts of
 *       pairwise disjoint extents commute (each replaces exactly its own bytes), so this is the
 *       log-order result.</li>
 *   <li>Otherwise (overlaps, or a {@link #forget}, whose effect depends on what is there) the
 *       run is applied in log order, as recorded.</li>
 * </ol>
 * Batches are applied in log order, one at a time, and {@link #flush} must run before anything
 * reads the index. With a background thread, a full batch is applied there while the walk fills
 * the next (walk and index building overlap: the walk never reads the index). A batch of
 * capacity 1 without a background thread applies each change when it is recorded: the plain
 * sequential replay.
 *
 * <h2>Cost</h2>
 * 64 bytes of heap per change the batch can hold (32 in log order, 32 grouped; the arrays grow
 * to {@code capacity}), plus one int per range of the device for the grouping. Grouping copies
 * each change once, so that a range's run is read sequentially, not scattered over the batch.
 */
final class ReplayBatch implements AutoCloseable {
    /** Changes per batch by default: 512 Ki, 32 MiB of heap at most. */
    static final int DEFAULT_CAPACITY = 1 << 19;
    /** Bits of a change's index in a sort key (below its offset in the range: 22 bits). */
    private static final int IDX_BITS = 24;
    private static final int MAX_CAPACITY = 1 << IDX_BITS;
    private static final int INITIAL = 1024;
    private static final long RANGE_MASK = Layout.RANGE_SIZE - 1;

    private static final int WORDS = 4;
    private static final byte DATA = 0;
    private static final byte ZERO = 1;
    private static final byte FORGET = 2;
    /** DATA, ZERO: the extent is dirty; FORGET: drop dirty extents too. */
    private static final byte FLAG = 4;

    private final RangeIndex index;
    private final int capacity;
    private int n;
    /** The changes in log order, {@value #WORDS} longs each (see {@link #put}). */
    private long[] log = new long[0];
    /** The log array of the batch in the background, reused once it is applied. */
    private long[] spare = new long[0];
    /** Applies batches while the walk goes on; null: here, at each hand-off. */
    private final ExecutorService applier;
    private Future<?> pending;
    /** The same, grouped by range in {@link #flush}. */
    private long[] grouped = new long[0];  // this and the fields below: the applying thread's
    /** Per range: changes counted, then where its run goes; all zero between flushes. */
    private int[] rangeSlots;
    private int[] touched = new int[0];
    private long[] sortKeys = new long[0];
    private final ExtentMap.SortedRun sorted = new ExtentMap.SortedRun();
    private long flushedRuns;
    private long batches;
    private long applyCpuNanos;
    private long fastRuns;

    /**
     * With {@code background}, a thread of its own applies each full batch while the walk fills the
     * next (the walk never reads the index, and batches are still applied in order, one at a time).
     */
    ReplayBatch(RangeIndex index, int capacity, boolean background) {
        if (capacity < 1 || capacity > MAX_CAPACITY) {
            throw new IllegalArgumentException("batch capacity " + capacity);
        }
        this.index = index;
        this.capacity = capacity;
        this.applier = background ? Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "pmcache-replay-index");
            t.setDaemon(true);
            return t;
        }) : null;
    }

    /** {@link ExtentMap#insertData} of this extent into its range. */
    void data(long start, int length, int segment, int segmentOffset, long generation, boolean dirty) {
        put(start, length, segment, segmentOffset, generation, (byte) (DATA | (dirty ? FLAG : 0)));
    }

    /** {@link ExtentMap#insertZero} of this extent into its range. */
    void zero(long start, int length, boolean dirty) {
        put(start, length, 0, 0, 0, (byte) (ZERO | (dirty ? FLAG : 0)));
    }

    /**
     * Removes {@code [from, from + length)} from the extents of {@code from}'s range that are
     * clean, or from every extent there when {@code all}; what lies outside stays.
     */
    void forget(long from, int length, boolean all) {
        put(from, length, 0, 0, 0, (byte) (FORGET | (all ? FLAG : 0)));
    }

    /**
     * A change as {@value #WORDS} longs: start | generation | length (high 32), segment (low 32) |
     * segment offset (bits 8..39), op (bits 0..7).
     */
    private void put(long start, int length, int segment, int segmentOffset, long generation, byte op) {
        if (n * WORDS == log.length) {
            log = Arrays.copyOf(log, Math.min(capacity, Math.max(INITIAL, 2 * n)) * WORDS);
        }
        int w = n * WORDS;
        log[w] = start;
        log[w + 1] = generation;
        log[w + 2] = (long) length << 32 | (segment & 0xffffffffL);
        log[w + 3] = (segmentOffset & 0xffffffffL) << 8 | (op & 0xff);
        if (++n == capacity) {
            handOff();
        }
    }

    private static long start(long[] a, int i) {
        return a[i * WORDS];
    }

    private static int length(long[] a, int i) {
        return (int) (a[i * WORDS + 2] >>> 32);
    }

    private static int op(long[] a, int i) {
        return (int) (a[i * WORDS + 3] & 0xff);
    }

    /**
     * Applies every change recorded so far (waiting for the batch in the background, if any);
     * the index is then complete and the batch empty.
     */
    void flush() {
        handOff();
        awaitApplied();
    }

    /**
     * Starts applying the changes recorded so far, in the background when there is a background
     * thread (after the batch before has been applied: at most one is in flight), else here.
     */
    private void handOff() {
        if (n == 0) {
            return;
        }
        if (applier == null) {
            applyBatch(log, n);
            n = 0;
            return;
        }
        awaitApplied();
        long[] full = log;
        int count = n;
        log = spare;
        spare = full;                                       // free again once this batch is applied
        n = 0;
        pending = applier.submit(() -> applyBatch(full, count));
    }

    private void awaitApplied() {
        if (pending == null) {
            return;
        }
        Future<?> p = pending;
        pending = null;
        try {
            p.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            if (e.getCause() instanceof Error err) {
                throw err;
            }
            throw new IllegalStateException(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while replay built the index", e);
        }
    }

    /** Stops the background thread (after {@link #flush}, or when replay failed). */
    @Override
    public void close() {
        if (applier != null) {
            applier.shutdownNow();
        }
    }

    /** Applies {@code log[0, n)}: grouped by range, each range's run as the class comment says. */
    private void applyBatch(long[] log, int n) {
        long cpu0 = THREADS.getCurrentThreadCpuTime();
        applyGrouped(log, n);
        applyCpuNanos += THREADS.getCurrentThreadCpuTime() - cpu0;
        batches++;
    }

    private static final java.lang.management.ThreadMXBean THREADS =
            java.lang.management.ManagementFactory.getThreadMXBean();

    private void applyGrouped(long[] log, int n) {
        if (n == 1) {
            apply(index.rangeFor(log[0]), log, 0);
            return;
        }
        if (grouped.length < n * WORDS) {
            grouped = new long[n * WORDS];
            touched = new int[n];
            sortKeys = new long[n];
        }
        if (rangeSlots == null) {
            rangeSlots = new int[index.rangeCount()];
        }
        int[] slots = rangeSlots;
        int nt = 0;
        for (int i = 0; i < n; i++) {
            int r = RangeIndex.rangeOf(start(log, i));
            if (slots[r]++ == 0) {
                touched[nt++] = r;
            }
        }
        int pos = 0;
        for (int t = 0; t < nt; t++) {
            int r = touched[t];
            int c = slots[r];
            slots[r] = pos;
            pos += c;
        }
        for (int i = 0; i < n; i++) {                       // stable: log order within a range
            int to = slots[RangeIndex.rangeOf(start(log, i))]++;
            System.arraycopy(log, i * WORDS, grouped, to * WORDS, WORDS);
        }
        int begin = 0;
        for (int t = 0; t < nt; t++) {
            int r = touched[t];
            int end = slots[r];
            slots[r] = 0;
            applyRun(index.range(r), begin, end);
            begin = end;
        }
        flushedRuns += nt;
    }

    /** Applies the changes {@code grouped[begin, end)} of one range. */
    private void applyRun(ExtentMap map, int begin, int end) {
        long[] g = grouped;
        boolean ascending = true;
        long prev = Long.MIN_VALUE;
        for (int k = begin; k < end; k++) {
            if ((op(g, k) & ~FLAG) == FORGET) {
                inLogOrder(map, begin, end);
                return;
            }
            long s = start(g, k);
            ascending &= s >= prev;
            prev = s;
        }
        long[] keys = sortKeys;
        for (int k = begin; k < end; k++) {
            keys[k] = (start(g, k) & RANGE_MASK) << IDX_BITS | k;
        }
        if (!ascending) {
            Arrays.sort(keys, begin, end);                   // by start, then log order
        }
        long idxMask = (1L << IDX_BITS) - 1;
        for (int k = begin; k + 1 < end; k++) {
            int i = (int) (keys[k] & idxMask);
            int j = (int) (keys[k + 1] & idxMask);
            boolean duplicate = start(g, i) == start(g, j) && length(g, i) == length(g, j);
            if (!duplicate && start(g, i) + length(g, i) > start(g, j)) {
                inLogOrder(map, begin, end);
                return;
            }
        }
        ExtentMap.SortedRun sorted = this.sorted;
        sorted.clear();
        for (int k = begin; k < end; k++) {
            int i = (int) (keys[k] & idxMask);
            if (k + 1 < end) {
                int j = (int) (keys[k + 1] & idxMask);
                if (start(g, i) == start(g, j) && length(g, i) == length(g, j)) {
                    continue;                               // a newer duplicate follows: it wins
                }
            }
            int w = i * WORDS;
            if ((op(g, i) & ~FLAG) == DATA) {
                sorted.addData(g[w], length(g, i), (int) g[w + 2], (int) (g[w + 3] >>> 8), g[w + 1],
                        (op(g, i) & FLAG) != 0);
            } else {
                sorted.addZero(g[w], length(g, i), (op(g, i) & FLAG) != 0);
            }
        }
        map.insertSorted(sorted);
        fastRuns++;
    }

    private void inLogOrder(ExtentMap map, int begin, int end) {
        for (int k = begin; k < end; k++) {
            apply(map, grouped, k);
        }
    }

    private static void apply(ExtentMap map, long[] a, int i) {
        int w = i * WORDS;
        long start = a[w];
        int length = (int) (a[w + 2] >>> 32);
        int op = (int) (a[w + 3] & 0xff);
        boolean flag = (op & FLAG) != 0;
        switch (op & ~FLAG) {
            case DATA -> map.insertData(start, length, (int) a[w + 2], (int) (a[w + 3] >>> 8), a[w + 1], flag);
            case ZERO -> map.insertZero(start, length, flag);
            default -> forgetIn(map, start, start + length, flag);
        }
    }

    private static void forgetIn(ExtentMap map, long from, long to, boolean all) {
        List<Extent> doomed = new ArrayList<>();
        map.forEachOverlapping(from, to, x -> {
            if (all || !x.dirty()) {
                doomed.add(x);
            }
        });
        for (Extent x : doomed) {
            long a = Math.max(x.start(), from);
            long b = Math.min(x.end(), to);
            Extent hole = Extent.placeholder(a, (int) (b - a), 0);
            map.insert(hole, null);
            map.removeExact(hole);
        }
    }

    /** Batches applied so far, and the CPU time their application took (logs; -1 where unsupported). */
    long batches() {
        return batches;
    }

    long applyCpuNanos() {
        return applyCpuNanos;
    }

    /** Runs applied so far, and how many of them took the sorted fast path (tests, logs). */
    long runs() {
        return flushedRuns;
    }

    long fastRuns() {
        return fastRuns;
    }
}
