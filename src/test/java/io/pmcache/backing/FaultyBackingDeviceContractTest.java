package io.pmcache.backing;

import io.pmcache.device.BlockDevice;
import io.pmcache.device.BlockDeviceContractTest;

/** The decorator with no faults switched on must be a transparent block device. */
class FaultyBackingDeviceContractTest extends BlockDeviceContractTest {
    @Override
    protected BlockDevice newDevice(long size) {
        return new FaultyBackingDevice(new MemoryBackingDevice(size, 42));
    }
}
