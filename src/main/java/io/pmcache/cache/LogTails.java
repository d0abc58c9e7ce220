package io.pmcache.cache;

import io.pmcache.format.LogPosition;
import java.util.BitSet;

/**
 * Whether the persisted key tail and dirty tail agree with the key log, and where replay must
 * start and what it must treat as dirty when they do not: the one decision that replay and the
 * checker share.
 *
 * <h2>The rule</h2>
 * Walk from the key tail until the kset with the dirty tail's sequence, or the dirty tail's
 * position, whichever comes first.
 * <ul>
 *   <li>Both at once: the tails agree with the log ({@link Verdict#CONSISTENT}).</li>
 *   <li>One of them first: the cache info is wrong about the dirty tail (a damaged record with a
 *       valid CRC cannot be told from a good one by its CRC). The earlier of the two is taken as
 *       the dirty tail ({@link Verdict#DIRTY_TAIL_MOVED}): treating written-back ksets as dirty
 *       only writes the same data back again, in log order; the other way would lose data.</li>
 *   <li>Neither, the walk ends first: the log is damaged between the tails. If a valid kset with
 *       the dirty tail's sequence is at the dirty tail, the damaged part was written back and
 *       replay resumes at the dirty tail ({@link Verdict#RESUME_AT_DIRTY_TAIL}); otherwise the
 *       dirty tail is not to be trusted either, and everything from the key tail is treated as
 *       dirty ({@link Verdict#ALL_DIRTY}).</li>
 * </ul>
 * An empty log at the key tail is normal (everything written back and passed by gc), unless a
 * kset with the key tail's sequence starts elsewhere, at the key tail's offset or at offset 0 of
 * some segment: then the tails are wrong and the log is where that kset is
 * ({@link Verdict#TAILS_MOVED}, everything from it treated as dirty).
 */
final class LogTails {
    private LogTails() {
    }

    enum Verdict { CONSISTENT, DIRTY_TAIL_MOVED, RESUME_AT_DIRTY_TAIL, ALL_DIRTY, TAILS_MOVED }

    /** Where replay walks from ({@code walkFrom}) and from where keys may be dirty ({@code dirtyFrom}). */
    record Decision(Verdict verdict, LogPosition walkFrom, LogPosition dirtyFrom, String problem) {
        boolean consistent() {
            return verdict == Verdict.CONSISTENT;
        }
    }

    static Decision decide(LogReader reader, int segments, LogPosition keyTail, LogPosition dirtyTail) {
        LogPosition dirtyAt = reader.resolve(dirtyTail);
        LogWalker.Result r = LogWalker.walk(reader, keyTail, new BitSet(segments), new LogWalker.Visitor() {
            @Override
            public void kset(LogReader.KsetAt k) {
            }

            @Override
            public boolean stopBefore(LogPosition pos) {
                return pos.ksetSeq() >= dirtyTail.ksetSeq() || samePlace(pos, dirtyTail)
                        || samePlace(reader.resolve(pos), dirtyAt);
            }
        });
        if (r.why() == LogWalker.End.STOPPED) {
            LogPosition at = reader.resolve(r.end());
            if (r.end().ksetSeq() == dirtyTail.ksetSeq() && (samePlace(r.end(), dirtyTail) || samePlace(at, dirtyAt))) {
                return at != null && reader.read(at) == null ? emptyAtTail(reader, segments, keyTail, dirtyTail)
                        : new Decision(Verdict.CONSISTENT, keyTail, dirtyTail, null);
            }
            LogPosition earlier = at != null ? at : r.end();
            return new Decision(Verdict.DIRTY_TAIL_MOVED, keyTail, earlier, "the cache info's dirty tail "
                    + dirtyTail + " is not where the key log has it (the walk from the key tail " + keyTail
                    + " reaches " + earlier + " first); treating the log from " + earlier + " as dirty");
        }
        LogReader.KsetAt atDirty = reader.read(dirtyTail);
        if (atDirty != null) {
            return new Decision(Verdict.RESUME_AT_DIRTY_TAIL, dirtyTail, dirtyTail, "key log damaged between the "
                    + "key tail " + keyTail + " and the dirty tail " + dirtyTail + " (the walk ends at " + r.end()
                    + "): those ksets were already written back; dropping them and replaying from the dirty tail");
        }
        return new Decision(Verdict.ALL_DIRTY, keyTail, keyTail, "the walk from the key tail " + keyTail
                + " ends at " + r.end() + " before the dirty tail " + dirtyTail + ", which holds no kset #"
                + dirtyTail.ksetSeq() + ": the cache info is damaged; treating the log from the key tail as dirty");
    }

    /** The log is empty at the tails: normal, unless the kset the tails expect starts elsewhere. */
    private static Decision emptyAtTail(LogReader reader, int segments, LogPosition keyTail, LogPosition dirtyTail) {
        LogPosition found = null;
        int candidates = 0;
        for (int s = 0; s < segments; s++) {
            for (int off : new int[] {0, keyTail.offset()}) {
                LogPosition p = new LogPosition(s, off, keyTail.ksetSeq());
                if ((s != keyTail.segment() || off != keyTail.offset()) && reader.read(p) != null
                        && (found == null || !found.equals(p))) {
                    found = p;
                    candidates++;
                }
            }
        }
        if (candidates == 1) {
            return new Decision(Verdict.TAILS_MOVED, found, found, "the cache info's tails name " + keyTail
                    + ", where the key log holds no kset, but kset #" + keyTail.ksetSeq() + " starts at " + found
                    + ": the cache info is damaged; replaying from there, all of it treated as dirty");
        }
        if (candidates > 1) {
            return new Decision(Verdict.ALL_DIRTY, keyTail, keyTail, "the cache info's tails name " + keyTail
                    + ", where the key log holds no kset, and " + candidates + " places hold a kset #"
                    + keyTail.ksetSeq() + ": the cache info is damaged and where the log is cannot be told");
        }
        return new Decision(Verdict.CONSISTENT, keyTail, dirtyTail, null);
    }

    private static boolean samePlace(LogPosition a, LogPosition b) {
        return a != null && b != null && a.segment() == b.segment() && a.offset() == b.offset();
    }
}
