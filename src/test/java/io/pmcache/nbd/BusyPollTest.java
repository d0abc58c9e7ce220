package io.pmcache.nbd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import org.junit.jupiter.api.Test;

/** The busy-poll rule (BusyPoll's class comment), without sockets or clocks. */
class BusyPollTest {

    @Test
    void aConnectionStopsSpinningAfterTwoMissesAndStartsAgainWhenTheClientIsFastAgain() {
        NbdStats stats = new NbdStats();
        BusyPoll poll = new BusyPoll(Duration.ofNanos(50_000), 4, stats);
        BusyPoll.Gate gate = poll.gate();

        assertThat(gate.begin()).as("a new connection spins").isTrue();
        gate.end(false);
        assertThat(gate.begin()).as("one miss: still spins").isTrue();
        gate.end(false);
        assertThat(gate.begin()).as("two misses in a row: the client is slower than the window").isFalse();

        gate.slept(200_000);
        assertThat(gate.begin()).as("a sleep longer than the window does not re-arm").isFalse();
        gate.slept(20_000);
        assertThat(gate.begin()).as("bytes within the window of a sleep re-arm it").isTrue();
        gate.end(true);
        assertThat(gate.begin()).isTrue();
        gate.end(false);
        assertThat(gate.begin()).as("a hit reset the misses: one miss since").isTrue();
        gate.end(true);
        assertThat(stats.snapshot().busyPolls()).as("spins counted").isEqualTo(5);
        assertThat(stats.snapshot().busyPollHits()).as("spins that read something").isEqualTo(2);
    }

    @Test
    void aReaderWhoseLastReadsBroughtSeveralRequestsDoesNotSpin() {
        BusyPoll.Gate gate = new BusyPoll(Duration.ofNanos(50_000), 4, new NbdStats()).gate();

        gate.requestsRead(0);
        assertThat(gate.begin()).as("no request yet (a new connection, a request read in parts)").isTrue();
        gate.end(true);
        gate.requestsRead(1);
        assertThat(gate.begin()).as("one: the client may be waiting for its reply (queue depth 1)").isTrue();
        gate.end(true);
        gate.requestsRead(5);
        assertThat(gate.begin()).as("several: the client pipelines, its next requests come anyway")
                .isFalse();
        gate.requestsRead(1);
        assertThat(gate.begin()).as("one again").isTrue();
        gate.end(true);
    }

    @Test
    void atMostTheServerWideNumberOfReadersSpinAtOnce() {
        BusyPoll poll = new BusyPoll(Duration.ofNanos(50_000), 1, new NbdStats());
        BusyPoll.Gate a = poll.gate();
        BusyPoll.Gate b = poll.gate();

        assertThat(a.begin()).isTrue();
        assertThat(b.begin()).as("the one spinner slot is taken").isFalse();
        a.end(true);
        assertThat(b.begin()).as("free again").isTrue();
        b.end(true);
        assertThat(a.begin()).as("a refused begin left no slot taken").isTrue();
        a.end(true);
    }

    @Test
    void offNeverSpins() {
        assertThat(BusyPoll.OFF.gate().begin()).isFalse();
        assertThat(BusyPoll.of(Duration.ZERO, new NbdStats())).isSameAs(BusyPoll.OFF);
    }

    @Test
    void theWindowIsBounded() {
        assertThatThrownBy(() -> BusyPoll.of(Duration.ofMillis(2), new NbdStats()))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("0..1000 µs, got 2000 µs");
        assertThatThrownBy(() -> BusyPoll.of(Duration.ofNanos(-1), new NbdStats())).isInstanceOf(IllegalArgumentException.class);
        assertThat(BusyPoll.of(BusyPoll.MAX_WINDOW, new NbdStats()).windowNanos()).isEqualTo(1_000_000);
    }
}
