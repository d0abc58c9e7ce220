package io.pmcache.index;

/**
 * An index entry: logical bytes {@code [start, start + length)} and where they are.
 *
 * <ul>
 *   <li>{@link Kind#DATA}: in cache segment {@code segment} at {@code segmentOffset}, valid while
 *       the segment's generation equals {@code generation}; {@code dirty} when not yet written
 *       back.</li>
 *   <li>{@link Kind#ZERO}: reads as zeros (a trim or write-zeroes); no data.</li>
 *   <li>{@link Kind#PLACEHOLDER}: a read miss in flight for fill {@code fillId}; reads go to the
 *       backing device. A write that overlaps it trims it, so the fill never overwrites newer
 *       data with what it read from the backing device.</li>
 * </ul>
 */
public record Extent(long start, int length, Kind kind, int segment, int segmentOffset, long generation,
                     boolean dirty, long fillId) {

    public enum Kind { DATA, ZERO, PLACEHOLDER }

    public Extent {
        if (length <= 0) {
            throw new IllegalArgumentException("extent length " + length);
        }
    }

    public static Extent data(long start, int length, int segment, int segmentOffset, long generation,
                              boolean dirty) {
        return new Extent(start, length, Kind.DATA, segment, segmentOffset, generation, dirty, 0);
    }

    public static Extent zero(long start, int length, boolean dirty) {
        return new Extent(start, length, Kind.ZERO, -1, 0, 0, dirty, 0);
    }

    public static Extent placeholder(long start, int length, long fillId) {
        return new Extent(start, length, Kind.PLACEHOLDER, -1, 0, 0, false, fillId);
    }

    public long end() {
        return start + length;
    }

    /** This extent without its first {@code n} bytes. */
    public Extent cutFront(int n) {
        int off = kind == Kind.DATA ? segmentOffset + n : segmentOffset;
        return new Extent(start + n, length - n, kind, segment, off, generation, dirty, fillId);
    }

    /** This extent without its last {@code n} bytes. */
    public Extent cutBack(int n) {
        return new Extent(start, length - n, kind, segment, segmentOffset, generation, dirty, fillId);
    }

    /** The part of this extent within {@code [from, to)} (which must overlap it). */
    public Extent slice(long from, long to) {
        long s = Math.max(start, from);
        long e = Math.min(end(), to);
        return cutFront((int) (s - start)).cutBack((int) (end() - e));
    }

    public Extent withDirty(boolean d) {
        return new Extent(start, length, kind, segment, segmentOffset, generation, d, fillId);
    }
}
