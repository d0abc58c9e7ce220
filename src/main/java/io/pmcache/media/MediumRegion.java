package io.pmcache.media;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * A view of {@code [offset, offset + size)} of another {@link Medium} as a medium of its own: what a
 * volume's cache sees. Offsets are relative to the region; {@link #persist} bounds-checks against the
 * region and forwards to the parent, so a volume can neither read, write nor persist outside its
 * share. {@link #close()} does nothing: the parent's owner closes the parent.
 */
public final class MediumRegion implements Medium {
    private final Medium parent;
    private final long offset;
    private final long size;
    private final String name;
    private final MemorySegment segment;

    /** {@code name} appears in {@link #describe()} (e.g. the volume's name). */
    public MediumRegion(Medium parent, long offset, long size, String name) {
        this.parent = Objects.requireNonNull(parent, "parent");
        Objects.checkFromIndexSize(offset, size, parent.size());
        this.offset = offset;
        this.size = size;
        this.name = Objects.requireNonNull(name, "name");
        this.segment = parent.segment().asSlice(offset, size);
    }

    public Medium parent() {
        return parent;
    }

    public long offset() {
        return offset;
    }

    @Override
    public MemorySegment segment() {
        return segment;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public void persist(long off, long length) {
        Objects.checkFromIndexSize(off, length, size);
        parent.persist(offset + off, length);
    }

    @Override
    public String describe() {
        return parent.describe() + " volume " + name;
    }

    @Override
    public void close() {
        // the parent is not ours
    }
}
