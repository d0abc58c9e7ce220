package io.pmcache.media;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The medium contract for a volume's view of a medium: a region at an offset that is neither a line
 * nor a page multiple, between bytes of its parent that it must not touch. The parent is a
 * {@link PowerCutMedium}, so a persist is seen where it lands in the parent.
 */
class MediumRegionContractTest extends MediumContractTest {
    /** Before and after the region: the parent's bytes there stay this. */
    private static final byte OUTSIDE = (byte) 0xee;
    private static final long OFFSET = 4096 + 64 + 8;

    private final List<PowerCutMedium> parents = new ArrayList<>();

    @Override
    protected Medium newMedium(long size) {
        PowerCutMedium parent = PowerCutMedium.create(OFFSET + size + 100);
        parent.segment().fill(OUTSIDE);
        parent.segment().asSlice(OFFSET, size).fill((byte) 0);
        parents.add(parent);
        return new MediumRegion(parent, OFFSET, size, "v");
    }

    @AfterEach
    void closeParents() {
        parents.forEach(PowerCutMedium::close);
    }

    /** A region is not its parent's owner: closing it (twice) leaves the parent, and the view, usable. */
    @Override
    @Test
    void closeIsIdempotentAndEndsAccess() throws IOException {
        Medium m = newMedium(mediumSize());
        m.close();
        m.close();
        m.segment().set(ValueLayout.JAVA_BYTE, 0, (byte) 1);
        assertThat(parents.getLast().segment().get(ValueLayout.JAVA_BYTE, OFFSET)).isEqualTo((byte) 1);
    }

    @Test
    void persistLandsAtTheRegionsOffsetInTheParentAndWritesStayInside() throws IOException {
        Medium m = open(mediumSize());
        PowerCutMedium parent = parents.getLast();
        List<long[]> seen = new ArrayList<>();
        parent.observePersists((medium, index, offset, length) -> seen.add(new long[] {offset, length}));
        m.segment().fill((byte) 3);
        m.persist(10, 100);
        assertThat(seen).singleElement().satisfies(r -> assertThat(r).containsExactly(OFFSET + 10, 100));
        MemorySegment p = parent.segment();
        assertThat(p.get(ValueLayout.JAVA_BYTE, OFFSET - 1)).isEqualTo(OUTSIDE);
        assertThat(p.get(ValueLayout.JAVA_BYTE, OFFSET + m.size())).isEqualTo(OUTSIDE);
        assertThat(parent.persistedImage().get(ValueLayout.JAVA_BYTE, OFFSET + 10)).isEqualTo((byte) 3);
    }
}
