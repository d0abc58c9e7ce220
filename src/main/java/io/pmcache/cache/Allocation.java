package io.pmcache.cache;

/**
 * Space handed out by a {@link DataHead}: {@code length} bytes at {@code offset} of segment
 * {@code segment} (generation {@code generation}). It holds one reference on the segment until
 * {@link SegmentTable#unref} is called for it, so the segment cannot be reclaimed while the data is
 * copied and its keys are appended.
 */
record Allocation(int segment, int offset, int length, long generation) {
}
