package io.pmcache.index;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import java.util.function.Predicate;

/**
 * The extents of one 4 MiB range: an ordered set of non-overlapping extents, kept in primitive
 * arrays. Callers hold {@link #lock()} around every call.
 *
 * <h2>Inserting a new extent N = [s, e): the six cases of an existing extent K = [ks, ke)</h2>
 * <pre>
 *  before      K: |----|                 ke &lt;= s      untouched
 *              N:        |=====|
 *  after       K:              |----|    ks &gt;= e      untouched
 *              N: |=====|
 *  head        K: |--------|             ks &lt; s &lt; ke &lt;= e   cut K's back to [ks, s)
 *              N:     |========|
 *  tail        K:      |--------|        s &lt;= ks &lt; e &lt; ke   cut K's front to [e, ke)
 *              N: |========|
 *  contain     K:   |----|               s &lt;= ks, ke &lt;= e    delete K
 *              N: |========|
 *  contained   K: |------------|         ks &lt; s, e &lt; ke     split K into [ks, s) and [e, ke)
 *              N:    |=====|
 * </pre>
 * After the fix-ups, N goes in: the newest write always wins, and the map stays non-overlapping.
 * The extents N overlaps are one run in start order: at most its first is cut at the back
 * (head / left part of contained) and at most its last at the front (tail / right part), every
 * other one is deleted. So an insert replaces a run of r extents by 1 to 3 entries.
 *
 * <h2>Layout: three longs per extent, in leaves of at most {@value #LEAF_MAX}</h2>
 * <pre>
 *  directory   firsts[l]  start of leaf l's first extent (binary-searched)
 *              leaves[l]  long[3 * cap]:  [ start x cap | word1 x cap | word2 x cap ]
 *              counts[l]  extents in leaf l (1..cap); cap is a power of two, 2 to 64
 *
 *  word1   63   62 61  60 ........................ 30  29 ............... 0
 *         | kind  |dirty|  length (31 bits)            | segment offset (30)  |
 *  word2   DATA:        segment (31 bits, 63..33) | generation (33 bits, 32..0)
 *          PLACEHOLDER: fill id;   ZERO, OVERFLOW: 0
 * </pre>
 * kind 0 DATA, 1 ZERO, 2 PLACEHOLDER, 3 OVERFLOW. An extent whose fields do not fit (a
 * generation of 2^33 or more, a segment offset past 1 GiB, a negative value, or a ZERO or
 * PLACEHOLDER with fields its factory never sets) is stored whole in {@link #overflow}, keyed by
 * its start, and its entry says OVERFLOW (start and length still in the arrays). Such extents
 * come only from damaged or forged media; a valid cache never makes one (segments are at most
 * 1 GiB, and a generation grows by one per reclaim). The encoding is exact: what
 * {@link #snapshot()} returns equals what was inserted, cut as the overlap rules say.
 *
 * <h2>Invariants</h2>
 * <ul>
 *   <li>Starts strictly increase across leaves in directory order; extent i ends at or before
 *       extent i + 1 starts (non-overlapping).</li>
 *   <li>No leaf is empty; {@code firsts[l] == leaves[l][0]}; {@code size} is the sum of counts.</li>
 *   <li>{@link #overflow} holds exactly the starts of the OVERFLOW entries.</li>
 * </ul>
 * A full leaf first shares with a neighbour that has room (half of that room); only when both
 * neighbours are (nearly) full does it split in half. An insert at a full leaf's end (or front)
 * goes to the neighbour when it has room, or to a new leaf of its own, so that ascending (or
 * descending) fills leave full leaves behind. A leaf left at a quarter of its capacity or less
 * shrinks, and merges with a neighbour when both fit in half a leaf.
 *
 * <h2>Cost</h2>
 * 24 bytes per extent in the leaves, plus the unused tail of each leaf (about 80 % of a leaf
 * is used under random inserts, all of it under ascending ones) and, per leaf of up to 64
 * extents, 16 bytes of array header and 16 of directory: measured, 30.5 bytes of heap per 4 KiB
 * extent inserted in random order, 25.2 in ascending order (bench/index-footprint.sh; the
 * TreeMap of Extent records this replaced cost 120). An insert is two binary searches
 * (directory, leaf) and an {@code arraycopy} of at most 64 entries; {@link #insertData},
 * {@link #insertZero} and {@link #findCovering} allocate nothing unless a leaf is created,
 * resized or split. A map holding one extent costs ~290 bytes (object, lock, directory, a leaf of
 * two slots), more than a TreeMap with one entry: the layout pays off from a few extents per range.
 */
public final class ExtentMap {
    static final int LEAF_MAX = 64;
    static final int LEAF_MIN = 2;

    private static final int DATA = 0;
    private static final int ZERO = 1;
    private static final int PLACEHOLDER = 2;
    private static final int OVERFLOW = 3;
    private static final long MASK30 = (1L << 30) - 1;
    private static final long MASK31 = (1L << 31) - 1;
    private static final long MASK33 = (1L << 33) - 1;
    private static final long DIRTY = 1L << 61;

    private final ReentrantLock lock = new ReentrantLock();
    private long[] firsts = new long[1];
    private long[][] leaves = new long[1][];
    private int[] counts = new int[1];
    private int nLeaves;
    private int size;
    /**
     * An upper bound on (1 + the kset sequence) of the newest dirty key logged for this range;
     * 0 when none was. Guarded by the lock; kept by the engine (the map itself never reads it).
     */
    private long dirtyKsetBound;
    /** Extents that do not fit the packed words, by start; null until the first one. */
    private HashMap<Long, Extent> overflow;

    // Scratch, valid under the lock: the result of encode(), of locate() and of insertAt().
    private long encW1;
    private long encW2;
    private int posLeaf;
    private int posIdx;
    private long encStart;
    private Extent encObj;

    public ReentrantLock lock() {
        return lock;
    }

    /** See {@link #dirtyKsetBound}. Caller holds the lock. */
    public long dirtyKsetBound() {
        return dirtyKsetBound;
    }

    /** Raises {@link #dirtyKsetBound} to {@code bound} (never lowers it). Caller holds the lock. */
    public void noteDirtyKset(long bound) {
        if (bound > dirtyKsetBound) {
            dirtyKsetBound = bound;
        }
    }

    public boolean isEmpty() {
        return size == 0;
    }

    public int size() {
        return size;
    }

    // ---------------------------------------------------------------- encoding

    private static int kind(long w1) {
        return (int) (w1 >>> 62);
    }

    private static int len(long w1) {
        return (int) ((w1 >>> 30) & MASK31);
    }

    private static long withLen(long w1, int length) {
        return (w1 & ~(MASK31 << 30)) | ((long) length << 30);
    }

    /** Sets {@link #encW1}/{@link #encW2}; false when {@code x} must be stored whole (OVERFLOW). */
    private boolean encode(Extent x) {
        long w1 = (long) x.length() << 30 | (x.dirty() ? DIRTY : 0);
        switch (x.kind()) {
            case DATA -> {
                if (x.segment() >= 0 && x.segmentOffset() >= 0 && (long) x.segmentOffset() + x.length() <= 1L << 30
                        && x.generation() >= 0 && x.generation() <= MASK33 && x.fillId() == 0) {
                    encW1 = w1 | x.segmentOffset();
                    encW2 = (long) x.segment() << 33 | x.generation();
                    return true;
                }
            }
            case ZERO -> {
                if (x.segment() == -1 && x.segmentOffset() == 0 && x.generation() == 0 && x.fillId() == 0) {
                    encW1 = w1 | (long) ZERO << 62;
                    encW2 = 0;
                    return true;
                }
            }
            case PLACEHOLDER -> {
                if (x.segment() == -1 && x.segmentOffset() == 0 && x.generation() == 0 && x.fillId() >= 0) {
                    encW1 = w1 | (long) PLACEHOLDER << 62;
                    encW2 = x.fillId();
                    return true;
                }
            }
        }
        encW1 = (long) OVERFLOW << 62 | (long) x.length() << 30;
        encW2 = 0;
        return false;
    }

    private Extent decode(long start, long w1, long w2) {
        int length = len(w1);
        boolean dirty = (w1 & DIRTY) != 0;
        return switch (kind(w1)) {
            case DATA -> new Extent(start, length, Extent.Kind.DATA, (int) (w2 >>> 33), (int) (w1 & MASK30),
                    w2 & MASK33, dirty, 0);
            case ZERO -> new Extent(start, length, Extent.Kind.ZERO, -1, 0, 0, dirty, 0);
            case PLACEHOLDER -> new Extent(start, length, Extent.Kind.PLACEHOLDER, -1, 0, 0, dirty, w2);
            default -> overflow.get(start);
        };
    }

    private Extent decodeAt(int l, int i) {
        long[] leaf = leaves[l];
        int cap = leaf.length / 3;
        return decode(leaf[i], leaf[cap + i], leaf[2 * cap + i]);
    }

    /** Sets encStart/encW1/encW2/encObj to the entry {@code (start, w1, w2)} without its first {@code d} bytes. */
    private void cutFront(long start, long w1, long w2, int d) {
        if (kind(w1) == OVERFLOW) {
            encodeWhole(overflow.get(start).cutFront(d));
            return;
        }
        long nw1 = withLen(w1, len(w1) - d);
        if (kind(w1) == DATA) {
            nw1 += d;                                       // segment offset + d < 2^30: no carry
        }
        encStart = start + d;
        encW1 = nw1;
        encW2 = w2;
        encObj = null;
    }

    /** Sets encStart/encW1/encW2/encObj to the entry {@code (start, w1, w2)} cut to {@code length} bytes. */
    private void cutBack(long start, long w1, long w2, int length) {
        if (kind(w1) == OVERFLOW) {
            Extent x = overflow.get(start);
            encodeWhole(x.cutBack(x.length() - length));
            return;
        }
        encStart = start;
        encW1 = withLen(w1, length);
        encW2 = w2;
        encObj = null;
    }

    private void encodeWhole(Extent x) {
        boolean packed = encode(x);
        encStart = x.start();
        encObj = packed ? null : x;
    }

    // ---------------------------------------------------------------- search

    /** The last leaf whose first start is at or before {@code key}; 0 when none is. Needs nLeaves > 0. */
    private int findLeaf(long key) {
        int lo = 1;
        int hi = nLeaves - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (firsts[mid] <= key) {
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return lo - 1;
    }

    /** The last index in {@code leaf} whose start is at or before {@code key}; -1 when none is. */
    private static int floorIn(long[] leaf, int count, long key) {
        int lo = 0;
        int hi = count - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (leaf[mid] <= key) {
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return lo - 1;
    }

    /**
     * Sets {@link #posLeaf}/{@link #posIdx} to the first extent that ends after {@code key} (the
     * floor extent when it reaches past key, else its successor); posIdx == counts[posLeaf] when
     * there is none. Needs nLeaves > 0.
     */
    private void locate(long key) {
        int l = findLeaf(key);
        long[] leaf = leaves[l];
        int c = counts[l];
        int i = floorIn(leaf, c, key);
        if (i < 0 || leaf[i] + len(leaf[leaf.length / 3 + i]) <= key) {
            i++;
            if (i == c && l + 1 < nLeaves) {
                l++;
                i = 0;
            }
        }
        posLeaf = l;
        posIdx = i;
    }

    // ---------------------------------------------------------------- leaf and directory edits

    private void writeAt(int l, int i, long start, long w1, long w2, Extent obj) {
        long[] leaf = leaves[l];
        int cap = leaf.length / 3;
        leaf[i] = start;
        leaf[cap + i] = w1;
        leaf[2 * cap + i] = w2;
        if (obj != null) {
            if (overflow == null) {
                overflow = new HashMap<>();
            }
            overflow.put(start, obj);
        }
        if (i == 0) {
            firsts[l] = start;
        }
    }

    private void forgetOverflow(int l, int i) {
        long[] leaf = leaves[l];
        if (kind(leaf[leaf.length / 3 + i]) == OVERFLOW) {
            overflow.remove(leaf[i]);
        }
    }

    private static void move(long[] from, int fromCap, int fromIdx, long[] to, int toCap, int toIdx, int n) {
        if (n > 0) {
            System.arraycopy(from, fromIdx, to, toIdx, n);
            System.arraycopy(from, fromCap + fromIdx, to, toCap + toIdx, n);
            System.arraycopy(from, 2 * fromCap + fromIdx, to, 2 * toCap + toIdx, n);
        }
    }

    private long[] resize(int l, int cap) {
        long[] old = leaves[l];
        long[] leaf = new long[3 * cap];
        move(old, old.length / 3, 0, leaf, cap, 0, counts[l]);
        leaves[l] = leaf;
        return leaf;
    }

    /** Opens an empty leaf of capacity {@code cap} at directory index {@code l}. */
    private void addLeaf(int l, int cap) {
        if (nLeaves == leaves.length) {
            int n = Math.max(2, nLeaves * 2);
            firsts = java.util.Arrays.copyOf(firsts, n);
            leaves = java.util.Arrays.copyOf(leaves, n);
            counts = java.util.Arrays.copyOf(counts, n);
        }
        System.arraycopy(firsts, l, firsts, l + 1, nLeaves - l);
        System.arraycopy(leaves, l, leaves, l + 1, nLeaves - l);
        System.arraycopy(counts, l, counts, l + 1, nLeaves - l);
        leaves[l] = new long[3 * cap];
        counts[l] = 0;
        nLeaves++;
    }

    /** Drops leaves {@code [from, to)} from the directory (their extents with them). */
    private void dropLeaves(int from, int to) {
        if (to <= from) {
            return;
        }
        for (int l = from; l < to; l++) {
            size -= counts[l];
        }
        System.arraycopy(firsts, to, firsts, from, nLeaves - to);
        System.arraycopy(leaves, to, leaves, from, nLeaves - to);
        System.arraycopy(counts, to, counts, from, nLeaves - to);
        for (int l = nLeaves - (to - from); l < nLeaves; l++) {
            leaves[l] = null;
        }
        nLeaves -= to - from;
    }

    /**
     * Inserts an entry at index {@code i} of leaf {@code l} (shifting the rest), growing or
     * splitting a full leaf. Sets posLeaf/posIdx to where it went.
     */
    private void insertAt(int l, int i, long start, long w1, long w2, Extent obj) {
        while (counts[l] == leaves[l].length / 3) {
            int cap = leaves[l].length / 3;
            int c = counts[l];
            if (cap < LEAF_MAX) {
                resize(l, cap * 2);
            } else if (i == c && l + 1 < nLeaves && counts[l + 1] < LEAF_MAX) {
                l++;
                i = 0;
            } else if (i == 0 && l > 0 && counts[l - 1] < LEAF_MAX) {
                l--;
                i = counts[l];
            } else if (i > 0 && i < c && l + 1 < nLeaves && counts[l + 1] < LEAF_MAX - 1) {
                int t = (LEAF_MAX - counts[l + 1]) / 2;     // share with the right neighbour instead of splitting
                shiftToRight(l, t);
                if (i > c - t) {
                    i -= c - t;
                    l++;
                }
            } else if (i > 0 && i < c && l > 0 && counts[l - 1] < LEAF_MAX - 1) {
                int t = (LEAF_MAX - counts[l - 1]) / 2;     // or with the left one
                shiftToLeft(l, t);
                if (i < t) {
                    l--;
                    i += counts[l] - t;
                } else {
                    i -= t;
                }
            } else if (i == c) {
                addLeaf(l + 1, LEAF_MIN);                   // appending: leave the full leaf full
                l++;
                i = 0;
            } else if (i == 0) {
                addLeaf(l, LEAF_MIN);
            } else {
                int m = c / 2;
                addLeaf(l + 1, LEAF_MAX);
                move(leaves[l], LEAF_MAX, m, leaves[l + 1], LEAF_MAX, 0, c - m);
                counts[l] = m;
                counts[l + 1] = c - m;
                firsts[l + 1] = leaves[l + 1][0];
                if (i > m) {
                    l++;
                    i -= m;
                }
            }
        }
        long[] leaf = leaves[l];
        int cap = leaf.length / 3;
        move(leaf, cap, i, leaf, cap, i + 1, counts[l] - i);
        counts[l]++;
        size++;
        writeAt(l, i, start, w1, w2, obj);
        posLeaf = l;
        posIdx = i;
    }

    /** Moves the last {@code t} extents of leaf {@code l} to the front of leaf {@code l + 1}. */
    private void shiftToRight(int l, int t) {
        int n = counts[l + 1];
        long[] right = leaves[l + 1];
        if (right.length / 3 < n + t) {
            right = resize(l + 1, LEAF_MAX);
        }
        int rcap = right.length / 3;
        move(right, rcap, 0, right, rcap, t, n);
        long[] leaf = leaves[l];
        int c = counts[l];
        move(leaf, leaf.length / 3, c - t, right, rcap, 0, t);
        counts[l] = c - t;
        counts[l + 1] = n + t;
        firsts[l + 1] = right[0];
    }

    /** Moves the first {@code t} extents of leaf {@code l} to the end of leaf {@code l - 1}. */
    private void shiftToLeft(int l, int t) {
        int n = counts[l - 1];
        long[] left = leaves[l - 1];
        if (left.length / 3 < n + t) {
            left = resize(l - 1, LEAF_MAX);
        }
        long[] leaf = leaves[l];
        int cap = leaf.length / 3;
        int c = counts[l];
        move(leaf, cap, 0, left, left.length / 3, n, t);
        move(leaf, cap, t, leaf, cap, 0, c - t);
        counts[l - 1] = n + t;
        counts[l] = c - t;
        firsts[l] = leaf[0];
    }

    /** Removes indices {@code [from, to)} of leaf {@code l}; the leaf may be left empty. */
    private void removeIn(int l, int from, int to) {
        long[] leaf = leaves[l];
        int cap = leaf.length / 3;
        move(leaf, cap, to, leaf, cap, from, counts[l] - to);
        counts[l] -= to - from;
        size -= to - from;
        if (from == 0 && counts[l] > 0) {
            firsts[l] = leaf[0];
        }
    }

    /** After removals from leaf {@code l}: drops it when empty, shrinks it, or merges it into a neighbour. */
    private void tidy(int l) {
        int c = counts[l];
        if (c == 0) {
            dropLeaves(l, l + 1);
            return;
        }
        int cap = leaves[l].length / 3;
        if (cap > LEAF_MIN && c <= cap / 4) {
            resize(l, cap / 2);
        }
        if (c < LEAF_MAX / 4) {
            if (l + 1 < nLeaves && c + counts[l + 1] <= LEAF_MAX / 2) {
                merge(l);
            } else if (l > 0 && c + counts[l - 1] <= LEAF_MAX / 2) {
                merge(l - 1);
            }
        }
    }

    /** Moves leaf l + 1's extents to the end of leaf l and drops leaf l + 1. */
    private void merge(int l) {
        int c = counts[l];
        int n = counts[l + 1];
        long[] leaf = leaves[l];
        if (leaf.length / 3 < c + n) {
            leaf = resize(l, Math.max(LEAF_MIN, Integer.highestOneBit(c + n - 1) << 1));
        }
        long[] right = leaves[l + 1];
        move(right, right.length / 3, 0, leaf, leaf.length / 3, c, n);
        counts[l] = c + n;
        counts[l + 1] = 0;
        dropLeaves(l + 1, l + 2);
    }

    // ---------------------------------------------------------------- operations

    /**
     * Inserts {@code n}, trimming, splitting or deleting the extents it overlaps. Each removed
     * or trimmed-away part is passed to {@code displaced} (may be null).
     */
    public void insert(Extent n, Consumer<Extent> displaced) {
        boolean packed = encode(n);
        insertWords(n.start(), encW1, encW2, packed ? null : n, displaced);
    }

    /**
     * {@link #insert} of {@code Extent.data(start, length, segment, segmentOffset, generation, dirty)}
     * without making the {@link Extent} (the write path and replay).
     */
    public void insertData(long start, int length, int segment, int segmentOffset, long generation, boolean dirty) {
        if (length > 0 && segment >= 0 && segmentOffset >= 0 && (long) segmentOffset + length <= 1L << 30
                && generation >= 0 && generation <= MASK33) {
            insertWords(start, (long) length << 30 | (dirty ? DIRTY : 0) | segmentOffset,
                    (long) segment << 33 | generation, null, null);
        } else {
            insert(Extent.data(start, length, segment, segmentOffset, generation, dirty), null);
        }
    }

    /** {@link #insert} of {@code Extent.zero(start, length, dirty)} without making the {@link Extent}. */
    public void insertZero(long start, int length, boolean dirty) {
        if (length <= 0) {
            throw new IllegalArgumentException("extent length " + length);
        }
        insertWords(start, (long) ZERO << 62 | (long) length << 30 | (dirty ? DIRTY : 0), 0, null, null);
    }

    private void insertWords(long s, long w1, long w2, Extent obj, Consumer<Extent> displaced) {
        if (nLeaves == 0) {
            addLeaf(0, LEAF_MIN);
            insertAt(0, 0, s, w1, w2, obj);
            return;
        }
        long e = s + len(w1);
        locate(s);
        int fl = posLeaf;
        int fi = posIdx;
        long[] leaf = leaves[fl];
        if (fi == counts[fl] || leaf[fi] >= e) {
            insertAt(fl, fi, s, w1, w2, obj);               // into a gap: nothing overlaps
            return;
        }
        int cap = leaf.length / 3;
        long ks = leaf[fi];
        long kw1 = leaf[cap + fi];
        long ke = ks + len(kw1);
        if (ks == s && ke == e) {                           // exact overwrite: in place
            if (displaced != null) {
                displaced.accept(decodeAt(fl, fi));
            }
            forgetOverflow(fl, fi);
            writeAt(fl, fi, s, w1, w2, obj);
            return;
        }
        // The run of overlapped extents: from (fl, fi) to (ll, li), in start order.
        int ll = fl;
        int li = fi;
        int runLen = 1;
        while (true) {
            int nl = ll;
            int ni = li + 1;
            if (ni == counts[nl]) {
                if (nl + 1 == nLeaves) {
                    break;
                }
                nl++;
                ni = 0;
            }
            if (leaves[nl][ni] >= e) {
                break;
            }
            ll = nl;
            li = ni;
            runLen++;
        }
        // The 1 to 3 entries that replace the run, in order: [left part of K] N [right part of the last].
        boolean hasLeft = ks < s;
        long leftStart = 0;
        long leftW1 = 0;
        long leftW2 = 0;
        Extent leftObj = null;
        if (hasLeft) {                                      // head, or left of contained
            cutBack(ks, kw1, leaf[2 * cap + fi], (int) (s - ks));
            leftStart = encStart;
            leftW1 = encW1;
            leftW2 = encW2;
            leftObj = encObj;
        }
        long[] last = leaves[ll];
        int lastCap = last.length / 3;
        long ls = last[li];
        long lw1 = last[lastCap + li];
        boolean hasRight = ls + len(lw1) > e;
        long rightStart = 0;
        long rightW1 = 0;
        long rightW2 = 0;
        Extent rightObj = null;
        if (hasRight) {                                     // tail, or right of contained
            cutFront(ls, lw1, last[2 * lastCap + li], (int) (e - ls));
            rightStart = encStart;
            rightW1 = encW1;
            rightW2 = encW2;
            rightObj = encObj;
        }
        encObj = null;
        if (displaced != null || overflow != null) {
            for (int l = fl, i = fi, left = runLen; left > 0; left--) {
                if (displaced != null) {
                    displaced.accept(decodeAt(l, i).slice(s, e));
                }
                forgetOverflow(l, i);
                if (++i == counts[l]) {
                    l++;
                    i = 0;
                }
            }
        }
        if (ll > fl) {                                      // the run crosses leaves: cut it back to leaf fl
            removeIn(ll, 0, li + 1);
            dropLeaves(fl + 1, counts[ll] == 0 ? ll + 1 : ll);
            runLen = counts[fl] - fi;
        }
        // The run is now [fi, fi + runLen) of leaf fl: overwrite its first slots, then remove the
        // slots left over or insert the entries that did not fit.
        int i = fi;
        int l = fl;
        int slots = runLen;
        if (hasLeft) {
            writeAt(l, i++, leftStart, leftW1, leftW2, leftObj);
            slots--;
        }
        if (slots > 0) {
            writeAt(l, i++, s, w1, w2, obj);
            slots--;
        } else {
            insertAt(l, i, s, w1, w2, obj);
            l = posLeaf;
            i = posIdx + 1;
        }
        if (hasRight) {
            if (slots > 0) {
                writeAt(l, i++, rightStart, rightW1, rightW2, rightObj);
                slots--;
            } else {
                insertAt(l, i, rightStart, rightW1, rightW2, rightObj);
            }
        }
        if (slots > 0) {                                    // fewer entries than the run: nothing was inserted above
            removeIn(fl, i, i + slots);
            tidy(fl);
        }
    }

    /**
     * Extents in ascending start order and pairwise disjoint, to merge into a map in one pass
     * ({@link #insertSorted}): replay's bulk path. Reusable: {@link #clear()} between runs.
     */
    public static final class SortedRun {
        private long[] starts = new long[64];
        private long[] w1 = new long[64];
        private long[] w2 = new long[64];
        /** Extents that do not pack (as {@link ExtentMap#encode} says), else null; null when there is none. */
        private Extent[] objs;
        private int n;
        private long end = Long.MIN_VALUE;
        /** {@link #mergeInPlace}'s count of run extents up to each leaf. */
        private int[] perLeaf = new int[0];
        /** {@link #insertSorted}'s pieces of the extents already there, reused from run to run. */
        private long[] ps = new long[0];
        private long[] p1 = new long[0];
        private long[] p2 = new long[0];

        /** Grows the scratch ({@code ps}, {@code p1}, {@code p2}) to hold at least {@code n} extents. */
        private void ensureScratch(int n) {
            if (ps.length < n) {
                int grow = Math.max(n, 2 * ps.length);
                ps = new long[grow];
                p1 = new long[grow];
                p2 = new long[grow];
            }
        }

        public void clear() {
            if (objs != null) {
                java.util.Arrays.fill(objs, 0, n, null);
                objs = null;
            }
            n = 0;
            end = Long.MIN_VALUE;
        }

        public int size() {
            return n;
        }

        /** Adds {@code Extent.data(...)}; it must start at or after the end of the previous one. */
        public void addData(long start, int length, int segment, int segmentOffset, long generation, boolean dirty) {
            if (length > 0 && segment >= 0 && segmentOffset >= 0 && (long) segmentOffset + length <= 1L << 30
                    && generation >= 0 && generation <= MASK33) {
                add(start, length, (long) length << 30 | (dirty ? DIRTY : 0) | segmentOffset,
                        (long) segment << 33 | generation, null);
            } else {
                Extent x = Extent.data(start, length, segment, segmentOffset, generation, dirty);
                add(start, length, (long) OVERFLOW << 62 | (long) length << 30, 0, x);
            }
        }

        /** Adds {@code Extent.zero(start, length, dirty)}; it must start at or after the end of the previous one. */
        public void addZero(long start, int length, boolean dirty) {
            if (length <= 0) {
                throw new IllegalArgumentException("extent length " + length);
            }
            add(start, length, (long) ZERO << 62 | (long) length << 30 | (dirty ? DIRTY : 0), 0, null);
        }

        private void add(long start, int length, long a, long b, Extent obj) {
            if (start < end) {
                throw new IllegalArgumentException("extent at " + start + " overlaps or precedes the one ending at " + end);
            }
            if (n == starts.length) {
                starts = java.util.Arrays.copyOf(starts, 2 * n);
                w1 = java.util.Arrays.copyOf(w1, 2 * n);
                w2 = java.util.Arrays.copyOf(w2, 2 * n);
                if (objs != null) {
                    objs = java.util.Arrays.copyOf(objs, 2 * n);
                }
            }
            if (obj != null && objs == null) {
                objs = new Extent[starts.length];
            }
            starts[n] = start;
            w1[n] = a;
            w2[n] = b;
            if (objs != null) {
                objs[n] = obj;
            }
            n++;
            end = start + length;
        }
    }

    /**
     * Inserts every extent of {@code run}: the same map as {@link #insert}ing them one by one, in
     * any order (they are disjoint, so each replaces exactly its own bytes and the inserts
     * commute). When the run is not small beside the map: when no extent of it overlaps one here,
     * merged into the leaves in place ({@link #mergeInPlace}: untouched leaves stay as they are);
     * otherwise in one merge: the pieces of the extents already here that the run leaves
     * uncovered, and the run, are laid out in start order into full leaves (O(size + run) moves).
     * A small run, or one with an extent that does not pack: one insert each.
     */
    public void insertSorted(SortedRun run) {
        int n = run.n;
        if (n == 0) {
            return;
        }
        if (run.objs != null || overflow != null || (long) size > 16L * n) {
            for (int j = 0; j < n; j++) {
                insertWords(run.starts[j], run.w1[j], run.w2[j], run.objs == null ? null : run.objs[j], null);
            }
            return;
        }
        if (nLeaves > 0 && mergeInPlace(run)) {
            return;
        }
        // The existing extents minus the run's bytes, as pieces in start order (at most size + n).
        run.ensureScratch(size + n);
        long[] ps = run.ps;
        long[] p1 = run.p1;
        long[] p2 = run.p2;
        int np = 0;
        long[] ns = run.starts;
        long[] n1 = run.w1;
        int p = 0;                                          // first run extent ending after the current K's start
        for (int l = 0; l < nLeaves; l++) {
            long[] leaf = leaves[l];
            int cap = leaf.length / 3;
            for (int i = 0, c = counts[l]; i < c; i++) {
                long ks = leaf[i];
                long kw1 = leaf[cap + i];
                long kw2 = leaf[2 * cap + i];
                long ke = ks + len(kw1);
                while (p < n && ns[p] + len(n1[p]) <= ks) {
                    p++;
                }
                long cs = ks;                               // start of K's part not yet decided
                for (int q = p; q < n && ns[q] < ke && cs < ke; q++) {
                    if (ns[q] > cs) {
                        np = piece(ps, p1, p2, np, ks, kw1, kw2, cs, ns[q]);
                    }
                    cs = Math.max(cs, ns[q] + len(n1[q]));
                }
                if (cs < ke) {
                    np = piece(ps, p1, p2, np, ks, kw1, kw2, cs, ke);
                }
            }
        }
        // Merge the pieces and the run by start into full leaves.
        int total = np + n;
        int nl = (total + LEAF_MAX - 1) / LEAF_MAX;
        long[] newFirsts = new long[Math.max(1, nl)];
        long[][] newLeaves = new long[Math.max(1, nl)][];
        int[] newCounts = new int[Math.max(1, nl)];
        int a = 0;
        int b = 0;
        for (int l = 0; l < nl; l++) {
            int c = Math.min(LEAF_MAX, total - l * LEAF_MAX);
            int cap = Math.max(LEAF_MIN, Integer.highestOneBit(c - 1) << 1);
            long[] leaf = new long[3 * cap];
            for (int i = 0; i < c; i++) {
                if (b == n || a < np && ps[a] < ns[b]) {
                    leaf[i] = ps[a];
                    leaf[cap + i] = p1[a];
                    leaf[2 * cap + i] = p2[a++];
                } else {
                    leaf[i] = ns[b];
                    leaf[cap + i] = n1[b];
                    leaf[2 * cap + i] = run.w2[b++];
                }
            }
            newLeaves[l] = leaf;
            newFirsts[l] = leaf[0];
            newCounts[l] = c;
        }
        firsts = newFirsts;
        leaves = newLeaves;
        counts = newCounts;
        nLeaves = nl;
        size = total;
    }

    /** Leaves {@link #mergeInPlace} splits are filled to this: room for the next batches' extents. */
    private static final int SPLIT_FILL = LEAF_MAX * 3 / 4;

    /**
     * {@link #insertSorted} when no extent of the run overlaps one already here (replay's usual
     * case: each batch adds keys between those of the batches before): each run extent goes into
     * the leaf whose span holds its start, merged there in place when the leaf has room, into one
     * bigger leaf when the two fit in {@value #LEAF_MAX}, else into new leaves filled to
     * {@value #SPLIT_FILL}. Leaves the run does not touch are neither copied nor reallocated, so a
     * map built batch by batch is not rebuilt whole for every batch. Returns false, having changed
     * nothing, when an extent of the run overlaps one here (the caller then merges by pieces).
     */
    private boolean mergeInPlace(SortedRun run) {
        int n = run.n;
        if (run.perLeaf.length < nLeaves + 1) {
            run.perLeaf = new int[Math.max(nLeaves + 1, 2 * run.perLeaf.length)];
        }
        int[] upTo = run.perLeaf;                           // upTo[l]: run extents before leaf l + 1's span
        if (!placeRun(run, upTo)) {
            return false;
        }
        int extra = 0;                                      // leaves added by splits
        for (int k = 0, j = 0; k < nLeaves; j = upTo[k++]) {
            int total = counts[k] + upTo[k] - j;
            if (total > LEAF_MAX) {
                extra += (total + SPLIT_FILL - 1) / SPLIT_FILL - 1;
            }
        }
        long[] newFirsts = firsts;
        long[][] newLeaves = leaves;
        int[] newCounts = counts;
        if (nLeaves + extra > firsts.length) {              // else shifted within the arrays, back to front
            int cap = Math.max(2 * firsts.length, nLeaves + extra);
            newFirsts = new long[cap];
            newLeaves = new long[cap][];
            newCounts = new int[cap];
        }
        // Back to front, so that the directory can be shifted within its own arrays.
        int to = nLeaves + extra;
        for (int k = nLeaves - 1; k >= 0; k--) {
            int from = k == 0 ? 0 : upTo[k - 1];
            int add = upTo[k] - from;
            long[] leaf = leaves[k];
            int c = counts[k];
            if (add == 0) {
                to--;
                newLeaves[to] = leaf;
                newFirsts[to] = firsts[k];
                newCounts[to] = c;
            } else if (c + add <= leaf.length / 3) {
                mergeInto(leaf, leaf.length / 3, c, run, from, add);
                to--;
                newLeaves[to] = leaf;
                newFirsts[to] = leaf[0];
                newCounts[to] = c + add;
            } else {
                to = spill(leaf, c, run, from, add, newFirsts, newLeaves, newCounts, to);
            }
        }
        firsts = newFirsts;
        leaves = newLeaves;
        counts = newCounts;
        nLeaves += extra;
        size += n;
        return true;
    }

    // mergeInPlace's loops are methods of their own: a cold JVM compiles a hot loop on the stack
    // (OSR) together with the rest of its method, so one loop per method keeps those compiles small.

    /**
     * Sets {@code upTo[l]} to the number of run extents that start before leaf {@code l + 1}'s
     * span (for every leaf); returns false when an extent of the run overlaps one here.
     */
    private boolean placeRun(SortedRun run, int[] upTo) {
        int n = run.n;
        long[] ns = run.starts;
        long[] n1 = run.w1;
        int l = 0;
        for (int j = 0; j < n; j++) {
            long s = ns[j];
            long e = s + len(n1[j]);
            while (l + 1 < nLeaves && firsts[l + 1] <= s) {
                upTo[l++] = j;
            }
            long[] leaf = leaves[l];
            int c = counts[l];
            int i = floorIn(leaf, c, s);
            if (i >= 0 && leaf[i] + len(leaf[leaf.length / 3 + i]) > s) {
                return false;                               // overlaps the extent before it
            }
            long next = i + 1 < c ? leaf[i + 1] : l + 1 < nLeaves ? firsts[l + 1] : Long.MAX_VALUE;
            if (next < e) {
                return false;                               // overlaps the extent after it
            }
        }
        while (l < nLeaves) {
            upTo[l++] = n;
        }
        return true;
    }

    /**
     * Merges leaf {@code leaf} ({@code c} extents) with the run's {@code [from, from + add)}, more
     * than the leaf holds, into one bigger leaf or new leaves filled to {@value #SPLIT_FILL}, put
     * at the directory slots just below {@code to}; returns the lowest slot filled.
     */
    private static int spill(long[] leaf, int c, SortedRun run, int from, int add, long[] newFirsts,
                             long[][] newLeaves, int[] newCounts, int to) {
        long[] ns = run.starts;
        long[] n1 = run.w1;
        long[] n2 = run.w2;
        int total = c + add;
        int cap = leaf.length / 3;
        // Merge into scratch, then deal out into one or more leaves.
        run.ensureScratch(total);
        long[] ms = run.ps;
        long[] m1 = run.p1;
        long[] m2 = run.p2;
        int a = 0;
        int b = from;
        int end = from + add;
        for (int q = 0; q < total; q++) {
            if (b == end || a < c && leaf[a] < ns[b]) {
                ms[q] = leaf[a];
                m1[q] = leaf[cap + a];
                m2[q] = leaf[2 * cap + a++];
            } else {
                ms[q] = ns[b];
                m1[q] = n1[b];
                m2[q] = n2[b++];
            }
        }
        int parts = total <= LEAF_MAX ? 1 : (total + SPLIT_FILL - 1) / SPLIT_FILL;
        for (int part = parts - 1; part >= 0; part--) {
            int lo = (int) ((long) total * part / parts);
            int hi = (int) ((long) total * (part + 1) / parts);
            int pc = hi - lo;
            int pcap = Math.max(LEAF_MIN, Integer.highestOneBit(pc - 1) << 1);
            if (parts > 1) {
                pcap = LEAF_MAX;                        // room for the next batches
            }
            // The first part reuses the old leaf when it is full-sized (its extents are in the scratch).
            long[] nl = part == 0 && pcap == cap ? leaf : new long[3 * pcap];
            System.arraycopy(ms, lo, nl, 0, pc);
            System.arraycopy(m1, lo, nl, pcap, pc);
            System.arraycopy(m2, lo, nl, 2 * pcap, pc);
            to--;
            newLeaves[to] = nl;
            newFirsts[to] = nl[0];
            newCounts[to] = pc;
        }
        return to;
    }

    /**
     * Merges the run's {@code [from, from + add)} into {@code leaf} ({@code c} extents, capacity
     * {@code cap}, room for them), back to front; stops once the run is placed: the extents
     * before its first one are already where they belong.
     */
    private static void mergeInto(long[] leaf, int cap, int c, SortedRun run, int from, int add) {
        long[] ns = run.starts;
        long[] n1 = run.w1;
        long[] n2 = run.w2;
        int a = c - 1;
        int b = from + add - 1;
        for (int q = c + add - 1; b >= from; q--) {      // q == a + (b - from + 1) > a
            if (a >= 0 && leaf[a] > ns[b]) {
                leaf[q] = leaf[a];
                leaf[cap + q] = leaf[cap + a];
                leaf[2 * cap + q] = leaf[2 * cap + a--];
            } else {
                leaf[q] = ns[b];
                leaf[cap + q] = n1[b];
                leaf[2 * cap + q] = n2[b--];
            }
        }
    }

    /** Appends the part {@code [from, to)} of the packed extent {@code (ks, kw1, kw2)}; returns the new count. */
    private static int piece(long[] ps, long[] p1, long[] p2, int np, long ks, long kw1, long kw2, long from, long to) {
        long w = withLen(kw1, (int) (to - from));
        if (kind(kw1) == DATA) {
            w += from - ks;                                 // segment offset + cut < 2^30: no carry
        }
        ps[np] = from;
        p1[np] = w;
        p2[np] = kw2;
        return np + 1;
    }

    /**
     * The extent holding all of {@code [from, to)}, or null when no single extent does (a gap,
     * or several extents). Two binary searches: the read path's common case.
     */
    public Extent covering(long from, long to) {
        if (nLeaves == 0) {
            return null;
        }
        int l = findLeaf(from);
        long[] leaf = leaves[l];
        int i = floorIn(leaf, counts[l], from);
        if (i < 0) {
            return null;
        }
        int cap = leaf.length / 3;
        long w1 = leaf[cap + i];
        return leaf[i] + len(w1) >= to ? decode(leaf[i], w1, leaf[2 * cap + i]) : null;
    }

    /**
     * {@link #covering} without making the {@link Extent}: true when one DATA or ZERO extent holds
     * all of {@code [from, to)}; its fields are then {@link #foundKind()}, {@link #foundSegment()},
     * {@link #foundAddress()} (the segment offset of {@code from}) and {@link #foundGeneration()},
     * valid until the next call under the same lock hold.
     */
    public boolean findCovering(long from, long to) {
        if (nLeaves == 0) {
            return false;
        }
        int l = findLeaf(from);
        long[] leaf = leaves[l];
        int i = floorIn(leaf, counts[l], from);
        if (i < 0) {
            return false;
        }
        int cap = leaf.length / 3;
        long start = leaf[i];
        long w1 = leaf[cap + i];
        long w2 = leaf[2 * cap + i];
        if (start + len(w1) < to) {
            return false;
        }
        switch (kind(w1)) {
            case DATA -> {
                foundKind = Extent.Kind.DATA;
                foundSegment = (int) (w2 >>> 33);
                foundAddress = (w1 & MASK30) + (from - start);
                foundGeneration = w2 & MASK33;
                return true;
            }
            case ZERO -> {
                foundKind = Extent.Kind.ZERO;
                return true;
            }
            case OVERFLOW -> {
                Extent x = overflow.get(start);
                if (x.kind() == Extent.Kind.PLACEHOLDER) {
                    return false;
                }
                foundKind = x.kind();
                foundSegment = x.segment();
                foundAddress = x.segmentOffset() + (from - start);
                foundGeneration = x.generation();
                return true;
            }
            default -> {
                return false;                               // a placeholder: a fill is in flight
            }
        }
    }

    private Extent.Kind foundKind;
    private int foundSegment;
    private long foundAddress;
    private long foundGeneration;

    /** DATA or ZERO: the kind of the extent {@link #findCovering} found. */
    public Extent.Kind foundKind() {
        return foundKind;
    }

    /** DATA: the segment of the extent {@link #findCovering} found. */
    public int foundSegment() {
        return foundSegment;
    }

    /** DATA: the offset in {@link #foundSegment()} of the first byte asked for. */
    public long foundAddress() {
        return foundAddress;
    }

    /** DATA: the generation of the extent {@link #findCovering} found. */
    public long foundGeneration() {
        return foundGeneration;
    }

    /** Calls {@code visitor} for every extent overlapping {@code [from, to)}, in order, unclipped. */
    public void forEachOverlapping(long from, long to, Consumer<Extent> visitor) {
        if (nLeaves == 0) {
            return;
        }
        locate(from);
        for (int l = posLeaf, i = posIdx; l < nLeaves; l++, i = 0) {
            long[] leaf = leaves[l];
            int c = counts[l];
            for (; i < c; i++) {
                if (leaf[i] >= to) {
                    return;
                }
                visitor.accept(decodeAt(l, i));
            }
        }
    }

    /** Sets posLeaf/posIdx to the extent equal to {@code x}; false when there is none. */
    private boolean find(Extent x) {
        if (nLeaves == 0) {
            return false;
        }
        int l = findLeaf(x.start());
        long[] leaf = leaves[l];
        int i = floorIn(leaf, counts[l], x.start());
        if (i < 0 || leaf[i] != x.start()) {
            return false;
        }
        int cap = leaf.length / 3;
        boolean packed = encode(x);
        boolean same = packed ? leaf[cap + i] == encW1 && leaf[2 * cap + i] == encW2
                : kind(leaf[cap + i]) == OVERFLOW && overflow.get(x.start()).equals(x);
        posLeaf = l;
        posIdx = i;
        return same;
    }

    /** The extents overlapping {@code [from, to)}, clipped to it, in order. */
    public java.util.List<Extent> clippedTo(long from, long to) {
        var out = new java.util.ArrayList<Extent>(4);
        forEachOverlapping(from, to, x -> out.add(x.slice(from, to)));
        return out;
    }

    /** Removes the exact extent {@code x} if it is still present (same start and same value). */
    public boolean removeExact(Extent x) {
        if (!find(x)) {
            return false;
        }
        int l = posLeaf;
        forgetOverflow(l, posIdx);
        removeIn(l, posIdx, posIdx + 1);
        tidy(l);
        return true;
    }

    /** Replaces the exact extent {@code old} by {@code replacement} covering the same bytes. */
    public boolean replaceExact(Extent old, Extent replacement) {
        if (old.start() != replacement.start() || old.length() != replacement.length()) {
            throw new IllegalArgumentException(old + " -> " + replacement);
        }
        if (!find(old)) {
            return false;
        }
        int l = posLeaf;
        int i = posIdx;
        boolean packed = encode(replacement);
        forgetOverflow(l, i);
        writeAt(l, i, replacement.start(), encW1, encW2, packed ? null : replacement);
        return true;
    }

    /** Removes every extent matching {@code doomed}, at most {@code max}; returns how many. */
    public int removeIf(Predicate<Extent> doomed, int max) {
        int n = 0;
        for (int l = 0; l < nLeaves && n < max; l++) {
            long[] leaf = leaves[l];
            int cap = leaf.length / 3;
            int c = counts[l];
            int kept = 0;
            for (int i = 0; i < c; i++) {
                if (n < max && doomed.test(decode(leaf[i], leaf[cap + i], leaf[2 * cap + i]))) {
                    forgetOverflow(l, i);
                    n++;
                } else {
                    move(leaf, cap, i, leaf, cap, kept++, 1);
                }
            }
            size -= c - kept;
            counts[l] = kept;
            if (kept > 0) {
                firsts[l] = leaf[0];
            }
        }
        for (int l = 0; l < nLeaves; ) {                    // then drop, shrink and merge what was emptied
            int before = nLeaves;
            tidy(l);
            if (nLeaves == before) {
                l++;
            }
        }
        return n;
    }

    /** A snapshot of every extent, in order (tests and tools). */
    public List<Extent> snapshot() {
        List<Extent> all = new ArrayList<>(size);
        for (int l = 0; l < nLeaves; l++) {
            for (int i = 0; i < counts[l]; i++) {
                all.add(decodeAt(l, i));
            }
        }
        return List.copyOf(all);
    }

    /** Checks every invariant of the class comment; throws IllegalStateException naming the first broken one (tests). */
    void checkInvariants() {
        long prevEnd = Long.MIN_VALUE;
        int total = 0;
        int overflows = 0;
        for (int l = 0; l < nLeaves; l++) {
            long[] leaf = leaves[l];
            int cap = leaf.length / 3;
            int c = counts[l];
            if (c < 1 || c > cap || cap > LEAF_MAX || Integer.bitCount(cap) != 1 || leaf.length != 3 * cap) {
                throw new IllegalStateException("leaf " + l + ": count " + c + ", capacity " + cap);
            }
            if (firsts[l] != leaf[0]) {
                throw new IllegalStateException("leaf " + l + ": first " + firsts[l] + " != " + leaf[0]);
            }
            for (int i = 0; i < c; i++) {
                long w1 = leaf[cap + i];
                if (leaf[i] < prevEnd || len(w1) <= 0) {
                    throw new IllegalStateException("leaf " + l + " index " + i + ": start " + leaf[i] + ", length "
                            + len(w1) + ", previous end " + prevEnd);
                }
                if (kind(w1) == OVERFLOW) {
                    overflows++;
                    Extent x = overflow == null ? null : overflow.get(leaf[i]);
                    if (x == null || x.length() != len(w1)) {
                        throw new IllegalStateException("overflow entry at " + leaf[i] + " is " + x);
                    }
                }
                prevEnd = leaf[i] + len(w1);
            }
            total += c;
        }
        if (total != size || overflows != (overflow == null ? 0 : overflow.size())) {
            throw new IllegalStateException("size " + size + " vs " + total + " extents; overflow map "
                    + (overflow == null ? 0 : overflow.size()) + " vs " + overflows + " entries");
        }
    }
}
