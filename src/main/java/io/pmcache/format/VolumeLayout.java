package io.pmcache.format;

/**
 * Where each record of a volume medium lives.
 *
 * <pre>
 * offset        size        contents
 * 0             4 KiB       {@link MediumHeader} (64 bytes used)
 * 4096          64 KiB      volume table slot 0 ({@link VolumeTable})
 * 69632         64 KiB      volume table slot 1
 * 2 MiB         the rest    volume regions: each [offset, offset + size), 2 MiB aligned, laid out
 *                           like a single-cache medium ({@link Layout}) from its own offset 0
 * </pre>
 *
 * Regions are 2 MiB aligned and sized so that a region starts on a huge-page (PMD) boundary of a
 * DAX mapping, and every page msync covers belongs to one volume.
 */
public final class VolumeLayout {
    private VolumeLayout() {
    }

    public static final long TABLE_SLOT0 = 4096;
    public static final int TABLE_SLOT_SIZE = 64 << 10;
    public static final long TABLE_SLOT1 = TABLE_SLOT0 + TABLE_SLOT_SIZE;
    /** Region alignment (and granularity of their sizes). */
    public static final long REGION_ALIGN = 2L << 20;
    /** Where the first region may start. */
    public static final long DATA_START = REGION_ALIGN;

    public static long slotOffset(int slot) {
        return slot == 0 ? TABLE_SLOT0 : TABLE_SLOT1;
    }

    /** {@code size} rounded down to the region granularity. */
    public static long alignDown(long size) {
        return size & -REGION_ALIGN;
    }

    /** {@code size} rounded up to the region granularity. */
    public static long alignUp(long size) {
        return (size + REGION_ALIGN - 1) & -REGION_ALIGN;
    }
}
