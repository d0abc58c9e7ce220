package io.pmcache.os;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class ThreadNiceTest {
    /**
     * By so much above the process, and the calling thread's alone: other threads keep theirs, and
     * a thread started by a lowered one (which inherits its value) is not lowered twice.
     */
    @Test
    void lowersOnlyTheCallingThreadRelativeToTheProcess() throws Exception {
        assumeTrue(System.getProperty("os.name", "").startsWith("Linux"), "Linux only");
        int before = ThreadNice.currentThreadNice();
        AtomicBoolean lowered = new AtomicBoolean();
        AtomicInteger seen = new AtomicInteger(-1);
        AtomicInteger child = new AtomicInteger(-1);
        Thread t = Thread.ofPlatform().start(() -> {
            lowered.set(ThreadNice.lowerCurrentThread(7));
            seen.set(ThreadNice.currentThreadNice());
            Thread c = Thread.ofPlatform().start(() -> {
                ThreadNice.lowerCurrentThread(7);
                child.set(ThreadNice.currentThreadNice());
            });
            try {
                c.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        t.join();
        assertThat(lowered).isTrue();
        assertThat(seen.get()).isEqualTo(Math.min(19, before + 7));
        assertThat(child.get()).as("started by a lowered thread").isEqualTo(Math.min(19, before + 7));
        assertThat(ThreadNice.currentThreadNice()).as("this thread").isEqualTo(before);
    }
}
