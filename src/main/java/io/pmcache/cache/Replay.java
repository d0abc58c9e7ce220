package io.pmcache.cache;

import io.pmcache.format.CacheInfo;
import io.pmcache.format.KeyRecord;
import io.pmcache.format.Kset;
import io.pmcache.format.LogPosition;
import io.pmcache.format.SegmentInfo;
import io.pmcache.index.Extent;
import io.pmcache.index.RangeIndex;
import io.pmcache.media.Medium;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Rebuilds the in-memory state from the key log at open.
 *
 * <h2>Steps</h2>
 * <ol>
 *   <li>Walk from the key tail, kset by kset, while each header is valid and carries the next
 *       sequence number.</li>
 *   <li>Sealed kset: take every non-empty slot whose key CRC holds (and, with the data-CRC option,
 *       whose data CRC holds). Unsealed kset (the process or power died while it was open): take
 *       each slot whose key CRC and data CRC hold.</li>
 *   <li>A key whose segment generation moved on is stale and dropped (its data CRC is not checked:
 *       the segment may hold newer data by now), a clean one punching its range out of the index;
 *       the others go into the index in log order (newest wins) and take a reference on their
 *       data segment. Keys before the dirty tail are clean (already on the backing device).</li>
 *   <li>If the ksets from the key tail do not lead to the dirty tail, the log between was damaged;
 *       those ksets were written back already, so that whole part is dropped (none of its keys
 *       enter the index, lest an older version of a sector shadow a newer one lost in the damage)
 *       and the key tail moves to the dirty tail.</li>
 *   <li>Unsealed ksets are then sealed in place: their taken keys' data persisted, the slots not
 *       taken zeroed, the seal written, so that writeback can pass them.</li>
 * </ol>
 */
final class Replay {
    private static final Logger log = LoggerFactory.getLogger(Replay.class);

    private final Medium medium;
    private final SegmentTable segments;
    private final LogReader reader;
    private final RangeIndex index;
    private final CacheStats stats;
    private final long cacheId;
    private final boolean verifyAllData;
    private final BitSet logSegments;
    private final BitSet unknownGeneration;
    /** Segments with one valid info slot and one damaged: what the damaged one held may be restored. */
    private final BitSet oneSlotDamaged;
    private final long[] maxKeyGeneration;
    private final List<Unsealed> unsealed = new ArrayList<>();
    private long ksets;
    private long keys;
    /** A long replay says how far it got every few seconds. */
    private static final long PROGRESS_NANOS = 5_000_000_000L;
    private long lastProgress = System.nanoTime();

    private record Unsealed(LogReader.KsetAt kset, BitSet taken, List<KeyRecord> keys) {
    }

    /**
     * What replay found: where the head is, which segments the log occupies, and where the key
     * tail is (the dirty tail when the log before it was damaged).
     */
    record Result(LogPosition head, BitSet logSegments, LogPosition keyTail) {
    }

    Replay(Medium medium, SegmentTable segments, LogReader reader, RangeIndex index, CacheStats stats,
           long cacheId, boolean verifyAllData, BitSet unknownGeneration, BitSet oneSlotDamaged) {
        this.medium = medium;
        this.segments = segments;
        this.reader = reader;
        this.index = index;
        this.stats = stats;
        this.cacheId = cacheId;
        this.verifyAllData = verifyAllData;
        this.logSegments = new BitSet(segments.count());
        this.unknownGeneration = unknownGeneration;
        this.oneSlotDamaged = oneSlotDamaged;
        this.maxKeyGeneration = new long[segments.count()];
    }

    Result run(CacheInfo info) {
        long t0 = System.nanoTime();
        LogPosition dirtyTail = info.dirtyTail();
        LogPosition keyTail = info.keyTail();
        restoreDamagedSlots(keyTail, dirtyTail);
        if (!reaches(keyTail, dirtyTail)) {
            // Replaying only the readable part before the damage would put older versions of
            // sectors into the index whose newer versions sit in the unreadable ksets (and on the
            // backing device): stale reads. Everything before the dirty tail is on the backing
            // device, so drop that part of the log whole: the key tail moves to the dirty tail.
            log.error("key log damaged between the key tail {} and the dirty tail {}: those ksets were already "
                    + "written back; dropping them and replaying from the dirty tail", keyTail, dirtyTail);
            keyTail = dirtyTail;
        }
        LogPosition end = walk(keyTail, dirtyTail.ksetSeq());
        sealUnsealed();
        repairUnknownGenerations();
        stats.replayNanos = System.nanoTime() - t0;
        stats.replayKsets = ksets;
        stats.replayKeys = keys;
        return new Result(end, logSegments, keyTail);
    }

    /**
     * Restores what the damaged info slot of a segment held, where the key log proves it (see
     * {@link SlotRecovery}): a key-log link, or a generation. Written back to the medium, so the
     * segment has two valid slots again.
     */
    private void restoreDamagedSlots(LogPosition keyTail, LogPosition dirtyTail) {
        SlotRecovery.Found found = SlotRecovery.scan(reader, segments, oneSlotDamaged, keyTail, dirtyTail,
                segments::setNext);
        for (SlotRecovery.Link l : found.links()) {
            log.warn("segment {}: its newest info slot was damaged; it held the key log's link to segment {} "
                    + "(kset #{} starts there), restored", l.from(), l.to(), l.seq());
        }
        for (SlotRecovery.Generation g : found.generations()) {
            log.warn("segment {}: its newest info slot was damaged; keys name generation {}, which it held, "
                    + "restored", g.segment(), g.generation());
            segments.bumpGeneration(g.segment(), g.generation());
        }
        for (SlotRecovery.Unresolved u : found.unresolved()) {
            log.error("segment {}: its newest info slot is damaged and the key log ends at {}; {} segments start "
                    + "with kset #{}, so which one went on is unknown; the log ends there", u.segment(), u.end(),
                    u.candidates(), u.end().ksetSeq());
        }
    }

    /** True when valid ksets lead from {@code from} to {@code to} (the same checks as {@link #walk}). */
    private boolean reaches(LogPosition from, LogPosition to) {
        LogWalker.Result r = LogWalker.walk(reader, from, new BitSet(segments.count()), new LogWalker.Visitor() {
            @Override
            public void kset(LogReader.KsetAt k) {
            }

            @Override
            public boolean stopBefore(LogPosition pos) {
                return pos.ksetSeq() >= to.ksetSeq();
            }
        });
        return r.why() == LogWalker.End.STOPPED && r.end().ksetSeq() == to.ksetSeq()
                && java.util.Objects.equals(reader.resolve(r.end()), reader.resolve(to));
    }

    /** Walks from {@code from} to the end of the log; returns the position after the last kset. */
    private LogPosition walk(LogPosition from, long dirtySeq) {
        LogWalker.Result r = LogWalker.walk(reader, from, logSegments, k -> {
            replayKset(k, k.at().ksetSeq() >= dirtySeq);
            long now = System.nanoTime();
            if (now - lastProgress >= PROGRESS_NANOS) {
                lastProgress = now;
                log.info("replay in progress: {} ksets, {} keys so far, at {}", ksets, keys, k.next());
            }
        });
        if (r.why() == LogWalker.End.LOOP) {
            log.error("key log links back to segment {} (a loop); replay stops at {}", r.loopSegment(), r.end());
        }
        return r.end();
    }

    private void replayKset(LogReader.KsetAt k, boolean mayBeDirty) {
        ksets++;
        BitSet taken = new BitSet(k.capacity());
        List<KeyRecord> accepted = new ArrayList<>();
        for (int slot = 0; slot < k.slots(); slot++) {
            if (reader.slotEmpty(k, slot)) {
                continue;
            }
            KeyRecord key = reader.key(k, slot);
            if (key == null) {
                if ((k.sealed() || k.sealDamaged()) && stats.firstDamageReport(k.at().ksetSeq(), slot)) {
                    stats.corruptKeysSkipped.increment();
                    log.warn("kset #{} at {}: key slot {} fails its CRC or bounds check; skipped",
                            k.at().ksetSeq(), k.at(), slot);
                }
                continue;
            }
            if ((!k.sealed() || verifyAllData) && !reclaimedSince(key) && !reader.dataMatches(key)) {
                if ((k.sealed() || k.sealDamaged()) && stats.firstDamageReport(k.at().ksetSeq(), slot)) {
                    stats.dataCrcErrors.increment();
                    log.error("kset #{} slot {}: data CRC mismatch for [{}, +{}) in segment {}; key skipped",
                            k.at().ksetSeq(), slot, key.offset(), key.length(), key.segment());
                }
                continue;
            }
            taken.set(slot);
            accepted.add(key);
            apply(key, mayBeDirty, k.at().ksetSeq(), slot);
        }
        if (!k.sealed()) {
            unsealed.add(new Unsealed(k, taken, accepted));
        }
    }

    /**
     * True when the key's data segment was reclaimed after the key was written (its generation
     * moved on): the key is stale, and its data may have been overwritten by the segment's next
     * use, so a data CRC mismatch says nothing. Such a key still goes to {@link #apply}, which
     * drops it and, for a clean key, punches the range. (gc reclaims a segment before it persists
     * the key tail past the kset that held the last reference, so after a crash in between the
     * replay walks that kset again, while a writer may already have reused the segment.)
     */
    private boolean reclaimedSince(KeyRecord key) {
        return !key.zero() && !unknownGeneration.get(key.segment())
                && key.generation() != segments.generation(key.segment());
    }

    private void apply(KeyRecord key, boolean mayBeDirty, long ksetSeq, int slot) {
        boolean dirty = mayBeDirty && key.dirty();
        var map = index.rangeFor(key.offset());
        if (key.zero()) {
            map.insert(Extent.zero(key.offset(), key.length(), dirty), null);
        } else {
            int seg = key.segment();
            if (unknownGeneration.get(seg)) {
                maxKeyGeneration[seg] = Math.max(maxKeyGeneration[seg], key.generation());
                if (stats.firstDamageReport(ksetSeq, slot)) {
                    stats.corruptKeysSkipped.increment();
                }
                if (!dirty) {
                    punch(map, key);
                }
                return;
            }
            if (key.generation() != segments.generation(seg)) {
                if (key.generation() > segments.generation(seg)) {
                    // No write of the segment's info explains a generation from the future (a
                    // damaged newest slot was restored above): damage, and the key is lost.
                    if (stats.firstDamageReport(ksetSeq, slot)) {
                        stats.corruptKeysSkipped.increment();
                        log.warn("kset #{} slot {}: names generation {} of segment {}, which is at {}; skipped",
                                ksetSeq, slot, key.generation(), seg, segments.generation(seg));
                    }
                }
                // else stale: the segment was reclaimed after this key was written back
                if (!dirty) {
                    punch(map, key);
                }
                return;
            }
            map.insert(Extent.data(key.offset(), key.length(), seg, key.segmentOffset(), key.generation(), dirty),
                    null);
            segments.ref(seg);
        }
        if (dirty) {
            stats.dirtyBytes.addAndGet(key.length());
        }
        keys++;
    }

    /**
     * A clean key that is dropped still tells that the backing device holds its range at least
     * as new as it: remove whatever older extent the index holds there, or that older version
     * would be read instead of the backing device's newer one.
     */
    private static void punch(io.pmcache.index.ExtentMap map, KeyRecord key) {
        Extent hole = Extent.placeholder(key.offset(), key.length(), 0);
        map.insert(hole, null);
        map.removeExact(hole);
    }

    private void sealUnsealed() {
        for (Unsealed u : unsealed) {
            LogReader.KsetAt k = u.kset();
            for (KeyRecord key : u.keys()) {
                if (!key.zero()) {
                    medium.persist(segments.address(key.segment(), key.segmentOffset()), key.length());
                }
            }
            for (int slot = 0; slot < k.capacity(); slot++) {
                if (!u.taken().get(slot)) {
                    medium.segment().asSlice(reader.slotAddress(k, slot), KeyRecord.SIZE).fill((byte) 0);
                }
            }
            long base = segments.address(k.at().segment(), k.at().offset());
            medium.persist(base + Kset.slotOffset(0), (long) k.capacity() * KeyRecord.SIZE);
            Kset.writeSeal(medium.segment(), base, k.at().ksetSeq(), k.capacity(), cacheId);
            medium.persist(base + Kset.SEAL_OFFSET, Kset.SEAL_SIZE);
            log.info("sealed kset #{} left open by the previous run ({} of {} slots held valid keys)",
                    k.at().ksetSeq(), u.taken().cardinality(), k.capacity());
        }
    }

    /** Segments whose info was unreadable get a generation above any key that names them. */
    private void repairUnknownGenerations() {
        for (int s = unknownGeneration.nextSetBit(0); s >= 0; s = unknownGeneration.nextSetBit(s + 1)) {
            segments.bumpGeneration(s, Math.max(maxKeyGeneration[s] + 1, 1L << 32));
            if (!logSegments.get(s)) {
                segments.setNext(s, SegmentInfo.NO_NEXT);
            }
            log.error("segment {}: both info slots were corrupt; generation reset to {}, its keys dropped", s,
                    segments.generation(s));
        }
    }
}
