package io.pmcache.cache;

import io.pmcache.backing.BackingDevice;
import io.pmcache.backing.FileBackingDevice;
import io.pmcache.format.Superblock;
import java.io.IOException;

/**
 * The cache was formatted for another backing device (size or identity differ). The one place
 * that decides whether a device is a cache's own and what an operator does when it is not
 * ({@link #mismatch}): opening refuses, the checker reports it apart from corruption (the cache
 * itself may be fine).
 */
public class WrongBackingDeviceException extends IOException {

    public WrongBackingDeviceException(String message) {
        super(message);
    }

    /**
     * Why a backing device is not the one a cache was formatted for, and what to do about it.
     *
     * @param reason   what differs, naming the device and both sizes or fingerprints
     * @param nextStep what an operator does about it (advice that works in that state: neither
     *                 {@code serve} nor {@code detach} opens the cache until the device is its own)
     */
    public record Mismatch(String reason, String nextStep) {
        @Override
        public String toString() {
            return reason;
        }
    }

    /**
     * Why {@code backing} is not the device the cache with superblock {@code sb} was formatted
     * for, or null when it is. The same device at another size (a file truncated or grown while
     * pmcache was stopped, a resized volume or export) is told apart from another device: the
     * advice differs.
     */
    public static Mismatch mismatch(Superblock sb, BackingDevice backing) {
        long want = sb.backingSize();
        long have = backing.size();
        if (sb.backingFingerprint() != backing.fingerprint()) {
            return new Mismatch("the cache was formatted for a backing device of " + want + " bytes with fingerprint "
                    + Long.toHexString(sb.backingFingerprint()) + ", but " + backing.describe() + " has "
                    + have + " bytes and fingerprint " + Long.toHexString(backing.fingerprint())
                    + " (another device or a copy)",
                    "give the backing file or device this cache was formatted for; a copied or restored backing "
                    + "file has a new fingerprint and is not the same device: write the cache back into the "
                    + "original with `pmcache detach --backing ORIGINAL`, or erase the cache with "
                    + "`pmcache format --force` (its dirty data is lost)");
        }
        if (want == have) {
            return null;
        }
        String regularFile = backing instanceof FileBackingDevice f && !f.isBlockDevice()
                ? shellWord(f.path().toAbsolutePath().toString()) : null;
        String name = backing instanceof FileBackingDevice f ? f.path().toString() : backing.describe();
        if (have < want) {
            return new Mismatch(name + " is " + have + " bytes, but the cache was formatted for it at "
                    + want + " bytes: it was shrunk since (the same device, fingerprint "
                    + Long.toHexString(backing.fingerprint()) + "), and writeback would write past its end",
                    (regularFile != null
                            ? "give the file its size back: `truncate -s " + want + " " + regularFile + "`"
                            : "give the device its size of " + want + " bytes back")
                    + ". The " + (want - have) + " bytes past byte " + have + " that the shrink cut off are lost "
                    + "and read as zeros, except what this cache holds of them: its dirty data, which writeback "
                    + "puts back, and clean copies, served until evicted (`pmcache invalidate` drops them); the "
                    + "rest of the device keeps its data. Then `pmcache serve` or `pmcache detach` opens the "
                    + "cache again");
        }
        return new Mismatch(name + " is " + have + " bytes, but the cache was formatted for it at "
                + want + " bytes: it was grown since (the same device, fingerprint "
                + Long.toHexString(backing.fingerprint()) + "), and a cache does not grow with its device",
                (regularFile != null
                        ? "give the file its old size back: `truncate -s " + want + " " + regularFile + "`"
                        : "give the device its old size of " + want + " bytes back")
                + " (what was written past byte " + want + " since it grew is lost; pmcache wrote nothing "
                + "there). To use the new size: `pmcache detach` the cache at the old size, grow the device, "
                + "and format the cache for it again (`pmcache format --force`, or for one volume of several "
                + "`pmcache volume remove` and `pmcache volume create`)");
    }

    /** {@code s} as one word a POSIX shell passes on unchanged. */
    private static String shellWord(String s) {
        return s.matches("[A-Za-z0-9_./:@%+=,-]+") ? s : "'" + s.replace("'", "'\\''") + "'";
    }
}
