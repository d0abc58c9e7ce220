package io.pmcache.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

class BufferPoolTest {
    @Test
    void sizeClassesArePowersOfTwoFrom4KiB() {
        assertThat(BufferPool.shiftFor(1)).isEqualTo(12);
        assertThat(BufferPool.shiftFor(4096)).isEqualTo(12);
        assertThat(BufferPool.shiftFor(4097)).isEqualTo(13);
        assertThat(BufferPool.shiftFor(32 << 20)).isEqualTo(25);
        assertThatThrownBy(() -> BufferPool.shiftFor((32 << 20) + 1)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> BufferPool.shiftFor(0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void releasedBuffersAreReusedWithTheRequestedLimit() {
        BufferPool pool = new BufferPool(1 << 20);
        ByteBuffer a = pool.acquire(5000);
        assertThat(a.isDirect()).isTrue();
        assertThat(a.capacity()).isEqualTo(8192);
        assertThat(a.position()).isZero();
        assertThat(a.limit()).isEqualTo(5000);
        a.position(100);
        pool.release(a);
        ByteBuffer b = pool.acquire(6000);
        assertThat(b).isSameAs(a);
        assertThat(b.position()).isZero();
        assertThat(b.limit()).isEqualTo(6000);
    }
}
