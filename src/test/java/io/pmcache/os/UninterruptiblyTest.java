package io.pmcache.os;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class UninterruptiblyTest {
    /** An interrupt during the wait neither ends it nor is lost: the flag is set again after. */
    @Test
    void waitsThroughAnInterruptAndRestoresIt() throws Exception {
        CompletableFuture<String> f = new CompletableFuture<>();
        CountDownLatch latch = new CountDownLatch(1);
        CompletableFuture<Object[]> seen = new CompletableFuture<>();
        Thread t = Thread.ofPlatform().start(() -> {
            try {
                String v = Uninterruptibly.get(f);
                boolean afterGet = Thread.interrupted();
                Thread.currentThread().interrupt();
                Uninterruptibly.await(latch);
                seen.complete(new Object[] {v, afterGet, Thread.currentThread().isInterrupted()});
            } catch (ExecutionException e) {
                seen.completeExceptionally(e);
            }
        });
        while (t.getState() != Thread.State.WAITING) {
            Thread.onSpinWait();
        }
        t.interrupt();
        f.complete("done");
        latch.countDown();
        Object[] r = seen.get(30, TimeUnit.SECONDS);
        assertThat(r).containsExactly("done", true, true);
    }

    @Test
    void passesTheFailureOn() {
        CompletableFuture<String> f = CompletableFuture.failedFuture(new IllegalStateException("boom"));
        assertThatThrownBy(() -> Uninterruptibly.get(f)).isInstanceOf(ExecutionException.class)
                .hasCauseInstanceOf(IllegalStateException.class);
    }
}
