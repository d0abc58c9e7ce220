package io.pmcache.backing;

import io.pmcache.device.BlockDevice;

/**
 * The slow device behind the cache. Beyond {@link BlockDevice} it has an identity, recorded in
 * the cache's superblock at format time so that a cache never opens against another device.
 */
public interface BackingDevice extends BlockDevice {

    /**
     * A 64-bit fingerprint of this device's identity (for a file: its device and inode numbers),
     * stable across restarts and renames, different for a different device or a copy.
     */
    long fingerprint();

    /** Human description for logs and errors, e.g. the path. */
    String describe();
}
