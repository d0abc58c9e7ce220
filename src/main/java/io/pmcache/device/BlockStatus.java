package io.pmcache.device;

import java.util.ArrayList;
import java.util.List;

/**
 * The allocation status of the bytes {@code [offset, offset + length)} of a device, as
 * {@link BlockDevice#blockStatus} reports it.
 *
 * <ul>
 *   <li>{@link Kind#DATA}: allocated, or not known; the bytes may hold anything (zeros too).
 *       Always a correct answer.</li>
 *   <li>{@link Kind#ZERO}: the bytes read as zeros, and are allocated (or allocation is not known).</li>
 *   <li>{@link Kind#HOLE}: the bytes read as zeros and take no space (a sparse file's hole, a
 *       trimmed or zeroed range).</li>
 * </ul>
 * Invariant every device keeps: ZERO and HOLE are reported only for bytes that read as zeros at
 * the instant of the query; where a device is not sure, it says DATA.
 */
public record BlockStatus(long offset, long length, Kind kind) {

    public enum Kind { DATA, ZERO, HOLE }

    public BlockStatus {
        if (offset < 0 || length <= 0) {
            throw new IllegalArgumentException("block status [" + offset + ", +" + length + ")");
        }
    }

    public long end() {
        return offset + length;
    }

    /**
     * Builds a block status answer for {@code [offset, offset + length)}: appended runs must be
     * consecutive; a run of the same kind as the last one extends it; at most {@code maxExtents}
     * extents are kept, and {@link #full()} says when no new kind fits any more.
     */
    public static final class Builder {
        private final long offset;
        private final long end;
        private final int maxExtents;
        private final List<BlockStatus> extents = new ArrayList<>();
        private long cursor;
        private boolean full;

        public Builder(long offset, long length, int maxExtents) {
            if (maxExtents < 1 || length <= 0) {
                throw new IllegalArgumentException("maxExtents " + maxExtents + ", length " + length);
            }
            this.offset = offset;
            this.end = offset + length;
            this.maxExtents = maxExtents;
            this.cursor = offset;
        }

        /** Where the next run must start. */
        public long cursor() {
            return cursor;
        }

        /** True when the answer is complete: the whole range is covered, or no further kind fits. */
        public boolean full() {
            return full || cursor >= end;
        }

        /**
         * Appends {@code [cursor(), cursor() + length)} of {@code kind} (clipped to the range);
         * ignored once {@link #full()}. Returns {@code this}.
         */
        public Builder add(long length, Kind kind) {
            if (full() || length <= 0) {
                return this;
            }
            long n = Math.min(length, end - cursor);
            int last = extents.size() - 1;
            if (last >= 0 && extents.get(last).kind() == kind) {
                BlockStatus l = extents.get(last);
                extents.set(last, new BlockStatus(l.offset(), l.length() + n, kind));
            } else if (extents.size() < maxExtents) {
                extents.add(new BlockStatus(cursor, n, kind));
            } else {
                full = true;
                return this;
            }
            cursor += n;
            return this;
        }

        /** Appends the extents of {@code answer} (consecutive from {@link #cursor()}) until {@link #full()}. */
        public Builder addAll(List<BlockStatus> answer) {
            for (BlockStatus s : answer) {
                if (full()) {
                    break;
                }
                if (s.offset() != cursor) {
                    throw new IllegalArgumentException("block status " + s + " does not start at " + cursor);
                }
                add(s.length(), s.kind());
            }
            return this;
        }

        /** Extents so far. */
        public int size() {
            return extents.size();
        }

        /** The answer: at least one extent (when something was added), starting at the range's offset. */
        public List<BlockStatus> build() {
            if (extents.isEmpty()) {
                throw new IllegalStateException("block status of [" + offset + ", " + end + ") is empty");
            }
            return List.copyOf(extents);
        }
    }
}
