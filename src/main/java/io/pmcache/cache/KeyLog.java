package io.pmcache.cache;

import io.pmcache.format.KeyRecord;
import io.pmcache.format.Kset;
import io.pmcache.format.LogPosition;
import io.pmcache.format.SegmentInfo;
import io.pmcache.media.Medium;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ConcurrentSkipListSet;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The key log: a chain of segments holding ksets, appended at the key head.
 *
 * <h2>Positions</h2>
 * <pre>
 *   key tail ......... dirty tail ............ key head
 *   |  written back,    |  dirty: not yet on     |  next kset is reserved here
 *   |  not yet gc'd     |  the backing device    |
 * </pre>
 * gc advances the key tail (never past the dirty tail), writeback the dirty tail (never past a
 * kset that is not sealed), writers the head.
 *
 * <h2>Invariants</h2>
 * <ul>
 *   <li>Ksets carry consecutive sequence numbers in log order; {@link #nextSeq} is the next.</li>
 *   <li>A kset's header is persisted when it is reserved, under the head lock, so a persisted
 *       header implies every earlier header and segment link is persisted.</li>
 *   <li>Keys of one 4 MiB range always go to the same stream, and a stream has at most one open
 *       kset, reserved only after its previous one was handed over for sealing (by its next
 *       writer, or ahead of it by {@link #reserveAhead}), so overlapping keys appear in the log in
 *       the order they were written.</li>
 *   <li>A key is stored into its slot before the write is acknowledged (a process crash loses
 *       nothing); durability against power loss comes from FUA, flush, or the seal.</li>
 *   <li>A sealed kset's data and keys were persisted before its seal.</li>
 * </ul>
 */
final class KeyLog {
    /** An open kset is sealed at the latest this long after its first key. */
    static final long SEAL_AFTER_NANOS = 1_000_000_000L;

    private final Medium medium;
    private final SegmentTable segments;
    private final SegmentAllocator allocator;
    private final CacheStats stats;
    private final FailState failure;
    private final long cacheId;
    private final ReentrantLock headLock = new ReentrantLock();
    private int headSegment;
    private int headOffset;
    private volatile long nextSeq;
    /** The head as a position, for readers that must not wait for the head lock (status). */
    private volatile LogPosition headPosition;
    private final ConcurrentSkipListSet<Long> unsealed = new ConcurrentSkipListSet<>();
    private final Stream[] streams;
    private final ConcurrentLinkedQueue<OpenKset> toSeal = new ConcurrentLinkedQueue<>();
    private final ReentrantLock sealLock = new ReentrantLock();
    private volatile Runnable onSealed = () -> { };
    /** Some stream's kset filled up since the last {@link #reserveAhead}. */
    private volatile boolean someFilled;
    /** Used under {@link #sealLock}. */
    private final PersistBatch batch = new PersistBatch();

    private static final class Stream {
        final ReentrantLock lock = new ReentrantLock();
        OpenKset open;
        int nextCapacity = Kset.MAX_KEYS;
        /** Its kset filled up since the last {@link #reserveAhead}: its next one is wanted ahead. */
        volatile boolean filled;
    }

    KeyLog(Medium medium, SegmentTable segments, SegmentAllocator allocator, CacheStats stats, FailState failure,
           long cacheId, int streams, LogPosition head) {
        this.failure = failure;
        this.medium = medium;
        this.segments = segments;
        this.allocator = allocator;
        this.stats = stats;
        this.cacheId = cacheId;
        this.headSegment = head.segment();
        this.headOffset = head.offset();
        this.nextSeq = head.ksetSeq();
        this.headPosition = head;
        this.streams = new Stream[streams];
        for (int i = 0; i < streams; i++) {
            this.streams[i] = new Stream();
        }
    }

    void onSealed(Runnable r) {
        this.onSealed = r;
    }

    int streamFor(long logicalOffset) {
        return (int) ((logicalOffset >>> io.pmcache.format.Layout.RANGE_SHIFT) % streams.length);
    }

    long nextSeq() {
        return nextSeq;
    }

    /** True when the kset with this sequence was reserved and is sealed. */
    boolean isSealed(long seq) {
        return seq < nextSeq && !unsealed.contains(seq);
    }

    /**
     * The head as a log position (the place and sequence of the next kset). Never waits: a writer
     * may hold the head lock while it waits for a key-log segment.
     */
    LogPosition head() {
        return headPosition;
    }

    /**
     * Appends a key to the open kset of its range's stream; returns the medium address of its slot.
     * Takes the key's reference on its data segment. The caller holds the range's lock.
     */
    long append(KeyRecord key) {
        return append(key.offset(), key.length(), key.flags(), key.segment(), key.segmentOffset(), key.generation(),
                key.dataCrc());
    }

    /** {@link #append(KeyRecord)} of the key with these fields, without the record (the write path's). */
    long append(long offset, int length, int flags, int segment, int segmentOffset, long generation, int dataCrc) {
        boolean zero = (flags & KeyRecord.FLAG_ZERO) != 0;
        Stream st = streams[streamFor(offset)];
        st.lock.lock();
        try {
            OpenKset k = st.open;
            if (k == null) {
                k = reserve(st.nextCapacity, streamFor(offset), false);
                st.open = k;
            }
            int slot = k.count;
            long at = segments.address(k.segment, k.offset + Kset.slotOffset(slot));
            KeyRecord.encode(medium.segment(), at, cacheId, k.seq, slot, offset, length, flags, segment, segmentOffset,
                    generation, dataCrc);
            k.recordData(segment, segmentOffset, zero ? 0 : length);
            if (!zero) {
                segments.ref(segment);
            }
            if ((flags & KeyRecord.FLAG_DIRTY) != 0) {
                stats.dirtyBytes.add(length);
            }
            k.count++;
            if (k.full()) {
                st.open = null;
                st.nextCapacity = Kset.MAX_KEYS;
                toSeal.add(k);
                st.filled = true;
                someFilled = true;
            }
            return at;
        } finally {
            st.lock.unlock();
        }
    }

    /** True when some stream's kset filled up since the last {@link #reserveAhead} (a volatile read). */
    boolean reserveAheadWanted() {
        return someFilled;
    }

    /**
     * Reserves the next kset of each stream whose kset filled up since the last call and has none
     * open, so that its next writer does not: a reservation (zeroing up to 8 KiB of slots and
     * persisting a header) is the slowest step of a write, paid once per 128 keys. Called when the
     * I/O thread has nothing else to do ({@code Cache.idle}). Never waits: a stream busy right now,
     * or a head that needs a new key-log segment, is left to its next writer, as before. Keeps the
     * order of a stream's keys: the kset is reserved after the filled one was handed over, and only
     * a writer of the stream fills it.
     */
    void reserveAhead() {
        someFilled = false;
        for (int i = 0; i < streams.length && !failure.failed(); i++) {
            Stream st = streams[i];
            if (!st.filled) {
                continue;
            }
            if (!st.lock.tryLock()) {
                someFilled = true; // busy now: next time
                continue;
            }
            try {
                st.filled = false;
                if (st.open == null) {
                    st.open = reserve(st.nextCapacity, i, true);
                    if (st.open != null) {
                        stats.ksetsReservedAhead.increment();
                    }
                }
            } finally {
                st.lock.unlock();
            }
        }
    }

    /** Sealed ksets kept for reuse ({@link OpenKset#reset}); at most {@link #SPARE_KSETS}. */
    private final java.util.ArrayDeque<OpenKset> spare = new java.util.ArrayDeque<>();
    private static final int SPARE_KSETS = 64;

    private OpenKset reuse(long seq, int segment, int offset, int capacity) {
        OpenKset k;
        synchronized (spare) {
            k = spare.poll();
        }
        if (k == null) {
            return new OpenKset(seq, segment, offset, capacity);
        }
        k.reset(seq, segment, offset, capacity);
        return k;
    }

    /**
     * Reserves a kset at the head, moving to a new log segment when too little room is left; or,
     * {@code ahead} of a writer ({@link #reserveAhead}), null then: a segment is taken by writers
     * only.
     */
    private OpenKset reserve(int wantCapacity, int stream, boolean ahead) {
        headLock.lock();
        try {
            long room = segments.segmentSize() - headOffset;
            if (room < Kset.MIN_BYTES) {
                if (ahead) {
                    return null;
                }
                int fresh = allocator.allocateLog();
                segments.setNext(fresh, SegmentInfo.NO_NEXT);
                segments.setNext(headSegment, fresh);
                headSegment = fresh;
                headOffset = 0;
                room = segments.segmentSize();
            }
            int cap = (int) Math.min(wantCapacity, (room - Kset.HEADER_SIZE) / io.pmcache.format.KeyRecord.SIZE);
            long seq = nextSeq;
            long at = segments.address(headSegment, headOffset);
            Kset.writeHeader(medium.segment(), at, seq, cap, stream, cacheId);
            medium.persist(at, Kset.HEADER_SIZE);
            OpenKset k = reuse(seq, headSegment, headOffset, cap);
            unsealed.add(seq);
            headOffset += Kset.bytes(cap);
            nextSeq = seq + 1;
            headPosition = new LogPosition(headSegment, headOffset, nextSeq);
            return k;
        } finally {
            headLock.unlock();
        }
    }

    /** Persists one key slot and its data (FUA). */
    void persistKey(long slotAddress, KeyRecord key) {
        if (key.zero()) {
            medium.persist(slotAddress, KeyRecord.SIZE);
        } else {
            persistKey(slotAddress, key.segment(), key.segmentOffset(), key.length());
        }
    }

    /** Persists one data key's slot and its {@code length} bytes of data at {@code segment}/{@code segmentOffset} (FUA). */
    void persistKey(long slotAddress, int segment, int segmentOffset, int length) {
        medium.persist(segments.address(segment, segmentOffset), length);
        medium.persist(slotAddress, KeyRecord.SIZE);
    }

    /**
     * Closes every open kset and seals everything pending: afterwards every key appended before
     * the call is durable.
     */
    void sealAll() {
        for (Stream st : streams) {
            st.lock.lock();
            try {
                handOver(st);
            } finally {
                st.lock.unlock();
            }
        }
        drainSeals();
    }

    /**
     * Hands over every open kset to be sealed, without waiting for a stream lock: false when a
     * stream was busy (its open kset, if any, stays open). Writeback calls it: a writer may hold its
     * stream's lock while it waits for space that only writeback can make. {@link #sealPending}
     * (or the sealer) then seals what was handed over.
     */
    boolean tryHandOverAll() {
        boolean all = true;
        for (Stream st : streams) {
            if (st.lock.tryLock()) {
                try {
                    handOver(st);
                } finally {
                    st.lock.unlock();
                }
            } else {
                all = false;
            }
        }
        return all;
    }

    /** Seals every kset handed over so far (see {@link #tryHandOverAll}). */
    void sealPending() {
        drainSeals();
    }

    /** True when every kset below {@code seq} is sealed (its keys are durable). */
    boolean sealedBelow(long seq) {
        return unsealed.lower(seq) == null;
    }

    /**
     * Hands over open ksets at least {@code minAgeNanos} old (skipping streams busy right now) and
     * seals what is pending.
     */
    void sealAged(long now, long minAgeNanos) {
        for (Stream st : streams) {
            if (st.lock.tryLock()) {
                try {
                    if (st.open != null && now - st.open.firstKeyNanos >= minAgeNanos) {
                        handOver(st);
                    }
                } finally {
                    st.lock.unlock();
                }
            }
        }
        drainSeals();
    }

    /** Caller holds the stream lock. The next kset is sized after this one's use. */
    private void handOver(Stream st) {
        OpenKset k = st.open;
        if (k == null) {
            return;
        }
        st.open = null;
        st.nextCapacity = Math.min(Kset.MAX_KEYS, Math.max(2, Integer.highestOneBit(k.count) * 2));
        toSeal.add(k);
    }

    /**
     * Seals every pending kset in four batched phases: all their data persisted, then all their
     * slots, then the seals written, then the seals persisted. Each kset's seal is thus persisted
     * only after its data and keys.
     */
    private void drainSeals() {
        sealLock.lock();
        try {
            if (failure.failed()) {
                // A round another thread took (with keys this caller may depend on) failed to persist.
                throw new EngineAbort(failure.exception());
            }
            java.util.List<OpenKset> round = new ArrayList<>();
            OpenKset k;
            while ((k = toSeal.poll()) != null) {
                round.add(k);
            }
            if (round.isEmpty()) {
                return;
            }
            for (OpenKset x : round) {
                for (int i = 0; i < x.count; i++) {
                    if (x.dataLength(i) > 0) {
                        batch.add(segments.address(x.dataSegment(i), x.dataOffset(i)), x.dataLength(i));
                    }
                }
            }
            batch.persist(medium);
            for (OpenKset x : round) {
                batch.add(segments.address(x.segment, x.offset + Kset.slotOffset(0)), (long) x.count * KeyRecord.SIZE);
            }
            batch.persist(medium);
            for (OpenKset x : round) {
                long base = segments.address(x.segment, x.offset);
                Kset.writeSeal(medium.segment(), base, x.seq, x.count, cacheId);
                batch.add(base + Kset.SEAL_OFFSET, Kset.SEAL_SIZE);
            }
            batch.persist(medium);
            for (OpenKset x : round) {
                unsealed.remove(x.seq);
            }
            synchronized (spare) {                          // sealed: no one refers to them any more
                for (OpenKset x : round) {
                    if (spare.size() < SPARE_KSETS) {
                        spare.push(x);
                    }
                }
            }
            stats.ksetsSealed.add(round.size());
            onSealed.run();
        } finally {
            sealLock.unlock();
        }
    }

    /** Tests only: segments of the log from {@code from} to the head, following the links. */
    List<Integer> chainFrom(int from) {
        List<Integer> chain = new ArrayList<>();
        headLock.lock();
        try {
            int s = from;
            for (int hops = 0; hops <= segments.count(); hops++) {
                chain.add(s);
                if (s == headSegment) {
                    break;
                }
                s = segments.next(s);
                if (s == SegmentInfo.NO_NEXT) {
                    break;
                }
            }
        } finally {
            headLock.unlock();
        }
        return chain;
    }
}
