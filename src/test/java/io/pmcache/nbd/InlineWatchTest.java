package io.pmcache.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class InlineWatchTest {

    /** A timer whose ticks the test runs by hand. */
    private static final class ManualTimer extends ScheduledThreadPoolExecutor {
        final List<Runnable> ticks = new ArrayList<>();

        ManualTimer() {
            super(1);
        }

        @Override
        public ScheduledFuture<?> schedule(Runnable command, long delay, TimeUnit unit) {
            ticks.add(command);
            return null;
        }

        void tick() {
            ticks.removeFirst().run();
        }
    }

    /**
     * Requests that start between ticks (queue depth 1: between two requests no run is in progress
     * when the tick comes) keep the timer armed, so they schedule nothing themselves; it disarms
     * after a tick with no start, and the next start arms it again.
     */
    @Test
    void requestsBetweenTicksKeepTheTimerArmedAndAnIdleTickDisarmsIt() {
        ManualTimer timer = new ManualTimer();
        try {
            InlineWatch watch = new InlineWatch(timer, Set.of(), 1_000_000L);
            watch.inlineStarted();
            assertEquals(1, timer.ticks.size(), "the first inline request arms the timer");
            for (int i = 0; i < 5; i++) {
                watch.inlineStarted();
                watch.inlineStarted();
                assertEquals(1, timer.ticks.size(), "armed: a request schedules nothing");
                timer.tick();
                assertEquals(1, timer.ticks.size(), "a tick after starts stays armed");
            }
            timer.tick(); // the starts before it were seen by the previous tick
            assertEquals(0, timer.ticks.size(), "a tick with no start since the last one disarms");
            watch.inlineStarted();
            assertEquals(1, timer.ticks.size(), "the next start arms it again");
        } finally {
            timer.shutdownNow();
        }
    }
}
