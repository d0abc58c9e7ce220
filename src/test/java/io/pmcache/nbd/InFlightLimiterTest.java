package io.pmcache.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class InFlightLimiterTest {
    @Test
    void blocksAtTheRequestBoundUntilARelease() throws Exception {
        InFlightLimiter limiter = new InFlightLimiter(2, 1 << 20);
        assertThat(limiter.acquire(10)).isTrue();
        assertThat(limiter.acquire(10)).isTrue();
        CountDownLatch acquired = new CountDownLatch(1);
        Thread waiter = Thread.ofVirtual().start(() -> {
            try {
                limiter.acquire(10);
                acquired.countDown();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        assertThat(acquired.getCount()).isEqualTo(1);
        assertThat(limiter.inFlight()).isEqualTo(2);
        limiter.release(10);
        acquired.await();
        waiter.join();
        assertThat(limiter.inFlight()).isEqualTo(2);
    }

    @Test
    void byteBoundLetsOneOversizedRequestThroughAlone() throws Exception {
        InFlightLimiter limiter = new InFlightLimiter(100, 1000);
        assertThat(limiter.acquire(5000)).isTrue();
        limiter.release(5000);
        assertThat(limiter.awaitIdle(0)).isTrue();
        assertThat(limiter.acquire(600)).isTrue();
        assertThat(limiter.awaitIdle(0)).isFalse();
        limiter.cancel();
        assertThat(limiter.acquire(600)).as("cancelled instead of waiting for room").isFalse();
    }

    @Test
    void rejectsNonPositiveLimits() {
        assertThatThrownBy(() -> new InFlightLimiter(0, 1)).isInstanceOf(IllegalArgumentException.class);
    }
}
