package io.pmcache.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(60)
class PayloadBudgetTest {
    private static final long MIB = 1 << 20;

    @Test
    void waitersAreServedInArrivalOrderSoALargeRequestIsNotStarved() throws Exception {
        PayloadBudget budget = new PayloadBudget(32 * MIB);
        assertThat(budget.tryAcquire(30 * MIB)).isTrue();
        List<String> order = new CopyOnWriteArrayList<>();
        Thread large = Thread.ofVirtual().start(() -> take(budget, 32 * MIB, "large", order));
        NbdFaultPathsTest.await("the large request waits", () -> large.getState() == Thread.State.WAITING);
        assertThat(budget.tryAcquire(MIB)).as("1 MiB is free, but someone waits first").isFalse();
        Thread small = Thread.ofVirtual().start(() -> take(budget, MIB, "small", order));
        NbdFaultPathsTest.await("the small request waits", () -> small.getState() == Thread.State.WAITING);
        budget.release(30 * MIB);
        large.join();
        assertThat(order).containsExactly("large");
        budget.release(32 * MIB);
        small.join();
        assertThat(order).containsExactly("large", "small");
        assertThat(budget.used()).isEqualTo(MIB);
    }

    @Test
    void closeAndGivingUpEndWaits() throws Exception {
        PayloadBudget budget = new PayloadBudget(32 * MIB);
        assertThat(budget.tryAcquire(32 * MIB)).isTrue();
        AtomicBoolean gone = new AtomicBoolean();
        boolean[] got = {true, true};
        Thread quitter = Thread.ofVirtual().start(() -> got[0] = acquire(budget, MIB, gone::get));
        Thread stopped = Thread.ofVirtual().start(() -> got[1] = acquire(budget, MIB, () -> false));
        NbdFaultPathsTest.await("both wait", () -> quitter.getState() == Thread.State.WAITING
                && stopped.getState() == Thread.State.WAITING);
        gone.set(true);
        budget.wake();
        quitter.join();
        assertThat(got[0]).as("its connection closed").isFalse();
        budget.close();
        stopped.join();
        assertThat(got[1]).as("the server stops").isFalse();
        assertThat(budget.tryAcquire(1)).isFalse();
        assertThat(budget.used()).isEqualTo(32 * MIB);
    }

    @Test
    void aBudgetMustHoldOneLargestRequest() {
        assertThatThrownBy(() -> new PayloadBudget(NbdConstants.MAX_PAYLOAD_SIZE - 1))
                .isInstanceOf(IllegalArgumentException.class);
    }

    private static void take(PayloadBudget budget, long n, String name, List<String> order) {
        if (acquire(budget, n, () -> false)) {
            order.add(name);
        }
    }

    private static boolean acquire(PayloadBudget budget, long n, java.util.function.BooleanSupplier giveUp) {
        try {
            return budget.acquire(n, giveUp);
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }
}
