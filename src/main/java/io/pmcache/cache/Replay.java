package io.pmcache.cache;

import io.pmcache.format.CacheInfo;
import io.pmcache.format.KeyRecord;
import io.pmcache.format.Kset;
import io.pmcache.format.LogPosition;
import io.pmcache.format.MediaCorruptException;
import io.pmcache.format.SegmentInfo;
import io.pmcache.format.Superblock;
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
 *       sequence number. Where a header is invalid but something proves the log went on
 *       ({@link LogGap}), that is damage: it is reported (ERROR, {@code ksetsDamaged}) and
 *       repaired in place when the span of the missing ksets is known — one kset's header is
 *       rewritten and its keys recovered slot by slot, several are replaced by sealed fillers
 *       holding a lost-kset tombstone — and the walk goes on; otherwise the log ends there and
 *       what followed is lost (reported).</li>
 *   <li>Each slot is judged by {@link KeyLiveness}. Sealed kset: take every live key (with the
 *       data-CRC option, whose data CRC holds). Kset without a valid seal (the process or power
 *       died while it was open): take each live key whose data CRC holds. A slot that fails
 *       where the kset says it is final ({@link LogReader.KsetAt#keyFinal}) is damage: counted,
 *       logged, and replaced by a tombstone, so that every later open and check reports it and no
 *       walker takes it for live.</li>
 *   <li>A key whose segment generation moved on is stale and dropped (its data CRC is not checked:
 *       the segment may hold newer data by now), a clean one punching its range out of the index;
 *       the live ones go into the index in log order (newest wins) and take the reference on their
 *       data segment that gc drops when it passes them. Keys before the dirty tail are clean
 *       (already on the backing device).</li>
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
    /** The index changes of the walk, applied range by range (see {@link ReplayBatch}). */
    private final ReplayBatch batch;
    private final CacheStats stats;
    private final long cacheId;
    private final boolean verifyAllData;
    private final BitSet logSegments;
    private final BitSet unknownGeneration;
    /** Segments with one valid info slot and one damaged: what the damaged one held may be restored. */
    private final BitSet oneSlotDamaged;
    private final long[] maxKeyGeneration;
    private final KeyLiveness liveness;
    private final List<Unsealed> unsealed = new ArrayList<>();
    /** Clean keys of ksets below this sequence are not put into the index (see {@link #apply}). */
    private long cleanUntrustedBefore;
    /** Clean keys left out of the index because they were untrusted. */
    long untrustedCleanKeys;
    /** A key that may have been dirty was lost with its range (see {@link #dropCleanExtents}). */
    private boolean lostUnknownRange;
    private long ksets;
    private long keys;
    /** The walk's key reader: a live key of a sealed kset is replayed without allocating. */
    private final KeyRecord.Reader kv = new KeyRecord.Reader();
    /**
     * What the walk adds up and hands over once it is done (nothing reads them before): the
     * references per segment, the dirty bytes, and per range the bound {@link #apply} raises —
     * kept here, not in the range's map, which the batch's thread writes meanwhile.
     */
    private final int[] refsTaken;
    private long dirtyBytes;
    private final long[] dirtyKsetBounds;
    /** A long replay says how far it got every few seconds. */
    private static final long PROGRESS_NANOS = 5_000_000_000L;
    private long lastProgress = System.nanoTime();

    private record Unsealed(LogReader.KsetAt kset, BitSet taken, List<KeyRecord> keys, List<Tombstone> tombstones) {
    }

    /** A slot replay replaces with a tombstone. */
    private record Tombstone(int slot, KeyRecord key) {
    }

    /**
     * What replay found: where the head is, which segments the log occupies, and where the key
     * tail is (the dirty tail when the log before it was damaged).
     */
    record Result(LogPosition head, BitSet logSegments, LogPosition keyTail, LogPosition dirtyTail) {
    }

    /**
     * A replay as {@link Cache#open} sets it up, with what it reads and fills (the cache keeps them):
     * the cache info, the segment table, the log's reader, the index.
     */
    record Prepared(Replay replay, CacheInfo info, SegmentTable segments, LogReader reader, RangeIndex index) {
        Result run() {
            return replay.run(info);
        }
    }

    /**
     * {@link #prepare(Medium, Superblock, long, CacheStats, int, int, boolean)} with the default
     * batches: doubling from {@link ReplayBatch#DEFAULT_CAPACITY} to what this JVM's heap allows.
     */
    static Prepared prepare(Medium medium, Superblock sb, long deviceSize, CacheStats stats)
            throws MediaCorruptException {
        return prepare(medium, sb, deviceSize, stats, ReplayBatch.DEFAULT_CAPACITY,
                ReplayBatch.maxCapacityForHeap(Runtime.getRuntime().maxMemory()),
                Runtime.getRuntime().availableProcessors() > 1);
    }

    /**
     * Reads the cache info and loads the segment table from the segment infos of {@code medium}
     * ({@code sb}'s): a segment whose two info slots both fail has an unknown generation, one with a
     * single failing slot may have what it held restored. The replay fills a new index of a device
     * of {@code deviceSize} bytes and counts into {@code stats}; for the batch, see the constructor.
     */
    static Prepared prepare(Medium medium, Superblock sb, long deviceSize, CacheStats stats, int batchCapacity,
            int maxBatchCapacity, boolean background) throws MediaCorruptException {
        int count = sb.segmentCount();
        CacheInfo info = CacheInfo.read(medium.segment(), sb.cacheId(), sb, medium.describe());
        SegmentTable segments = new SegmentTable(medium, sb.cacheId(), count, sb.segmentSize(),
                sb.segmentAreaOffset());
        BitSet unknown = new BitSet(count);
        BitSet oneSlotDamaged = new BitSet(count);
        for (int s = 0; s < count; s++) {
            SegmentInfo si = SegmentInfo.read(medium.segment(), s, sb.cacheId(), count);
            if (si == null) {
                unknown.set(s);
                si = new SegmentInfo(0, 0, SegmentInfo.NO_NEXT);
            } else if (SegmentInfo.slotDamaged(medium.segment(), s, 0, sb.cacheId(), count)
                    || SegmentInfo.slotDamaged(medium.segment(), s, 1, sb.cacheId(), count)) {
                oneSlotDamaged.set(s);
            }
            segments.load(s, si);
        }
        RangeIndex index = new RangeIndex(deviceSize);
        LogReader reader = new LogReader(medium, segments, sb.cacheId(), deviceSize);
        Replay replay = new Replay(medium, segments, reader, index, stats, sb.cacheId(), sb.dataCrc(), unknown,
                oneSlotDamaged, batchCapacity, maxBatchCapacity, background);
        return new Prepared(replay, info, segments, reader, index);
    }

    /**
     * {@code batchCapacity} 1 without {@code background} applies each index change when the walk
     * makes it (tests: the sequential replay); see {@link ReplayBatch}.
     */
    Replay(Medium medium, SegmentTable segments, LogReader reader, RangeIndex index, CacheStats stats,
           long cacheId, boolean verifyAllData, BitSet unknownGeneration, BitSet oneSlotDamaged, int batchCapacity,
           int maxBatchCapacity, boolean background) {
        this.medium = medium;
        this.segments = segments;
        this.reader = reader;
        this.index = index;
        this.batch = new ReplayBatch(index, batchCapacity, maxBatchCapacity, background);
        this.stats = stats;
        this.cacheId = cacheId;
        this.verifyAllData = verifyAllData;
        this.logSegments = new BitSet(segments.count());
        this.unknownGeneration = unknownGeneration;
        this.oneSlotDamaged = oneSlotDamaged;
        this.maxKeyGeneration = new long[segments.count()];
        this.refsTaken = new int[segments.count()];
        this.dirtyKsetBounds = new long[index.rangeCount()];
        this.liveness = new KeyLiveness(reader, segments, unknownGeneration);
    }

    Result run(CacheInfo info) {
        try (batch) {
            return replay(info);
        }
    }

    private Result replay(CacheInfo info) {
        long t0 = System.nanoTime();
        cleanUntrustedBefore = info.cleanUntrustedBefore();
        LogPosition dirtyTail = info.dirtyTail();
        LogPosition keyTail = info.keyTail();
        restoreDamagedSlots(keyTail, dirtyTail);
        LogTails.Decision tails = LogTails.decide(reader, segments.count(), keyTail, dirtyTail);
        if (!tails.consistent()) {
            // Replaying only the readable part before damage would put older versions of sectors
            // into the index whose newer versions sit in the unreadable ksets (and on the backing
            // device): the part before the dirty tail is dropped whole when it was written back.
            stats.ksetsDamaged.increment();
            log.error("{}", tails.problem());
        }
        keyTail = tails.walkFrom();
        dirtyTail = tails.dirtyFrom();
        LogPosition end = walk(keyTail, dirtyTail.ksetSeq());
        handOverTotals();
        batch.flush();
        for (int r = 0; r < dirtyKsetBounds.length; r++) {
            if (dirtyKsetBounds[r] != 0) {
                index.range(r).noteDirtyKset(dirtyKsetBounds[r]);
            }
        }
        log.info("index built from {} batches of changes: {} range runs, {} of them merged in one pass; {} ms of CPU",
                batch.batches(), batch.runs(), batch.fastRuns(), batch.applyCpuNanos() / 1_000_000);
        if (lostUnknownRange) {
            dropCleanExtents();
        }
        sealUnsealed();
        repairUnknownGenerations();
        stats.replayNanos = System.nanoTime() - t0;
        stats.replayKsets = ksets;
        stats.replayKeys = keys;
        return new Result(end, logSegments, keyTail, dirtyTail);
    }

    /** The walk's references and dirty bytes, into the segment table and the stats. */
    private void handOverTotals() {
        for (int seg = 0; seg < refsTaken.length; seg++) {
            if (refsTaken[seg] != 0) {
                segments.ref(seg, refsTaken[seg]);
                refsTaken[seg] = 0;
            }
        }
        stats.dirtyBytes.add(dirtyBytes);
        dirtyBytes = 0;
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

    /** Walks from {@code from} to the end of the log; returns the position after the last kset. */
    private LogPosition walk(LogPosition from, long dirtySeq) {
        LogWalker.Result r = LogWalker.walk(reader, from, logSegments, new LogWalker.Visitor() {
            @Override
            public void kset(LogReader.KsetAt k) {
                replayKset(k, k.at().ksetSeq() >= dirtySeq);
                long now = System.nanoTime();
                if (now - lastProgress >= PROGRESS_NANOS) {
                    lastProgress = now;
                    log.info("replay in progress: {} ksets, {} keys so far, at {}", ksets, keys, k.next());
                }
            }

            @Override
            public boolean gap(LogGap gap) {
                repair(gap);
                return true;
            }
        });
        if (r.why() == LogWalker.End.LOOP) {
            stats.ksetsDamaged.increment(); // a link no write makes: every later kset is out of reach
            log.error("key log links back to segment {} (a loop); replay stops at {}", r.loopSegment(), r.end());
        }
        if (r.gap() != null) {
            stats.ksetsDamaged.increment();
            log.error("key log damaged: {}; the log ends at {}", r.gap(), r.end());
            abandonAfter(r.gap());
        }
        return r.end();
    }

    /**
     * Repairs a passable gap in place so that the log reads through it again (for this walk, and
     * for writeback and gc): one missing kset gets its header back (its keys are then read slot by
     * slot like any kset's), several are replaced by sealed fillers of the same sequences, each
     * holding one lost-kset tombstone.
     */
    private void repair(LogGap gap) {
        stats.ksetsDamaged.add(Math.max(1, gap.missing()));
        log.error("key log damaged: {}", gap);
        LogPosition at = gap.at();
        long base = segments.address(at.segment(), at.offset());
        if (gap.previousCapacity() > 0) {
            long prev = segments.address(gap.previous().segment(), gap.previous().offset());
            Kset.rewriteHeader(medium.segment(), prev, gap.previous().ksetSeq(), gap.previousCapacity(), cacheId);
            medium.persist(prev, Kset.HEADER_SIZE);
            return;
        }
        if (gap.recoveredCapacity() > 0) {
            Kset.rewriteHeader(medium.segment(), base, at.ksetSeq(), gap.recoveredCapacity(), cacheId);
            medium.persist(base, Kset.HEADER_SIZE);
            return;
        }
        long addr = base;
        long seq = at.ksetSeq();
        for (int cap : gap.fillerCapacities()) {
            Kset.writeHeader(medium.segment(), addr, seq, cap, 0, cacheId);
            KeyRecord.lostTombstone().encode(medium.segment(), addr + Kset.slotOffset(0), cacheId, seq, 0);
            Kset.writeSeal(medium.segment(), addr, seq, 1, cacheId);
            addr += Kset.bytes(cap);
            seq++;
        }
        medium.persist(base, addr - base);
    }

    /**
     * The log ends at an unpassable gap: the valid ksets found beyond it (with later sequences)
     * can no longer be reached and their keys are lost. Their headers are invalidated, so that no
     * later search for a continuation mistakes them for part of the log that resumes here.
     */
    private void abandonAfter(LogGap gap) {
        lostUnknownRange = true;
        LogPosition at = gap.at();
        long size = segments.segmentSize();
        for (long off = at.offset() + Kset.MIN_BYTES; size - off >= Kset.MIN_BYTES; off += KeyRecord.SIZE) {
            if (reader.headerSequence(at.segment(), (int) off) > at.ksetSeq()) {
                invalidateHeader(segments.address(at.segment(), off));
            }
        }
        LogPosition c = gap.continuation();
        if (c != null && c.segment() != at.segment()) {
            invalidateHeader(segments.address(c.segment(), c.offset()));
        }
    }

    private void invalidateHeader(long address) {
        medium.segment().asSlice(address, 8).fill((byte) 0);
        medium.persist(address, 8);
    }

    private void replayKset(LogReader.KsetAt k, boolean mayBeDirty) {
        ksets++;
        long seq = k.at().ksetSeq();
        if (k.sealCorrupt()) {
            stats.ksetsDamaged.increment();
            long base = segments.address(k.at().segment(), k.at().offset());
            int stated = Kset.validHeader(medium.segment(), base, segments.segmentSize() - k.at().offset(), seq, cacheId);
            if (stated != k.capacity()) {
                // LogReader found keys past the header's capacity and a seal further on: the header lies
                log.error("kset #{} at {}: its header says {} slots, but a key of it follows slot {} and its seal is "
                        + "at {} slots: damaged; header rewritten, reading it slot by slot", seq, k.at(), stated,
                        stated - 1, k.capacity());
                Kset.rewriteHeader(medium.segment(), base, seq, k.capacity(), cacheId);
                medium.persist(base, Kset.HEADER_SIZE);
            } else {
                log.error("kset #{} at {}: its seal (claiming {} keys) {}: damaged; reading it slot by slot", seq,
                        k.at(), k.claimedCount(), k.countContradicted() ? "is contradicted by a key after that count"
                                : "fails its CRC");
            }
        }
        BitSet taken = new BitSet(k.capacity());
        List<KeyRecord> accepted = new ArrayList<>();
        List<Tombstone> tombstones = new ArrayList<>();
        KeyRecord.Reader kv = this.kv;
        boolean fast = k.sealed() && !verifyAllData;
        for (int slot = 0; slot < k.slots(); slot++) {
            KeyLiveness.State state = liveness.judge(k, slot, kv, true);
            if (fast && state == KeyLiveness.State.LIVE) {
                // The common case, as the LIVE case below without the data check: no record made
                // (a sealed kset's taken slots and accepted keys are not used).
                apply(kv.offset(), kv.length(), kv.flags(), kv.segment(), kv.segmentOffset(), kv.generation(),
                        mayBeDirty, seq);
                continue;
            }
            KeyRecord key = state == KeyLiveness.State.EMPTY || state == KeyLiveness.State.UNREADABLE ? null
                    : kv.toRecord();
            switch (state) {
                case EMPTY, UNREADABLE -> {
                    if (k.keyFinal(slot) && (state == KeyLiveness.State.UNREADABLE || k.sealCorrupt())) {
                        // Final and empty under a seal that fails, or unreadable: a key was there.
                        damaged(seq, slot, "key slot " + slot + (key == null && state == KeyLiveness.State.EMPTY
                                ? " is empty below the sealed count" : " fails its CRC or bounds check")
                                + "; the key is lost");
                        tombstones.add(new Tombstone(slot, KeyRecord.lostTombstone()));
                        lostUnknownRange |= mayBeDirty;
                    }
                }
                case TOMBSTONE -> {
                    taken.set(slot);
                    if (stats.firstDamageReport(seq, slot)) {
                        (key.length() > 0 ? stats.dataCrcErrors : stats.corruptKeysSkipped).increment();
                        log.error("kset #{} slot {}: {} was lost to damage found by an earlier open", seq, slot,
                                key.length() > 0 ? "[" + key.offset() + ", +" + key.length() + ")" : "a key or kset");
                    }
                    forgetDropped(key, mayBeDirty);
                }
                case UNKNOWN_SEGMENT, FUTURE -> {
                    // Damage. Tombstoned, so that no later reclaim of the segment (which bumps its
                    // generation) can make the key look live to gc or writeback.
                    taken.set(slot);
                    tombstones.add(new Tombstone(slot, key.asTombstone()));
                    if (state == KeyLiveness.State.UNKNOWN_SEGMENT) {
                        maxKeyGeneration[key.segment()] = Math.max(maxKeyGeneration[key.segment()], key.generation());
                    }
                    if (stats.firstDamageReport(seq, slot)) {
                        stats.corruptKeysSkipped.increment();
                        if (state == KeyLiveness.State.FUTURE) {
                            log.warn("kset #{} slot {}: names generation {} of segment {}, which is at {}; skipped",
                                    seq, slot, key.generation(), key.segment(), segments.generation(key.segment()));
                        }
                    }
                    forgetDropped(key, mayBeDirty);
                }
                case STALE -> {
                    taken.set(slot);
                    if (mayBeDirty && key.dirty()) {
                        // Not written back, so gc never passed it: its segment cannot have been
                        // reclaimed. The segment's info (or the dirty tail) is damaged.
                        damaged(seq, slot, "slot " + slot + " is dirty but names generation " + key.generation()
                                + " of segment " + key.segment() + ", which is at " + segments.generation(key.segment())
                                + "; the segment's info is damaged and the key is lost");
                    }
                    forgetDropped(key, mayBeDirty);
                }
                case LIVE -> {
                    if ((!k.sealed() || verifyAllData) && !reader.dataMatches(key)) {
                        if (k.keyFinal(slot)) {
                            // The data was persisted before the seal: it was damaged since.
                            if (stats.firstDamageReport(seq, slot)) {
                                stats.dataCrcErrors.increment();
                            }
                            log.error("kset #{} slot {}: data CRC mismatch for [{}, +{}) in segment {}; the key is "
                                    + "lost (tombstoned)", seq, slot, key.offset(), key.length(), key.segment());
                            tombstones.add(new Tombstone(slot, key.asTombstone()));
                            forgetDropped(key, mayBeDirty);
                        }
                        continue; // otherwise a write the crash cut short: never acknowledged durable
                    }
                    taken.set(slot);
                    accepted.add(key);
                    apply(key, mayBeDirty, seq);
                }
            }
        }
        if (!k.sealed()) {
            unsealed.add(new Unsealed(k, taken, accepted, tombstones));
        } else if (!tombstones.isEmpty()) {
            long base = segments.address(k.at().segment(), k.at().offset());
            writeTombstones(k, tombstones);
            Kset.writeSeal(medium.segment(), base, seq, k.sealedCount(), cacheId);
            medium.persist(base + Kset.SEAL_OFFSET, Kset.SEAL_SIZE);
        }
    }

    private void damaged(long seq, int slot, String what) {
        if (stats.firstDamageReport(seq, slot)) {
            stats.corruptKeysSkipped.increment();
        }
        log.error("kset #{}: {}", seq, what);
    }

    /** Stores and persists the tombstones into their slots. */
    private void writeTombstones(LogReader.KsetAt k, List<Tombstone> tombstones) {
        for (Tombstone t : tombstones) {
            long at = reader.slotAddress(k, t.slot());
            t.key().encode(medium.segment(), at, cacheId, k.at().ksetSeq(), t.slot());
            medium.persist(at, KeyRecord.SIZE);
        }
    }

    /**
     * A key dropped (damage, staleness, or a tombstone from an earlier open): what the backing
     * device holds for its range is at least as new as every older clean extent there — a clean
     * key was written back, and a dirty one may have been, since writeback copies data before the
     * dirty tail moves past it. So older clean extents of its range go (all older extents, for a
     * clean key): kept, they would be read now and the backing device's possibly newer data once
     * gc drops them, a read changing with no write between. Older dirty extents of a dirty key's
     * range stay: written back after it, they keep reads what they are.
     */
    private void forgetDropped(KeyRecord key, boolean mayBeDirty) {
        if (key.length() == 0) { // a lost kset's or key's tombstone: no range known
            lostUnknownRange |= mayBeDirty;
            return;
        }
        boolean writtenBack = !(mayBeDirty && key.dirty());
        batch.forget(key.offset(), key.length(), writtenBack);
    }

    /**
     * A possibly dirty key was lost with its range, so {@link #forgetDropped} cannot say which clean
     * extents may now be older than the backing device: none is kept. Clean data only costs reads
     * from the backing device; a clean extent older than what the backing device holds would make
     * a read change once gc drops it.
     */
    private void dropCleanExtents() {
        long dropped = 0;
        for (int r = 0; r < index.rangeCount(); r++) {
            io.pmcache.index.ExtentMap map = index.rangeIfPresent(r);
            if (map != null) {
                dropped += map.removeIf(x -> !x.dirty(), Integer.MAX_VALUE);
            }
        }
        log.warn("a key that may not have been written back was lost with its range; {} clean cached extents "
                + "dropped so that reads agree with the backing device", dropped);
    }

    /** A live key: into the index (newest wins), with the reference gc drops when it passes the key. */
    private void apply(KeyRecord key, boolean mayBeDirty, long seq) {
        apply(key.offset(), key.length(), key.flags(), key.segment(), key.segmentOffset(), key.generation(),
                mayBeDirty, seq);
    }

    /** {@link #apply(KeyRecord, boolean, long)} of the key with these fields. */
    private void apply(long offset, int length, int flags, int segment, int segmentOffset, long generation,
                       boolean mayBeDirty, long seq) {
        boolean dirty = mayBeDirty && (flags & KeyRecord.FLAG_DIRTY) != 0;
        boolean zero = (flags & KeyRecord.FLAG_ZERO) != 0;
        if (dirty) {
            // DirectPath writes this range directly only once the dirty tail passed this kset. The
            // bound goes into the range's map after the walk (see dirtyKsetBounds).
            int r = RangeIndex.rangeOf(offset);
            dirtyKsetBounds[r] = Math.max(dirtyKsetBounds[r], seq + 1);
        }
        if (!dirty && seq < cleanUntrustedBefore) {
            // The backing device was written directly after this clean key was logged (DirectPath),
            // so it may be older than what the backing device holds: not cached. Every older key of
            // its range is clean too (older) and equally left out. The key still holds its
            // reference, which gc drops when it passes the key, as for every live key.
            if (!zero) {
                refsTaken[segment]++;
            }
            untrustedCleanKeys++;
            keys++;
            return;
        }
        if (zero) {
            batch.zero(offset, length, dirty);
        } else {
            batch.data(offset, length, segment, segmentOffset, generation, dirty);
            refsTaken[segment]++;
        }
        if (dirty) {
            dirtyBytes += length;
        }
        keys++;
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
            writeTombstones(k, u.tombstones());
            long base = segments.address(k.at().segment(), k.at().offset());
            medium.persist(base + Kset.slotOffset(0), (long) k.capacity() * KeyRecord.SIZE);
            Kset.writeSeal(medium.segment(), base, k.at().ksetSeq(), k.capacity(), cacheId);
            medium.persist(base + Kset.SEAL_OFFSET, Kset.SEAL_SIZE);
            log.info("sealed kset #{} left open by the previous run or with a damaged seal ({} of {} slots held valid "
                    + "keys, {} tombstoned)", k.at().ksetSeq(), u.taken().cardinality(), k.capacity(),
                    u.tombstones().size());
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
