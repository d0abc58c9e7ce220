package io.pmcache.cache;

import java.util.Locale;

/**
 * How writes and read misses use the cache (bcache's and Open CAS's modes). The ordinal is what
 * cache info stores ({@code io.pmcache.format.CacheInfo#cacheMode}): never reorder.
 *
 * <ul>
 *   <li>{@link #WRITEBACK}: writes land in the cache and are written back later; misses fill.</li>
 *   <li>{@link #WRITETHROUGH}: a write is acknowledged once it is on the backing device and in
 *       the cache (as clean data); misses fill.</li>
 *   <li>{@link #WRITEAROUND}: writes go to the backing device and drop the cached data of their
 *       range; misses fill.</li>
 *   <li>{@link #NONE}: pass-through: writes go to the backing device, misses do not fill, and the
 *       clean data cached before is dropped when the mode is set.</li>
 * </ul>
 * In every mode, data the cache still holds dirty is served from the cache, and a write to a
 * range holding dirty data not yet written back goes into the cache (see {@link CachePolicy}).
 */
public enum CacheMode {
    WRITEBACK, WRITETHROUGH, WRITEAROUND, NONE;

    /** The name users type: {@code writeback}, {@code writethrough}, {@code writearound}, {@code none}. */
    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Parses a {@link #label()}; the message names the choices. */
    public static CacheMode parse(String s) {
        for (CacheMode m : values()) {
            if (m.label().equals(s.strip().toLowerCase(Locale.ROOT))) {
                return m;
            }
        }
        throw new IllegalArgumentException("unknown cache mode '" + s + "'; one of writeback, writethrough, "
                + "writearound, none");
    }

    /** Whether read misses are copied into the cache. */
    boolean fillsReads() {
        return this != NONE;
    }
}
