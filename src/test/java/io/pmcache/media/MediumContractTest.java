package io.pmcache.media;

import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The contract every {@link Medium} passes. A subclass supplies {@link #newMedium(long)}; sizes
 * come from {@link #mediumSize()} (override it to test e.g. sizes that are not page multiples).
 */
@ExtendWith(RandomSeed.class)
public abstract class MediumContractTest {

    private final List<Medium> opened = new ArrayList<>();

    /** A new, zero-filled medium of exactly {@code size} bytes. */
    protected abstract Medium newMedium(long size) throws IOException;

    /** The size the tests use. */
    protected long mediumSize() {
        return 1 << 20;
    }

    /** Opens a medium that {@link #closeAll()} closes after the test. */
    protected final Medium open(long size) throws IOException {
        Medium m = newMedium(size);
        opened.add(m);
        return m;
    }

    @AfterEach
    final void closeAll() throws IOException {
        for (Medium m : opened) {
            m.close();
        }
    }

    @Test
    void sizeMatchesRequestAndSegment() throws IOException {
        Medium m = open(mediumSize());
        assertThat(m.size()).isEqualTo(mediumSize());
        assertThat(m.segment().byteSize()).isEqualTo(mediumSize());
    }

    @Test
    void newMediumReadsZeros() throws IOException {
        Medium m = open(mediumSize());
        assertThat(MemorySegment.mismatch(m.segment(), 0, m.size(),
                MemorySegment.ofArray(new byte[(int) m.size()]), 0, m.size())).isEqualTo(-1);
    }

    @Test
    void readYourWritesAcrossTheWholeRange(Seed seed) throws IOException {
        Medium m = open(mediumSize());
        byte[] model = new byte[(int) m.size()];
        seed.random().nextBytes(model);
        MemorySegment.copy(model, 0, m.segment(), ValueLayout.JAVA_BYTE, 0, model.length);
        m.segment().set(ValueLayout.JAVA_BYTE, m.size() - 1, (byte) 0x5a);
        model[model.length - 1] = 0x5a;
        m.segment().set(ValueLayout.JAVA_BYTE, 0, (byte) 0xa5);
        model[0] = (byte) 0xa5;
        assertThat(m.segment().toArray(ValueLayout.JAVA_BYTE)).isEqualTo(model);
    }

    @Test
    void persistAcceptsWholeAndEmptyRanges() throws IOException {
        Medium m = open(mediumSize());
        m.segment().fill((byte) 7);
        assertThatCode(() -> {
            m.persist(0, m.size());
            m.persist(0, 0);
            m.persist(m.size(), 0);
            m.persist(m.size() - 1, 1);
        }).doesNotThrowAnyException();
        assertThat(m.segment().get(ValueLayout.JAVA_BYTE, m.size() - 1)).isEqualTo((byte) 7);
    }

    @Test
    void persistRejectsRangesOutsideTheMedium() throws IOException {
        Medium m = open(mediumSize());
        long size = m.size();
        assertThatThrownBy(() -> m.persist(-1, 1)).isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> m.persist(0, -1)).isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> m.persist(0, size + 1)).isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> m.persist(size, 1)).isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> m.persist(size + 1, 0)).isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> m.persist(Long.MAX_VALUE, Long.MAX_VALUE)).isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> m.persist(1, Long.MAX_VALUE)).isInstanceOf(IndexOutOfBoundsException.class);
    }

    @Test
    void persistOfUnalignedRangesKeepsTheData(Seed seed) throws IOException {
        Medium m = open(mediumSize());
        SplittableRandom r = seed.random();
        byte[] model = new byte[(int) m.size()];
        for (int i = 0; i < 200; i++) {
            int off = r.nextInt(model.length);
            int len = r.nextInt(Math.min(model.length - off, 10_000) + 1);
            byte[] data = new byte[len];
            r.nextBytes(data);
            System.arraycopy(data, 0, model, off, len);
            MemorySegment.copy(data, 0, m.segment(), ValueLayout.JAVA_BYTE, off, len);
            m.persist(off, len);
        }
        assertThat(m.segment().toArray(ValueLayout.JAVA_BYTE)).isEqualTo(model);
    }

    @Test
    void describeIsNotBlank() throws IOException {
        assertThat(open(mediumSize()).describe()).isNotBlank();
    }

    @Test
    void closeIsIdempotentAndEndsAccess() throws IOException {
        Medium m = newMedium(mediumSize());
        MemorySegment seg = m.segment();
        m.close();
        m.close();
        assertThatThrownBy(() -> seg.get(ValueLayout.JAVA_BYTE, 0)).isInstanceOf(IllegalStateException.class);
    }
}
