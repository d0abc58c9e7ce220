package io.pmcache.device;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.pmcache.device.BlockStatus.Kind;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The answer builder: merges runs of one kind, clips to the range, stops at the extent limit. */
class BlockStatusTest {

    @Test
    void mergesRunsOfOneKindAndClipsToTheRange() {
        var b = new BlockStatus.Builder(100, 50, 8);
        b.add(10, Kind.HOLE).add(5, Kind.HOLE).add(20, Kind.DATA).add(1000, Kind.ZERO);
        assertThat(b.full()).isTrue();
        assertThat(b.build()).containsExactly(new BlockStatus(100, 15, Kind.HOLE), new BlockStatus(115, 20, Kind.DATA),
                new BlockStatus(135, 15, Kind.ZERO));
    }

    @Test
    void stopsAtTheExtentLimitButStillMergesTheLastKind() {
        var b = new BlockStatus.Builder(0, 100, 2);
        b.add(10, Kind.DATA).add(10, Kind.HOLE).add(10, Kind.HOLE);
        assertThat(b.full()).isFalse();
        b.add(10, Kind.DATA).add(10, Kind.HOLE);
        assertThat(b.full()).isTrue();
        assertThat(b.cursor()).isEqualTo(30);
        assertThat(b.build()).containsExactly(new BlockStatus(0, 10, Kind.DATA), new BlockStatus(10, 20, Kind.HOLE));
    }

    @Test
    void addAllTakesConsecutiveExtentsUntilFull() {
        var b = new BlockStatus.Builder(0, 100, 2);
        b.addAll(List.of(new BlockStatus(0, 10, Kind.ZERO), new BlockStatus(10, 10, Kind.DATA),
                new BlockStatus(20, 10, Kind.HOLE)));
        assertThat(b.build()).hasSize(2);
        var c = new BlockStatus.Builder(0, 100, 4);
        assertThatThrownBy(() -> c.addAll(List.of(new BlockStatus(5, 10, Kind.DATA))))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void anEmptyAnswerIsABug() {
        assertThatThrownBy(() -> new BlockStatus.Builder(0, 10, 1).build()).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> new BlockStatus.Builder(0, 0, 1)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new BlockStatus(0, 0, Kind.DATA)).isInstanceOf(IllegalArgumentException.class);
    }
}
