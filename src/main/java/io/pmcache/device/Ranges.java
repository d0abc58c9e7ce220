package io.pmcache.device;

/** Range checks shared by every {@link BlockDevice} implementation. */
public final class Ranges {
    private Ranges() {
    }

    /** Throws {@link IllegalArgumentException} unless {@code [offset, offset+length)} lies in the device. */
    public static void check(BlockDevice device, long offset, long length) {
        check(device.size(), offset, length);
    }

    /** Throws {@link IllegalArgumentException} unless {@code [offset, offset+length)} lies in {@code [0, size)}. */
    public static void check(long size, long offset, long length) {
        if (offset < 0 || length < 0 || offset > size || length > size - offset) {
            throw new IllegalArgumentException(
                    "range [" + offset + ", +" + length + ") is outside the device of " + size + " bytes");
        }
    }
}
