package io.pmcache.cache;

import io.pmcache.format.KeyRecord;
import io.pmcache.format.Kset;
import io.pmcache.format.LogPosition;
import io.pmcache.format.SegmentInfo;
import io.pmcache.media.Medium;

/** Reads ksets and keys of the key log from the medium, validating everything it decodes. */
final class LogReader {
    private final Medium medium;
    private final SegmentTable segments;
    private final long cacheId;
    private final long deviceSize;

    /**
     * A kset found at {@code at}: its capacity, its sealed count (-1 when the seal does not
     * validate), what follows, and the count its seal claims (-1 without a seal magic; see
     * {@link Kset#claimedCount}).
     *
     * <p>Which slots are final, so that a slot failing there is damage and not a write cut short:
     * below the count of a valid seal; and below the claimed count of a seal that fails its CRC
     * but claims more than 0 keys (the whole seal was written, after every slot was persisted:
     * something in it or in the slots was damaged since). A seal claiming 0 is a torn seal: the
     * keys are intact but how many there were is unknown. Slots of an unsealed kset are not final.
     */
    record KsetAt(LogPosition at, int capacity, int sealedCount, LogPosition next, int claimedCount,
                  boolean countContradicted) {
        boolean sealed() {
            return sealedCount >= 0;
        }

        /** The seal magic is there but the seal fails its CRC (torn, or damaged). */
        boolean sealDamaged() {
            return sealedCount < 0 && claimedCount >= 0;
        }

        /**
         * The seal was written whole and fails its CRC, or it validates but the slot after its count
         * holds a key of this kset (keys are stored in slot order before the seal, so the count is
         * wrong): damage, not a crash artefact.
         */
        boolean sealCorrupt() {
            return sealedCount < 0 && claimedCount > 0 || countContradicted;
        }

        /** Slots to read: the sealed count, or every slot of a kset without a valid seal. */
        int slots() {
            return sealed() ? sealedCount : capacity;
        }

        /** True when {@code slot} must hold a valid key (or a deliberately empty slot under a valid seal). */
        boolean keyFinal(int slot) {
            return sealed() ? slot < sealedCount : slot < claimedCount;
        }
    }

    LogReader(Medium medium, SegmentTable segments, long cacheId, long deviceSize) {
        this.medium = medium;
        this.segments = segments;
        this.cacheId = cacheId;
        this.deviceSize = deviceSize;
    }

    /**
     * Where the kset at {@code p} really starts: when fewer than {@link Kset#MIN_BYTES} remain in the
     * segment, at offset 0 of the next one. Null when the chain ends there.
     */
    LogPosition resolve(LogPosition p) {
        LogPosition q = p;
        for (int hops = 0; segments.segmentSize() - q.offset() < Kset.MIN_BYTES; hops++) {
            int next = segments.next(q.segment());
            if (next == SegmentInfo.NO_NEXT || hops > segments.count()) {
                return null;
            }
            q = new LogPosition(next, 0, q.ksetSeq());
        }
        return q;
    }

    /** The kset at {@code p} (after {@link #resolve}), or null when no valid header with its sequence is there. */
    KsetAt read(LogPosition p) {
        LogPosition q = resolve(p);
        if (q == null) {
            return null;
        }
        long at = segments.address(q.segment(), q.offset());
        long room = segments.segmentSize() - q.offset();
        int cap = Kset.validHeader(medium.segment(), at, room, q.ksetSeq(), cacheId);
        if (cap < 0) {
            return null;
        }
        return at(q, cap);
    }

    /** The kset at resolved position {@code q} taken to have {@code cap} slots (its header says so, or a gap search). */
    KsetAt at(LogPosition q, int cap) {
        long at = segments.address(q.segment(), q.offset());
        int sealed = Kset.sealedCount(medium.segment(), at, q.ksetSeq(), cap, cacheId);
        if (sealed < 0) {
            int stated = cap;
            cap = sealedCapacityBeyond(q, at, cap);
            if (cap != stated) { // the header's capacity is contradicted: read it whole at the sealed one
                LogPosition next = new LogPosition(q.segment(), q.offset() + Kset.bytes(cap), q.ksetSeq() + 1);
                return new KsetAt(q, cap, -1, next, Kset.sealedCount(medium.segment(), at, q.ksetSeq(), cap, cacheId),
                        true);
            }
        }
        LogPosition next = new LogPosition(q.segment(), q.offset() + Kset.bytes(cap), q.ksetSeq() + 1);
        if (sealed >= 0 && sealed < cap && keyAt(q, sealed) != null) {
            return new KsetAt(q, cap, -1, next, sealed, true); // read it whole, slot by slot
        }
        return new KsetAt(q, cap, sealed, next, Kset.claimedCount(medium.segment(), at, cap), false);
    }

    /**
     * A kset with no valid seal at its header's capacity {@code cap}: if slot {@code cap} (past the
     * end the header states) holds a key of this kset, the header is wrong (keys are written only
     * below the capacity). The capacity whose seal validates is then the real one; with no seal (the
     * kset was still open, or its seal is lost too), the real capacity reaches at least past the
     * last slot holding a key of this kset, which is what is returned (a lower bound: the walk's gap
     * search then finds where the next kset starts). {@code cap} when there is no such evidence (an
     * unsealed kset, cut by a crash, looks like that too).
     */
    private int sealedCapacityBeyond(LogPosition q, long at, int cap) {
        long room = segments.segmentSize() - q.offset();
        if (cap >= Kset.MAX_KEYS || Kset.bytes(cap + 1) > room || keyAt(q, cap) == null) {
            return cap;
        }
        int pastLastKey = cap + 1;
        for (int c = cap + 1; c <= Kset.MAX_KEYS && Kset.bytes(c) <= room; c++) {
            if (Kset.sealedCount(medium.segment(), at, q.ksetSeq(), c, cacheId) >= 0) {
                return c;
            }
            if (keyAt(q, c - 1) != null) {
                pastLastKey = c;
            }
        }
        return pastLastKey;
    }

    private KeyRecord keyAt(LogPosition q, int slot) {
        long address = segments.address(q.segment(), q.offset() + Kset.slotOffset(slot));
        return KeyRecord.isEmptySlot(medium.segment(), address) ? null : KeyRecord.decode(medium.segment(), address,
                cacheId, q.ksetSeq(), slot, deviceSize, segments.count(), segments.segmentSize());
    }

    /** The sequence of a valid kset header at {@code offset} of {@code seg}, whatever it is; -1 if none. */
    long headerSequence(int seg, int offset) {
        return Kset.headerSequence(medium.segment(), segments.address(seg, offset), segments.segmentSize() - offset,
                cacheId);
    }

    long segmentSize() {
        return segments.segmentSize();
    }

    int next(int seg) {
        return segments.next(seg);
    }

    /** True when a valid kset header carrying {@code seq} starts segment {@code seg}. */
    boolean ksetStartsAt(int seg, long seq) {
        return Kset.validHeader(medium.segment(), segments.address(seg, 0), segments.segmentSize(), seq, cacheId) >= 0;
    }

    long slotAddress(KsetAt k, int slot) {
        return segments.address(k.at().segment(), k.at().offset() + Kset.slotOffset(slot));
    }

    boolean slotEmpty(KsetAt k, int slot) {
        return KeyRecord.isEmptySlot(medium.segment(), slotAddress(k, slot));
    }

    /** The key in {@code slot}, or null when it fails its CRC or bounds checks. */
    KeyRecord key(KsetAt k, int slot) {
        return KeyRecord.decode(medium.segment(), slotAddress(k, slot), cacheId, k.at().ksetSeq(), slot,
                deviceSize, segments.count(), segments.segmentSize());
    }

    /**
     * Reads {@code slot} into {@code r} without allocating: {@link KeyRecord.Reader#EMPTY} (what
     * {@link #slotEmpty} says), {@link KeyRecord.Reader#INVALID} ({@link #key} returns null) or
     * {@link KeyRecord.Reader#VALID} with the key's fields in {@code r}.
     */
    int read(KsetAt k, int slot, KeyRecord.Reader r) {
        return r.read(medium.segment(), slotAddress(k, slot), cacheId, k.at().ksetSeq(), slot, deviceSize,
                segments.count(), segments.segmentSize());
    }

    /**
     * {@link #read(KsetAt, int, KeyRecord.Reader)}, copying the kset's {@link KsetAt#slots()} slots
     * into {@code r} at once on its first slot read (see {@link KeyRecord.Reader#readInWindow}): for
     * replay, where nothing writes a kset's slots while the walk reads them.
     */
    int readInWindow(KsetAt k, int slot, KeyRecord.Reader r) {
        int slots = k.slots();
        if (slot >= slots) {
            return read(k, slot, r);
        }
        return r.readInWindow(k, medium.segment(), slotAddress(k, 0), slots, slot, cacheId, k.at().ksetSeq(),
                deviceSize, segments.count(), segments.segmentSize());
    }

    /** True when the key's data on the medium matches its data CRC (always true for ZERO keys). */
    boolean dataMatches(KeyRecord key) {
        return dataMatches(key.flags(), key.segment(), key.segmentOffset(), key.length(), key.dataCrc());
    }

    /** {@link #dataMatches(KeyRecord)} of the key with these fields. */
    boolean dataMatches(int flags, int segment, int segmentOffset, int length, int dataCrc) {
        if ((flags & KeyRecord.FLAG_ZERO) != 0) {
            return true;
        }
        return io.pmcache.format.Crc.ofData(medium.segment(), segments.address(segment, segmentOffset), length)
                == dataCrc;
    }
}
