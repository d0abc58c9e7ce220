package io.pmcache.backing;

import io.pmcache.backing.FaultyBackingDevice.Op;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class FaultyBackingDeviceTest {

    private final MemoryBackingDevice memory = new MemoryBackingDevice(1 << 16, 7);
    private final FaultyBackingDevice faulty = new FaultyBackingDevice(memory);
    private final MemorySegment one = MemorySegment.ofArray(new byte[] {1});

    @Test
    void failNextFailsExactlyThatManyCallsWithoutTouchingTheDelegate() throws IOException {
        faulty.failNext(Op.WRITE, 2);
        assertThatThrownBy(() -> faulty.write(0, one, false)).hasMessageStartingWith("injected EIO");
        assertThatThrownBy(() -> faulty.writeZeroes(0, 1, false)).hasMessageStartingWith("injected EIO");
        assertThat(memory.writeCount()).isZero();
        faulty.write(0, one, false);
        assertThat(memory.toByteArray()[0]).isEqualTo((byte) 1);
        assertThat(faulty.injectedFailures(Op.WRITE)).isEqualTo(2);
        assertThat(faulty.injectedFailures()).isEqualTo(2);
    }

    @Test
    void failAlwaysLastsUntilHealedAndOnlyForThatOp() throws IOException {
        faulty.failAlways(Op.FLUSH);
        for (int i = 0; i < 5; i++) {
            assertThatThrownBy(faulty::flush).isInstanceOf(IOException.class);
        }
        faulty.write(0, one, false);
        faulty.read(0, MemorySegment.ofArray(new byte[1]));
        assertThat(memory.flushCount()).isZero();
        faulty.heal();
        faulty.flush();
        assertThat(memory.flushCount()).isEqualTo(1);
        assertThat(faulty.injectedFailures(Op.FLUSH)).isEqualTo(5);
    }

    @Test
    void readsAndTrimsCanFail() {
        faulty.failAlways(Op.READ).failAlways(Op.TRIM);
        assertThatThrownBy(() -> faulty.read(0, MemorySegment.ofArray(new byte[1]))).isInstanceOf(IOException.class);
        assertThatThrownBy(() -> faulty.trim(0, 1)).isInstanceOf(IOException.class);
        assertThat(faulty.injectedFailures()).isEqualTo(2);
        assertThat(faulty.fingerprint()).isEqualTo(7);
        assertThat(faulty.size()).isEqualTo(1 << 16);
    }

    @Test
    void stallDelaysEveryCall() throws IOException {
        faulty.stall(Duration.ofMillis(30));
        long t0 = System.nanoTime();
        faulty.flush();
        assertThat(System.nanoTime() - t0).isGreaterThanOrEqualTo(Duration.ofMillis(30).toNanos());
        faulty.stall(Duration.ZERO);
        assertThat(memory.flushCount()).isEqualTo(1);
    }

    @Test
    void memoryDeviceCountsFlushesIncludingFua() throws IOException {
        memory.write(0, one, true);
        memory.flush();
        memory.writeZeroes(0, 1, true);
        assertThat(memory.flushCount()).isEqualTo(3);
        assertThat(memory.writeCount()).isEqualTo(2);
        assertThat(memory.fingerprint()).isEqualTo(7);
        memory.close();
        assertThatThrownBy(memory::flush).isInstanceOf(IOException.class).hasMessageContaining("closed");
    }
}
