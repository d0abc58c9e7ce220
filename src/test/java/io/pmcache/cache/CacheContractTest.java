package io.pmcache.cache;

import io.pmcache.device.BlockDevice;
import io.pmcache.device.BlockDeviceContractTest;
import java.io.IOException;

/** The cache behaves exactly like a disk. */
class CacheContractTest extends BlockDeviceContractTest {
    @Override
    protected BlockDevice newDevice(long size) throws IOException {
        return CacheHarness.create(16, size, CacheOptions.defaults().withParallel(2), false);
    }

    @Override
    protected BlockDevice reopen(BlockDevice device) throws IOException {
        ((CacheHarness) device).reopen();
        return device;
    }
}
