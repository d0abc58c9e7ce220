package io.pmcache.backing;

import io.pmcache.device.BlockDevice;

import java.io.IOException;

/** The file contract with hole punching off: trim and writeZeroes take the write-zeros fallback. */
class FileBackingDeviceNoPunchContractTest extends FileBackingDeviceContractTest {
    @Override
    protected BlockDevice newDevice(long size) throws IOException {
        FileBackingDevice d = (FileBackingDevice) super.newDevice(size);
        d.disableHolePunching();
        return d;
    }
}
