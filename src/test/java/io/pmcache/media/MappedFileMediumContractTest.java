package io.pmcache.media;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

class MappedFileMediumContractTest extends MediumContractTest {

    private final AtomicInteger files = new AtomicInteger();
    protected Path dir;

    /** A scratch directory in /dev/shm when present (tmpfs: no disk I/O), else java.io.tmpdir. */
    static Path scratchDir() throws IOException {
        Path shm = Path.of("/dev/shm");
        return Files.isDirectory(shm) && Files.isWritable(shm)
                ? Files.createTempDirectory(shm, "pmcache-test-")
                : Files.createTempDirectory("pmcache-test-");
    }

    static void deleteTree(Path dir) throws IOException {
        if (dir == null || !Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    @BeforeEach
    void makeDir() throws IOException {
        dir = scratchDir();
    }

    @AfterEach
    void removeDir() throws IOException {
        deleteTree(dir);
    }

    @Override
    protected Medium newMedium(long size) throws IOException {
        return MappedFileMedium.create(dir.resolve("medium-" + files.incrementAndGet()), size);
    }
}
