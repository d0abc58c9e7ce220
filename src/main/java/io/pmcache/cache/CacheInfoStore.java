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
        write(new CacheInfo(current.sequence() + 1, p, current.dirtyTail(), current.gcPercent()));
    }

    synchronized void setDirtyTail(LogPosition p) {
        write(new CacheInfo(current.sequence() + 1, current.keyTail(), p, current.gcPercent()));
    }

    synchronized void setTails(LogPosition key, LogPosition dirty) {
        write(new CacheInfo(current.sequence() + 1, key, dirty, current.gcPercent()));
    }

    synchronized void setGcPercent(int p) {
        write(new CacheInfo(current.sequence() + 1, current.keyTail(), current.dirtyTail(), p));
    }

    private void write(CacheInfo next) {
        long slot = CacheInfo.slotFor(next.sequence());
        next.encode(medium.segment(), slot, cacheId);
        medium.persist(slot, CacheInfo.SIZE);
        current = next;
    }
}
