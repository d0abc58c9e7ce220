package io.pmcache.backing;

import io.pmcache.device.BlockDevice;
import io.pmcache.device.BlockDeviceContractTest;

class MemoryBackingDeviceContractTest extends BlockDeviceContractTest {
    @Override
    protected BlockDevice newDevice(long size) {
        return new MemoryBackingDevice(size, 42);
    }

    /** The decorator with no faults switched on must be a transparent block device. */
    static class HealthyFaulty extends BlockDeviceContractTest {
        @Override
        protected BlockDevice newDevice(long size) {
            return new FaultyBackingDevice(new MemoryBackingDevice(size, 42));
        }
    }
}
