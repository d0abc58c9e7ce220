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
 *       only writes the same data back again, in log order; the other way would lose data. (Not
 *       quite "the same" when a direct write — writethrough, writearound, a sequential bypass —
 *       reached the backing device since: its older cached version can come back. One more
 *       reason every verdict but CONSISTENT is reported as damage.)</li>
 *   <li>Neither, the walk ends first: the log is damaged between the tails. If a valid kset with
 *       the dirty tail's sequence is at the dirty tail, the damaged part was written back and
 *       replay resumes at the dirty tail ({@link Verdict#RESUME_AT_DIRTY_TAIL}); otherwise the
 *       dirty tail is not to be trusted either, and everything from the key tail is treated as
 *       dirty ({@link Verdict#ALL_DIRTY}).</li>
 * </ul>
 * An empty log at the dirty tail is normal (everything written back; the key tail is there too
 * when gc passed it all), unless a kset with the dirty tail's sequence starts elsewhere, at the
 * dirty tail's offset or at offset 0 of some segment: then the tails are wrong and the log is where
 * that kset is ({@link Verdict#TAILS_MOVED}, everything from it treated as dirty). It is the dirty
 * tail's kset that must be nowhere: the key tail's is where the walk found it, which may be offset
 * 0 of the next segment when the key tail names the end of one (gc passed a segment's last kset
 * before the head moved on).
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
                return at != null && reader.read(at) == null ? emptyAtDirtyTail(reader, segments, keyTail, dirtyTail)
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

    /**
     * The walk from the key tail reached the dirty tail and the log is empty there: normal, unless
     * the kset the dirty tail expects starts elsewhere.
     */
    private static Decision emptyAtDirtyTail(LogReader reader, int segments, LogPosition keyTail,
                                             LogPosition dirtyTail) {
        LogPosition found = null;
        int candidates = 0;
        for (int s = 0; s < segments; s++) {
            for (int off : new int[] {0, dirtyTail.offset()}) {
                LogPosition p = new LogPosition(s, off, dirtyTail.ksetSeq());
                if ((s != dirtyTail.segment() || off != dirtyTail.offset()) && reader.read(p) != null
                        && (found == null || !found.equals(p))) {
                    found = p;
                    candidates++;
                }
            }
        }
        String tails = keyTail.equals(dirtyTail) ? "the cache info's tails name " + dirtyTail
                : "the cache info's dirty tail names " + dirtyTail;
        if (candidates == 1) {
            return new Decision(Verdict.TAILS_MOVED, found, found, tails + ", where the key log holds no kset, but kset #"
                    + dirtyTail.ksetSeq() + " starts at " + found
                    + ": the cache info is damaged; replaying from there, all of it treated as dirty");
        }
        if (candidates > 1) {
            return new Decision(Verdict.ALL_DIRTY, keyTail, keyTail, tails + ", where the key log holds no kset, and "
                    + candidates + " places hold a kset #" + dirtyTail.ksetSeq()
                    + ": the cache info is damaged and where the log is cannot be told");
        }
        return new Decision(Verdict.CONSISTENT, keyTail, dirtyTail, null);
    }

    private static boolean samePlace(LogPosition a, LogPosition b) {
        return a != null && b != null && a.segment() == b.segment() && a.offset() == b.offset();
    }
}
