package io.pmcache.backing;

import io.pmcache.device.BlockDevice;
import io.pmcache.device.BlockDeviceContractTest;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;

class FileBackingDeviceContractTest extends BlockDeviceContractTest {

    private final AtomicInteger files = new AtomicInteger();
    @TempDir
    Path dir;

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
