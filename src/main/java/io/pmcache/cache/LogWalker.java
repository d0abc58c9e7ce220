package io.pmcache.cache;

import io.pmcache.format.LogPosition;
import java.util.BitSet;

/**
 * Walks the key log kset by kset from a position, following the segment links: the one walk that
 * replay (to rebuild the index), the checker (to verify) and the generation recovery share.
 *
 * <p>At a position that holds no valid kset carrying the expected sequence, the walk looks for
 * proof that the log goes on ({@link LogGap#find}); a visitor that handles the gap
 * ({@link Visitor#gap}: replay repairs it, the checker reads around it) lets the walk go on past
 * it. Otherwise the walk stops there ({@link End#NO_KSET}, with the gap in the result when there
 * was proof: damage, not the end of the log), where the segment chain ends ({@link End#CHAIN_ENDS}), where the chain
 * links back to a segment already walked ({@link End#LOOP}), or before a position the caller's
 * {@link Visitor#stopBefore} picks ({@link End#STOPPED}). Every segment the walk enters is set in
 * the caller's {@code chain}, the starting one first.
 */
final class LogWalker {
    private LogWalker() {
    }

    /** Why a walk stopped. */
    enum End { NO_KSET, CHAIN_ENDS, LOOP, STOPPED }

    /**
     * Where and why a walk stopped. {@code end} is the position after the last kset walked (for
     * {@link End#NO_KSET} resolved into the next segment when the kset would start there: where the
     * log goes on); for {@link End#LOOP}, {@code loopSegment} is the segment linked back to.
     */
    record Result(LogPosition end, End why, int loopSegment, LogGap gap) {
        Result(LogPosition end, End why, int loopSegment) {
            this(end, why, loopSegment, null);
        }
    }

    /** What the caller does along the walk. */
    interface Visitor {
        /** Called for each valid kset, in log order. */
        void kset(LogReader.KsetAt k);

        /** True to stop before the kset at {@code pos} (not yet resolved). Default: never. */
        default boolean stopBefore(LogPosition pos) {
            return false;
        }

        /** The walk entered {@code segment} (not the starting one). */
        default void enteredSegment(int segment) {
        }

        /**
         * No valid kset at {@code gap.at()}, but proof that the log went on. Return true to go on
         * past it: the walk then reads the kset there again (the visitor may have repaired it),
         * else visits the recovered kset {@code gap} describes, else jumps to the continuation.
         * Default: false, the walk ends there.
         */
        default boolean gap(LogGap gap) {
            return false;
        }
    }

    static Result walk(LogReader reader, LogPosition from, BitSet chain, Visitor visitor) {
        LogPosition pos = from;
        LogReader.KsetAt previous = null;
        chain.set(pos.segment());
        while (true) {
            if (visitor.stopBefore(pos)) {
                return new Result(pos, End.STOPPED, -1);
            }
            LogPosition resolved = reader.resolve(pos);
            if (resolved == null) {
                return new Result(pos, End.CHAIN_ENDS, -1);
            }
            if (resolved.segment() != pos.segment()) {
                if (chain.get(resolved.segment())) {
                    return new Result(pos, End.LOOP, resolved.segment());
                }
                chain.set(resolved.segment());
                visitor.enteredSegment(resolved.segment());
            }
            LogReader.KsetAt k = reader.read(resolved);
            if (k == null) {
                LogGap gap = LogGap.find(reader, resolved, previous);
                if (gap == null || !gap.passable() || !visitor.gap(gap)) {
                    return new Result(resolved, End.NO_KSET, -1, gap);
                }
                k = reader.read(resolved); // repaired by the visitor?
                if (k == null && gap.recoveredCapacity() > 0) {
                    k = reader.at(resolved, gap.recoveredCapacity());
                }
                if (k == null) {
                    LogPosition c = gap.continuation();
                    if (c.segment() != resolved.segment()) {
                        if (chain.get(c.segment())) {
                            return new Result(resolved, End.LOOP, c.segment(), gap);
                        }
                        chain.set(c.segment());
                        visitor.enteredSegment(c.segment());
                    }
                    pos = c;
                    continue;
                }
            }
            visitor.kset(k);
            previous = k;
            pos = k.next();
        }
    }
}
