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
 * <h2>Steps, per batch (the first of up to {@code capacity} changes, each next one of twice as
 * many as the one before, up to {@code maxCapacity})</h2>
 * <ol>
 *   <li>Group the changes by range, keeping log order within a range (a counting sort over the
 *       ranges touched).</li>
 *   <li>Per range, when its run holds only inserts, sort it by start (a stable LSD radix sort
 *       over the bits in which the starts differ: log order among equal starts); when, in start
 *       order, no two of them overlap except exact duplicates (same start and length): drop
 *       every duplicate but the newest and
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
 * sequential replay. With more than one CPU, a large batch's range runs are split in two at the
 * middle change and the second part applied by a helper thread meanwhile (different ranges:
 * different maps, different parts of the scratch arrays); the batch is done when both are.
 *
 * <h2>Cost</h2>
 * 96 bytes of heap per change the batch can hold (32 in log order for the walk, 32 for the batch
 * being applied, 32 grouped; the arrays grow to the batch size), plus one int per range of the
 * device for the grouping. Grouping copies each change once, so that a range's run is read
 * sequentially, not scattered over the batch. Every batch merges into each range's map again,
 * touching (and, where it adds, rewriting) the leaves of all the ranges it changes: with batches
 * of a fixed size, building the index of a log of N keys costs N / batch passes over a growing
 * index (at 10 M random keys and 512 Ki changes per batch, 20 passes, three quarters of the index
 * threads' CPU in {@link ExtentMap#insertSorted}). Doubling the batches makes that O(log N)
 * passes; {@link #maxCapacityForHeap} bounds the largest by the heap. Small logs keep small
 * batches, so the walk and the index building still overlap from the first batch on.
 */
final class ReplayBatch implements AutoCloseable {
    /** Changes in the first batch by default: 512 Ki, 48 MiB of heap at most (see Cost). */
    static final int DEFAULT_CAPACITY = 1 << 19;
    /**
     * Bytes of heap per change a batch can hold, the background's included: three arrays of
     * {@value #WORDS} longs (the walk's, the applying thread's, the grouped copy).
     */
    private static final int BYTES_PER_CHANGE = 3 * 8 * 4;
    /** Bits of a change's index in a sort key (below its offset in the range: 22 bits). */
    private static final int IDX_BITS = 24;
    private static final int MAX_CAPACITY = 1 << IDX_BITS;
    private static final int INITIAL = 1024;
    /**
     * A batch of at least this many changes (or half the capacity, when that is less: small
     * capacities are the tests') shares its ranges' runs with the helper thread.
     */
    private static final int HELPER_MIN = 1 << 14;
    private final int helperMin;
    private static final long RANGE_MASK = Layout.RANGE_SIZE - 1;

    private static final int WORDS = 4;
    private static final byte DATA = 0;
    private static final byte ZERO = 1;
    private static final byte FORGET = 2;
    /** DATA, ZERO: the extent is dirty; FORGET: drop dirty extents too. */
    private static final byte FLAG = 4;

    private final RangeIndex index;
    /** Changes in the batch being filled; doubles after each full batch up to {@link #maxCapacity}. */
    private int capacity;
    private final int maxCapacity;
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
    /** Where each touched range's run ends in {@code grouped}; this and touched: one per range touched. */
    private int[] runEnds = new int[0];
    /** The applying thread's, and the helper's, which takes part of a large batch's runs. */
    private final RunApplier mine = new RunApplier();
    private final RunApplier helpers = new RunApplier();
    /** Applies part of a large batch's runs beside the applying thread; null: none. */
    private final ExecutorService helper;
    private long flushedRuns;
    private long batches;
    private long applyCpuNanos;
    private long helperCpuNanos;

    /** Batches of {@code capacity} changes each; see the other constructor. */
    ReplayBatch(RangeIndex index, int capacity, boolean background) {
        this(index, capacity, capacity, background);
    }

    /**
     * The first batch holds {@code capacity} changes, each next one twice as many as the one
     * before, up to {@code maxCapacity}. With {@code background}, a thread of its own applies each
     * full batch while the walk fills the next (the walk never reads the index, and batches are
     * still applied in order, one at a time).
     */
    ReplayBatch(RangeIndex index, int capacity, int maxCapacity, boolean background) {
        if (capacity < 1 || maxCapacity < capacity || maxCapacity > MAX_CAPACITY) {
            throw new IllegalArgumentException("batch capacity " + capacity + " up to " + maxCapacity);
        }
        this.index = index;
        this.capacity = capacity;
        this.maxCapacity = maxCapacity;
        this.helperMin = Math.min(HELPER_MIN, Math.max(2, capacity / 2));
        this.applier = background ? Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "pmcache-replay-index");
            t.setDaemon(true);
            return t;
        }) : null;
        this.helper = background && Runtime.getRuntime().availableProcessors() > 1
                ? Executors.newSingleThreadExecutor(r -> {
                    Thread t = new Thread(r, "pmcache-replay-index-2");
                    t.setDaemon(true);
                    return t;
                }) : null;
    }

    /**
     * The largest batch for a replay in this JVM: a sixteenth of the maximum heap (at
     * {@value #BYTES_PER_CHANGE} bytes per change), a power of two from {@link #DEFAULT_CAPACITY}
     * to 4 Mi changes (384 MiB, from a 6 GiB heap up).
     */
    static int maxCapacityForHeap(long maxHeapBytes) {
        long fits = maxHeapBytes / 16 / BYTES_PER_CHANGE;
        return (int) Math.max(DEFAULT_CAPACITY, Math.min(1 << 22, Long.highestOneBit(Math.max(1, fits))));
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
            capacity = Math.min(maxCapacity, 2 * capacity);
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
        await(p);
    }

    private static void await(Future<?> p) {
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
        if (helper != null) {
            helper.shutdownNow();
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
        }
        if (touched.length < Math.min(n, index.rangeCount())) {
            touched = new int[Math.min(n, index.rangeCount())];
            runEnds = new int[touched.length];
        }
        if (rangeSlots == null) {
            rangeSlots = new int[index.rangeCount()];
        }
        int nt = countByRange(log, n);
        runStarts(nt);
        scatter(log, n);
        int split = runEnds(nt, n);                         // runs [split, nt) go to the helper
        int splitBegin = split < nt ? runEnds[split - 1] : n;
        Future<?> helped = null;
        if (split < nt) {
            int from = split;
            int to = nt;
            int begin = splitBegin;
            helped = helper.submit(() -> {
                long cpu0 = THREADS.getCurrentThreadCpuTime();
                helpers.applyRuns(from, to, begin);
                helperCpuNanos += THREADS.getCurrentThreadCpuTime() - cpu0;  // read after the future's get
            });
        }
        try {
            mine.applyRuns(0, split, 0);
        } finally {
            if (helped != null) {
                await(helped);
            }
        }
        flushedRuns += nt;
    }

    // The grouping's loops are methods of their own (as are the run's steps below): a cold JVM
    // compiles a hot loop on the stack (OSR) together with the rest of its method, so one loop per
    // method keeps those compiles small (applyGrouped with its loops inline: ~220 ms of C2 time).

    /** Counts the changes of each range into rangeSlots; returns the ranges touched, listed in touched. */
    private int countByRange(long[] log, int n) {
        int[] slots = rangeSlots;
        int[] touched = this.touched;
        int nt = 0;
        for (int i = 0; i < n; i++) {
            int r = RangeIndex.rangeOf(start(log, i));
            if (slots[r]++ == 0) {
                touched[nt++] = r;
            }
        }
        return nt;
    }

    /** Turns the counts of the touched ranges into where their runs start in grouped. */
    private void runStarts(int nt) {
        int[] slots = rangeSlots;
        int pos = 0;
        for (int t = 0; t < nt; t++) {
            int r = touched[t];
            int c = slots[r];
            slots[r] = pos;
            pos += c;
        }
    }

    /** Copies each change to its range's run in grouped; stable: log order within a range. */
    private void scatter(long[] log, int n) {
        int[] slots = rangeSlots;
        long[] g = grouped;
        for (int i = 0, w = 0; i < n; i++, w += WORDS) {
            int to = slots[RangeIndex.rangeOf(log[w])]++ * WORDS;
            g[to] = log[w];
            g[to + 1] = log[w + 1];
            g[to + 2] = log[w + 2];
            g[to + 3] = log[w + 3];
        }
    }

    /**
     * Sets runEnds, zeroes rangeSlots again; returns the first run the helper takes (the one after
     * the run that reaches the middle change of a large batch), or nt when it takes none.
     */
    private int runEnds(int nt, int n) {
        int[] slots = rangeSlots;
        int split = nt;
        for (int t = 0; t < nt; t++) {
            int r = touched[t];
            runEnds[t] = slots[r];
            slots[r] = 0;
            if (split == nt && helper != null && n >= helperMin && runEnds[t] >= n / 2 && t + 1 < nt) {
                split = t + 1;
            }
        }
        return split;
    }

    /**
     * Applies range runs of the grouped batch; each applying thread has its own (scratch, counts).
     * Different runs touch different ranges' maps.
     */
    private final class RunApplier {
        private final ExtentMap.SortedRun sorted = new ExtentMap.SortedRun();
        /** Sort keys of the run being applied (start in the range above its position in grouped). */
        private long[] keys = new long[64];
        private long fastRuns;

        /** Applies the runs of {@code touched[fromRun, toRun)}, the first starting at {@code begin}. */
        private void applyRuns(int fromRun, int toRun, int begin) {
            for (int t = fromRun; t < toRun; t++) {
                int end = runEnds[t];
                applyRun(index.range(touched[t]), begin, end);
                begin = end;
            }
        }

        /** Applies the changes {@code grouped[begin, end)} of one range. */
        private void applyRun(ExtentMap map, int begin, int end) {
            int len = end - begin;
            if (keys.length < len) {
                keys = new long[Math.max(len, 2 * keys.length)];
            }
            long bits = sortKeys(begin, end);
            if (bits == HAS_FORGET) {
                inLogOrder(map, begin, end);
                return;
            }
            if ((bits & UNSORTED) != 0) {
                radixSort(keys, 0, len, bits & RANGE_MASK);     // by start, then log order
            }
            if (overlaps(len)) {
                inLogOrder(map, begin, end);
                return;
            }
            addSorted(len);
            map.insertSorted(sorted);
            fastRuns++;
        }

        /** {@link #sortKeys}: the run holds a forget. */
        private static final long HAS_FORGET = -1;
        /** {@link #sortKeys}: the starts do not ascend in log order. */
        private static final long UNSORTED = 1L << 62;

        /**
         * Fills keys[0, end - begin) with the sort keys of {@code grouped[begin, end)}; returns the
         * OR of their starts' offsets in the range, plus {@link #UNSORTED} when those do not
         * ascend, or {@link #HAS_FORGET} (and the keys unfinished) when a change is a forget.
         */
        private long sortKeys(int begin, int end) {
            long[] g = grouped;
            long[] keys = this.keys;
            boolean ascending = true;
            long prev = Long.MIN_VALUE;
            long bits = 0;
            for (int k = begin; k < end; k++) {
                if ((op(g, k) & ~FLAG) == FORGET) {
                    return HAS_FORGET;
                }
                long s = start(g, k);
                ascending &= s >= prev;
                prev = s;
                bits |= s & RANGE_MASK;
                keys[k - begin] = (s & RANGE_MASK) << IDX_BITS | k;
            }
            return ascending ? bits : bits | UNSORTED;
        }

        /** Whether two of the sorted keys[0, len) overlap other than as exact duplicates (same start and length). */
        private boolean overlaps(int len) {
            long[] g = grouped;
            long[] keys = this.keys;
            long idxMask = (1L << IDX_BITS) - 1;
            for (int k = 0; k + 1 < len; k++) {
                int i = (int) (keys[k] & idxMask);
                int j = (int) (keys[k + 1] & idxMask);
                boolean duplicate = start(g, i) == start(g, j) && length(g, i) == length(g, j);
                if (!duplicate && start(g, i) + length(g, i) > start(g, j)) {
                    return true;
                }
            }
            return false;
        }

        /** Fills {@link #sorted} from keys[0, len): every change but those a newer duplicate follows. */
        private void addSorted(int len) {
            long[] g = grouped;
            long[] keys = this.keys;
            long idxMask = (1L << IDX_BITS) - 1;
            ExtentMap.SortedRun sorted = this.sorted;
            sorted.clear();
            for (int k = 0; k < len; k++) {
                int i = (int) (keys[k] & idxMask);
                if (k + 1 < len) {
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
        }

        /** Digit of {@link #radixSort}: at most this many bits of the start per pass. */
        private static final int DIGIT_BITS = 8;
        private final int[] digitCounts = new int[1 << DIGIT_BITS];
        private long[] radixSpare = new long[0];

        /**
         * Sorts {@code keys[begin, end)} (start in the range above {@link #IDX_BITS} bits of log
         * position) by start, stably, so equal starts keep log order: an LSD radix sort over the bits in
         * which the starts differ ({@code bits}, their OR: 4 KiB-aligned starts sort in two passes).
         * Used instead of {@code Arrays.sort}: no comparisons, and far less for the JIT to compile
         * while a cold replay runs.
         */
        private void radixSort(long[] keys, int begin, int end, long bits) {
            int n = end - begin;
            if (radixSpare.length < n) {
                radixSpare = new long[Math.max(n, 2 * radixSpare.length)];
            }
            long[] from = keys;
            int fromOff = begin;
            long[] to = radixSpare;
            int toOff = 0;
            int[] count = digitCounts;
            int lo = Long.numberOfTrailingZeros(bits);
            int hi = 64 - Long.numberOfLeadingZeros(bits);
            for (int shift = lo; shift < hi; shift += DIGIT_BITS) {
                int width = Math.min(DIGIT_BITS, hi - shift);
                int mask = (1 << width) - 1;
                int sh = shift + IDX_BITS;
                Arrays.fill(count, 0, mask + 1, 0);
                for (int i = 0; i < n; i++) {
                    count[(int) (from[fromOff + i] >>> sh) & mask]++;
                }
                for (int d = 0, sum = 0; d <= mask; d++) {
                    int c = count[d];
                    count[d] = sum;
                    sum += c;
                }
                for (int i = 0; i < n; i++) {
                    long x = from[fromOff + i];
                    to[toOff + count[(int) (x >>> sh) & mask]++] = x;
                }
                long[] t = from;
                int tOff = fromOff;
                from = to;
                fromOff = toOff;
                to = t;
                toOff = tOff;
            }
            if (from != keys) {
                System.arraycopy(from, fromOff, keys, begin, n);
            }
        }

        private void inLogOrder(ExtentMap map, int begin, int end) {
            for (int k = begin; k < end; k++) {
                apply(map, grouped, k);
            }
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
        return applyCpuNanos + helperCpuNanos;
    }

    /** Runs applied so far, and how many of them took the sorted fast path (tests, logs). */
    long runs() {
        return flushedRuns;
    }

    long fastRuns() {
        return mine.fastRuns + helpers.fastRuns;
    }
}
