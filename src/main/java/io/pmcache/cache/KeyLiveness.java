package io.pmcache.cache;

import io.pmcache.format.KeyRecord;
import java.util.BitSet;

/**
 * What a slot of the key log holds, and whether its key is live: the one authority that replay,
 * writeback, gc, the checker and slot recovery use, so that they never disagree on which keys
 * hold a reference on a data segment.
 *
 * <h2>The rule</h2>
 * A slot is judged, in this order: all zeros → {@link State#EMPTY}; fails its key CRC or bounds →
 * {@link State#UNREADABLE}; a tombstone → {@link State#TOMBSTONE}; a ZERO key → {@link State#LIVE};
 * names a segment whose info was lost (replay only) → {@link State#UNKNOWN_SEGMENT}; names a
 * generation its segment never had → {@link State#FUTURE}; an older generation (the segment was
 * reclaimed since) → {@link State#STALE}; else {@link State#LIVE}.
 *
 * <p>A key holds one reference on its data segment exactly while it is judged LIVE and carries
 * data ({@link Slot#holdsReference}): it takes it when appended (or replayed) and gc drops it when
 * the key tail passes the key. The judgement of a slot only changes by a reclaim (LIVE → STALE),
 * and a segment is reclaimed only once gc passed every key referencing it. The data CRC is not part
 * of the judgement (it would change with the bytes of the medium): replay checks it where it must
 * and turns a key that fails it into a TOMBSTONE before any other walker sees the log, and
 * writeback checks it again before writing (a failure there is counted and the key not written,
 * but it keeps its reference until gc passes it).
 */
final class KeyLiveness {
    /** What a slot holds. */
    enum State {
        /** All zeros: never used, or emptied by replay under a valid seal. */
        EMPTY,
        /** Fails its key CRC or bounds check. */
        UNREADABLE,
        /** Marked lost by an earlier replay (see {@link KeyRecord#FLAG_TOMBSTONE}). */
        TOMBSTONE,
        /** Names a segment both of whose info slots were lost (replay and check only). */
        UNKNOWN_SEGMENT,
        /** Names a generation its segment never had: damage. */
        FUTURE,
        /** Its segment was reclaimed after it was written back: the key is history. */
        STALE,
        /** A current key. */
        LIVE
    }

    /** A judged slot; {@code key} is null for EMPTY and UNREADABLE. */
    record Slot(State state, KeyRecord key) {
        /** True exactly when this key holds a reference on its data segment. */
        boolean holdsReference() {
            return state == State.LIVE && !key.zero();
        }

        /** True for the states that mean something on the medium was damaged. */
        boolean damaged() {
            return state == State.UNREADABLE || state == State.TOMBSTONE || state == State.UNKNOWN_SEGMENT
                    || state == State.FUTURE;
        }
    }

    private static final Slot EMPTY = new Slot(State.EMPTY, null);
    private static final Slot UNREADABLE = new Slot(State.UNREADABLE, null);

    private final LogReader reader;
    private final SegmentTable segments;
    private final BitSet unknownGeneration;

    /** For a running cache: every segment's generation is known. */
    KeyLiveness(LogReader reader, SegmentTable segments) {
        this(reader, segments, new BitSet());
    }

    /** For replay and check: {@code unknownGeneration} are segments whose info was unreadable. */
    KeyLiveness(LogReader reader, SegmentTable segments, BitSet unknownGeneration) {
        this.reader = reader;
        this.segments = segments;
        this.unknownGeneration = unknownGeneration;
    }

    Slot judge(LogReader.KsetAt k, int slot) {
        KeyRecord.Reader r = READERS.get();
        State s = judge(k, slot, r, false);
        return switch (s) {
            case EMPTY -> EMPTY;
            case UNREADABLE -> UNREADABLE;
            default -> new Slot(s, r.toRecord());
        };
    }

    private static final ThreadLocal<KeyRecord.Reader> READERS = ThreadLocal.withInitial(KeyRecord.Reader::new);

    /**
     * {@link #judge(LogReader.KsetAt, int)} without allocating (replay judges every key of the log):
     * the state, and for every state but EMPTY and UNREADABLE the key's fields in {@code r}. With
     * {@code window}, {@code r} copies each kset's slots from the medium at once (replay's walk:
     * nothing writes a kset's slots while they are judged); the same bytes and rule either way.
     */
    State judge(LogReader.KsetAt k, int slot, KeyRecord.Reader r, boolean window) {
        int read = window ? reader.readInWindow(k, slot, r) : reader.read(k, slot, r);
        return switch (read) {
            case KeyRecord.Reader.EMPTY -> State.EMPTY;
            case KeyRecord.Reader.INVALID -> State.UNREADABLE;
            default -> stateOf(r.flags(), r.segment(), r.generation());
        };
    }

    private State stateOf(int flags, int segment, long generation) {
        if ((flags & KeyRecord.FLAG_TOMBSTONE) != 0) {
            return State.TOMBSTONE;
        }
        if ((flags & KeyRecord.FLAG_ZERO) != 0) {
            return State.LIVE;
        }
        if (unknownGeneration.get(segment)) {
            return State.UNKNOWN_SEGMENT;
        }
        long current = segments.generation(segment);
        if (generation > current) {
            return State.FUTURE;
        }
        return generation < current ? State.STALE : State.LIVE;
    }
}
