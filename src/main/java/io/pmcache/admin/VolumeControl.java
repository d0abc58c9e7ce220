package io.pmcache.admin;

import java.io.IOException;
import java.util.Map;

/**
 * What the admin endpoint of a server of volumes may ask of it ({@link VolumesAdminServer}). Errors
 * a caller caused (no such volume, a refusal) are {@link IllegalArgumentException}s (400); failures
 * of the work itself are {@link IOException}s (500). Each answer is a one-line message for people.
 */
public interface VolumeControl {

    /** The document of {@code GET /volumes}: every volume of the medium, served or not, and the free space. */
    Map<String, Object> volumes();

    /**
     * The figures of a served volume, or null when no volume of that name is served. Its counters
     * count since the start of the server: a volume served again goes on from what its name's
     * earlier caches counted ({@link io.pmcache.cache.CacheStatus#continuing}).
     */
    StatusSource status(String name);

    /** The cache of a served volume (for its knobs), or null when no volume of that name is served. */
    io.pmcache.cache.Cache cache(String name);

    /** The names of the volumes served, in table order. */
    java.util.List<String> served();

    /** Creates a volume and starts serving it; {@code request} holds name, backing, size and the format options. */
    String create(Map<?, ?> request) throws IOException;

    /** Stops serving a volume and removes it (refused while dirty unless {@code force}). */
    String remove(String name, boolean force) throws IOException;

    /** Stops serving a volume and writes everything it holds back; it stays in the table, unserved. */
    String detach(String name) throws IOException;

    /** The volumes that failed to start and are not served, each with why (empty by default). */
    default Map<String, String> failed() {
        return Map.of();
    }

    /**
     * Starts serving a volume of the table that is not served (detached, or failed to start):
     * opens its backing device and cache and offers its export; the other volumes' clients go on.
     */
    default String attach(String name) throws IOException {
        throw new IllegalArgumentException("this server cannot attach volumes");
    }
}
