package io.pmcache.cache;

import io.pmcache.format.KeyRecord;
import io.pmcache.format.LogPosition;
import io.pmcache.format.SegmentInfo;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * Recovers what a segment's damaged newest info slot held, from the key log, for replay (which
 * writes it back) and the checker (which reports it).
 *
 * <h2>Why the key log can tell</h2>
 * A segment's info is rewritten in place, into the slot not holding the newest copy, and
 * persisted before anything relies on it: a reclaim persists the bumped generation before the
 * segment returns to the free pool, so before any key can name that generation; the key log
 * persists the link {@code s -> t} before it writes the first kset header into {@code t}. The two
 * slots hold the two most recent writes. So when one slot is damaged and the valid one (sequence
 * {@code n}) says generation {@code g}:
 * <ul>
 *   <li>A valid key naming generation {@code g + 1} proves that write {@code n + 1} — the damaged
 *       slot — was a reclaim to {@code g + 1} and was persisted; no later write happened (it
 *       would have replaced slot {@code n}), so {@code g + 1} is the segment's current generation,
 *       and that write kept the link of write {@code n}. Adopting it restores the damaged slot
 *       exactly. A torn (never persisted) write cannot produce such a key. A key naming a
 *       generation above {@code g + 1} has no such explanation: it is damage, counted and dropped.</li>
 *   <li>When the log walk reaches the end of such a segment and its valid slot has no link, the
 *       damaged slot may have been the link to the next log segment. A valid kset header carrying
 *       exactly the next sequence at the start of exactly one segment outside the walked chain can
 *       only have been written there after that link was persisted: adopting it restores the
 *       link. No such segment means the log ends there; two mean the log was cut before (by
 *       earlier damage), and nothing is guessed.</li>
 * </ul>
 */
final class SlotRecovery {
    private SlotRecovery() {
    }

    /** A link restored: segment {@code from} links to {@code to}, found by kset {@code seq}. */
    record Link(int from, int to, long seq) {
    }

    /** A generation restored: {@code segment} is at {@code generation} (the valid slot said one less). */
    record Generation(int segment, long generation) {
    }

    /** A log end at a segment with a damaged slot that no single continuation explains. */
    record Unresolved(int segment, LogPosition end, int candidates) {
    }

    /** What a scan found. */
    record Found(List<Link> links, List<Generation> generations, List<Unresolved> unresolved) {
        boolean isEmpty() {
            return links.isEmpty() && generations.isEmpty() && unresolved.isEmpty();
        }
    }

    /** Applies a restored link to the segment table (and, for replay, to the medium). */
    @FunctionalInterface
    interface LinkSetter {
        void set(int from, int to);
    }

    /**
     * Walks the log from {@code keyTail} (and from {@code dirtyTail} too when the first walk ends
     * before it), restoring links through {@code setLink} as it goes so that the walk can go on,
     * and collects the generations the keys prove. Does nothing when {@code damaged} is empty.
     *
     * @param damaged segments with exactly one valid info slot and one damaged (not blank) slot
     */
    static Found scan(LogReader reader, SegmentTable table, BitSet damaged, LogPosition keyTail,
                      LogPosition dirtyTail, LinkSetter setLink) {
        List<Link> links = new ArrayList<>();
        List<Unresolved> unresolved = new ArrayList<>();
        if (damaged.isEmpty()) {
            return new Found(links, List.of(), unresolved);
        }
        BitSet proven = new BitSet(table.count());
        BitSet chain = new BitSet(table.count());
        KeyLiveness liveness = new KeyLiveness(reader, table);
        LogWalker.Visitor collect = k -> {
            for (int slot = 0; slot < k.slots(); slot++) {
                KeyLiveness.Slot s = liveness.judge(k, slot);
                KeyRecord key = s.key();
                if (s.state() == KeyLiveness.State.FUTURE && damaged.get(key.segment())
                        && key.generation() == table.generation(key.segment()) + 1) {
                    proven.set(key.segment());
                }
            }
        };
        LogPosition end = walkRestoringLinks(reader, table, damaged, keyTail, chain, collect, links, unresolved,
                setLink);
        if (end.ksetSeq() < dirtyTail.ksetSeq()) {
            walkRestoringLinks(reader, table, damaged, dirtyTail, chain, collect, links, unresolved, setLink);
        }
        List<Generation> generations = new ArrayList<>();
        for (int s = proven.nextSetBit(0); s >= 0; s = proven.nextSetBit(s + 1)) {
            generations.add(new Generation(s, table.generation(s) + 1));
        }
        return new Found(links, generations, unresolved);
    }

    private static LogPosition walkRestoringLinks(LogReader reader, SegmentTable table, BitSet damaged,
                                                  LogPosition from, BitSet chain, LogWalker.Visitor collect,
                                                  List<Link> links, List<Unresolved> unresolved,
                                                  LinkSetter setLink) {
        LogPosition pos = from;
        while (true) {
            LogWalker.Result r = LogWalker.walk(reader, pos, chain, collect);
            pos = r.end();
            int seg = pos.segment();
            if (r.why() != LogWalker.End.CHAIN_ENDS || !damaged.get(seg) || table.next(seg) != SegmentInfo.NO_NEXT) {
                return pos;
            }
            List<Integer> candidates = new ArrayList<>(1);
            for (int t = 0; t < table.count(); t++) {
                if (!chain.get(t) && reader.ksetStartsAt(t, pos.ksetSeq())) {
                    candidates.add(t);
                }
            }
            if (candidates.size() != 1) {
                if (candidates.size() > 1) {
                    unresolved.add(new Unresolved(seg, pos, candidates.size()));
                }
                return pos;
            }
            int to = candidates.getFirst();
            setLink.set(seg, to);
            links.add(new Link(seg, to, pos.ksetSeq()));
        }
    }
}
