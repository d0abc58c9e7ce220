package io.pmcache.cache;

import io.pmcache.format.CacheInfo;
import io.pmcache.format.LogPosition;
import io.pmcache.media.Medium;

/** The current {@link CacheInfo}; every change writes the other slot and persists it. */
final class CacheInfoStore {
    private final Medium medium;
    private final long cacheId;
    private volatile CacheInfo current;

    CacheInfoStore(Medium medium, long cacheId, CacheInfo initial) {
        this.medium = medium;
        this.cacheId = cacheId;
        this.current = initial;
    }

    CacheInfo current() {
        return current;
    }

    synchronized void setKeyTail(LogPosition p) {
        CacheInfo c = current;
        write(new CacheInfo(c.sequence() + 1, p, c.dirtyTail(), c.gcPercent(), c.cacheMode(), c.cleanUntrustedBefore()));
    }

    synchronized void setDirtyTail(LogPosition p) {
        CacheInfo c = current;
        write(new CacheInfo(c.sequence() + 1, c.keyTail(), p, c.gcPercent(), c.cacheMode(), c.cleanUntrustedBefore()));
    }

    synchronized void setTails(LogPosition key, LogPosition dirty) {
        CacheInfo c = current;
        write(new CacheInfo(c.sequence() + 1, key, dirty, c.gcPercent(), c.cacheMode(), c.cleanUntrustedBefore()));
    }

    synchronized void setGcPercent(int p) {
        CacheInfo c = current;
        write(new CacheInfo(c.sequence() + 1, c.keyTail(), c.dirtyTail(), p, c.cacheMode(), c.cleanUntrustedBefore()));
    }

    /** Persists the cache mode (a {@link CacheMode} ordinal). */
    synchronized void setCacheMode(int mode) {
        CacheInfo c = current;
        if (c.cacheMode() != mode) {
            write(new CacheInfo(c.sequence() + 1, c.keyTail(), c.dirtyTail(), c.gcPercent(), mode,
                    c.cleanUntrustedBefore()));
        }
    }

    /** Persists that clean keys of ksets below {@code seq} must not be trusted at replay. */
    synchronized void setCleanUntrustedBefore(long seq) {
        CacheInfo c = current;
        if (c.cleanUntrustedBefore() != seq) {
            write(new CacheInfo(c.sequence() + 1, c.keyTail(), c.dirtyTail(), c.gcPercent(), c.cacheMode(), seq));
        }
    }

    private void write(CacheInfo next) {
        long slot = CacheInfo.slotFor(next.sequence());
        next.encode(medium.segment(), slot, cacheId);
        medium.persist(slot, CacheInfo.SIZE);
        current = next;
    }
}
