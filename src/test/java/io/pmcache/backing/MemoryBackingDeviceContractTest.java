package io.pmcache.backing;

import io.pmcache.device.BlockDevice;
import io.pmcache.device.BlockDeviceContractTest;

class MemoryBackingDeviceContractTest extends BlockDeviceContractTest {
    @Override
    protected BlockDevice newDevice(long size) {
        return new MemoryBackingDevice(size, 42);
    }
}
