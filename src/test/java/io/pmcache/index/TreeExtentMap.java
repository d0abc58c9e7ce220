package io.pmcache.index;

import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import java.util.function.Predicate;

/**
 * The reference for {@link ExtentMap} (its TreeMap implementation before issue 10): an ordered map of non-overlapping extents, keyed by start.
 * Callers hold {@link #lock()} around every call.
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
 */
final class TreeExtentMap {
    private final NavigableMap<Long, Extent> extents = new TreeMap<>();
    private final ReentrantLock lock = new ReentrantLock();

    public ReentrantLock lock() {
        return lock;
    }

    public boolean isEmpty() {
        return extents.isEmpty();
    }

    public int size() {
        return extents.size();
    }

    /**
     * Inserts {@code n}, trimming, splitting or deleting the extents it overlaps. Each removed
     * or trimmed-away part is passed to {@code displaced} (may be null).
     */
    public void insert(Extent n, Consumer<Extent> displaced) {
        long s = n.start();
        long e = n.end();
        Long key = s;
        // Fast paths (each tree descent is a chain of cache misses in a large index): the extent
        // at or before s decides most inserts without walking a sub-map.
        Map.Entry<Long, Extent> floor = extents.floorEntry(key);
        Extent f = floor == null ? null : floor.getValue();
        if (f != null && f.end() > s) {
            long fs = f.start();
            long fe = f.end();
            if (fe >= e) {
                // f covers n: exact overwrite, contain with a common start or end, or contained.
                // Nothing else overlaps n (the map is non-overlapping).
                if (fs < s) {
                    extents.put(floor.getKey(), f.cutBack((int) (fe - s)));
                }
                if (fe > e) {
                    Extent right = f.cutFront((int) (e - fs));
                    extents.put(right.start(), right);
                }
                extents.put(key, n);                                // replaces f when fs == s
                if (displaced != null) {
                    displaced.accept(fs == s && fe == e ? f : f.slice(s, e));
                }
                return;
            }
        } else {
            Long next = extents.higherKey(key);
            if (next == null || next >= e) {
                extents.put(key, n);                                // into a gap: nothing overlaps
                return;
            }
        }
        Long from = f != null && f.end() > s ? floor.getKey() : key;
        // Collect first: the map is modified while walking the overlapping keys.
        var overlapping = new java.util.ArrayList<Extent>(4);
        for (Extent k : extents.subMap(from, true, e, false).values()) {
            overlapping.add(k);
        }
        for (Extent k : overlapping) {
            long ks = k.start();
            long ke = k.end();
            extents.remove(ks);
            if (ks < s) {
                extents.put(ks, k.cutBack((int) (ke - s)));          // head, or left part of contained
            }
            if (ke > e) {
                Extent right = k.cutFront((int) (e - ks));           // tail, or right part of contained
                extents.put(right.start(), right);
            }
            if (displaced != null) {
                displaced.accept(k.slice(s, e));
            }
        }
        extents.put(key, n);
    }

    /**
     * The extent holding all of {@code [from, to)}, or null when no single extent does (a gap,
     * or several extents). One tree descent: the read path's common case.
     */
    public Extent covering(long from, long to) {
        Map.Entry<Long, Extent> floor = extents.floorEntry(from);
        if (floor == null) {
            return null;
        }
        Extent x = floor.getValue();
        return x.end() >= to ? x : null;
    }

    /** Calls {@code visitor} for every extent overlapping {@code [from, to)}, in order, unclipped. */
    public void forEachOverlapping(long from, long to, Consumer<Extent> visitor) {
        Map.Entry<Long, Extent> first = extents.floorEntry(from);
        Long start = first != null && first.getValue().end() > from ? first.getKey() : Long.valueOf(from);
        for (Extent k : extents.subMap(start, true, to, false).values()) {
            visitor.accept(k);
        }
    }

    /** Removes the exact extent {@code x} if it is still present (same start and same value). */
    public boolean removeExact(Extent x) {
        return extents.remove(x.start(), x);
    }

    /** Replaces the exact extent {@code old} by {@code replacement} covering the same bytes. */
    public boolean replaceExact(Extent old, Extent replacement) {
        if (old.start() != replacement.start() || old.length() != replacement.length()) {
            throw new IllegalArgumentException(old + " -> " + replacement);
        }
        return extents.replace(old.start(), old, replacement);
    }

    /** Removes every extent matching {@code doomed}, at most {@code max}; returns how many. */
    public int removeIf(Predicate<Extent> doomed, int max) {
        int n = 0;
        var it = extents.values().iterator();
        while (it.hasNext() && n < max) {
            if (doomed.test(it.next())) {
                it.remove();
                n++;
            }
        }
        return n;
    }

    /** A snapshot of every extent, in order (tests and tools). */
    public java.util.List<Extent> snapshot() {
        return java.util.List.copyOf(extents.values());
    }
}
