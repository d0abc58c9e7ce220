package io.pmcache.cache;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Where the client's latest flush lies in the key log: the one authority on which dirty keys the
 * client may still lose, and so which of them writeback may leave unwritten when a newer key
 * overwrote them ({@link Writeback}, "overwritten beyond the batch").
 *
 * <p>Invariant: every write acknowledged before the latest FLUSH or FUA write returned sits in a
 * kset whose sequence is below {@link #latest}. A key in a kset at or above it was acknowledged
 * after that flush, or was in flight during it: no flush has covered it, so a power cut may lose it
 * (the device contract: without FLUSH or FUA a write may be lost, and a sector then holds an older
 * or a newer written value).
 *
 * <p>Kept in memory only: a new run starts with every replayed key below the mark (as if flushed),
 * which only makes writeback write more.
 */
final class FlushBarriers {
    private final KeyLog keyLog;
    private final AtomicLong latest;

    /** Opens with the key log as replayed: every key in it counts as flushed. */
    FlushBarriers(KeyLog keyLog) {
        this.keyLog = keyLog;
        this.latest = new AtomicLong(keyLog.nextSeq());
    }

    /**
     * A FLUSH or a FUA write made its writes durable and is about to return: the key log's next
     * kset sequence, read now, lies above every write acknowledged before.
     */
    void passed() {
        latest.accumulateAndGet(keyLog.nextSeq(), Math::max);
    }

    /** The kset sequence below which every write acknowledged before the latest flush lies. */
    long latest() {
        return latest.get();
    }
}
