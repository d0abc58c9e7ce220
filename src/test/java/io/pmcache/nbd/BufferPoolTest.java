package io.pmcache.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
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
    void releasedBuffersAreReusedWithTheRequestedLimit() throws Exception {
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

    @Test
    void idleBuffersAreKeptUpToTheRetentionForAllSizesTogether() throws Exception {
        BufferPool pool = new BufferPool(64 << 10);
        ByteBuffer[] lent = new ByteBuffer[4];
        for (int i = 0; i < lent.length; i++) {
            lent[i] = pool.acquire(32 << 10);
        }
        for (ByteBuffer b : lent) {
            pool.release(b);
        }
        assertThat(pool.idleBytes()).as("two of four 32 KiB buffers fit in 64 KiB").isEqualTo(64 << 10);
    }

    @Test
    void anAllocationFailureDropsIdleBuffersRetriesOnceThenReports() throws Exception {
        AtomicInteger calls = new AtomicInteger();
        AtomicBoolean fail = new AtomicBoolean();
        BufferPool pool = new BufferPool(1 << 20, size -> {
            calls.incrementAndGet();
            if (fail.get()) {
                throw new OutOfMemoryError("Cannot reserve " + size + " bytes of direct buffer memory");
            }
            return ByteBuffer.allocateDirect(size);
        });
        pool.release(pool.acquire(4096));
        pool.release(pool.acquire(16384));
        assertThat(pool.idleBytes()).isEqualTo(4096 + 16384);
        fail.set(true);
        assertThat(pool.acquire(100).capacity()).as("an idle buffer needs no allocation").isEqualTo(4096);
        calls.set(0);
        assertThatThrownBy(() -> pool.acquire(8192)).isInstanceOf(BufferPool.OutOfBuffers.class)
                .hasMessageContaining("8192");
        assertThat(calls.get()).as("tried, dropped the idle buffers, tried again").isEqualTo(2);
        assertThat(pool.idleBytes()).isZero();
    }
}
