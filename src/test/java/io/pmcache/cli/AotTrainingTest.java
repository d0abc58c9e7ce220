package io.pmcache.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The training run of bin/pmcache-aot completes on a small log (it throws when a replay misses a
 * key or a read returns other data: both checked inside) and leaves nothing behind in its DIR.
 */
class AotTrainingTest {
    @Test
    void trainsOnASmallLogAndRemovesItsFiles(@TempDir Path dir) throws Exception {
        AotTraining.main(new String[] {dir.toString(), "4096"});
        try (Stream<Path> left = Files.list(dir)) {
            assertThat(left).isEmpty();
        }
    }
}
