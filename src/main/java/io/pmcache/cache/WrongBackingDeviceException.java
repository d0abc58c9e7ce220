package io.pmcache.cache;

import io.pmcache.backing.BackingDevice;
import io.pmcache.format.Superblock;
import java.io.IOException;

/**
 * The cache was formatted for another backing device (size or identity differ). The one place
 * that decides whether a device is a cache's own ({@link #mismatch}): opening refuses, the checker
 * reports it apart from corruption (the cache itself may be fine).
 */
public class WrongBackingDeviceException extends IOException {
    /** What an operator does about it. */
    public static final String NEXT_STEP = "give the backing file or device this cache was formatted for "
            + "(`pmcache status --cache CACHE` shows its size and fingerprint); a copied or restored backing file "
            + "has a new fingerprint and is not the same device: write the cache back into the original with "
            + "`pmcache detach`, or erase the cache with `pmcache format --force` (its dirty data is lost)";

    public WrongBackingDeviceException(String message) {
        super(message);
    }

    /**
     * Why {@code backing} is not the device the cache with superblock {@code sb} was formatted
     * for, or null when it is.
     */
    public static String mismatch(Superblock sb, BackingDevice backing) {
        if (sb.backingSize() == backing.size() && sb.backingFingerprint() == backing.fingerprint()) {
            return null;
        }
        return "the cache was formatted for a backing device of " + sb.backingSize() + " bytes with fingerprint "
                + Long.toHexString(sb.backingFingerprint()) + ", but " + backing.describe() + " has "
                + backing.size() + " bytes and fingerprint " + Long.toHexString(backing.fingerprint());
    }
}
