package io.pmcache.volume;

import io.pmcache.format.VolumeEntry;
import io.pmcache.media.Medium;

/**
 * One volume of a medium: its name, the medium its cache lives in (a region of the whole medium,
 * or the whole medium for a single-cache medium), and its table entry.
 *
 * @param entry the volume-table entry; null for the one implicit volume of a single-cache medium
 *              (format version 1 without a volume table), which records no backing device
 */
public record Volume(String name, Medium medium, VolumeEntry entry) {

    /** The backing device the volume was created for (a path or NBD URI), or null when not recorded. */
    public String backing() {
        return entry == null ? null : entry.backing();
    }

    /** True for the implicit volume of a single-cache medium. */
    public boolean implicit() {
        return entry == null;
    }
}
