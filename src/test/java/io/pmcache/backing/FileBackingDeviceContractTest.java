package io.pmcache.backing;

import io.pmcache.device.BlockDevice;
import io.pmcache.device.BlockDeviceContractTest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

class FileBackingDeviceContractTest extends BlockDeviceContractTest {

    private final AtomicInteger files = new AtomicInteger();
    private Path dir;

    @BeforeEach
    void makeDir() throws IOException {
        dir = Files.createTempDirectory("pmcache-backing-");
    }

    @AfterEach
    void removeDir() throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    @Override
    protected BlockDevice newDevice(long size) throws IOException {
        return FileBackingDevice.createSparse(dir.resolve("backing-" + files.incrementAndGet()), size);
    }

    @Override
    protected BlockDevice reopen(BlockDevice device) throws IOException {
        FileBackingDevice f = (FileBackingDevice) device;
        f.close();
        return FileBackingDevice.open(f.path(), false);
    }
}
