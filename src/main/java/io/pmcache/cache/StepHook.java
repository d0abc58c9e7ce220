package io.pmcache.cache;

/**
 * Named instants inside writeback and gc steps, for tests that cut power exactly there.
 *
 * <p>Production code calls {@code e.hook.at(Point.X)} at each point; the default {@link #NONE}
 * does nothing. A test installs its own hook ({@link Cache#stepHookForTests}) that may block the
 * calling thread, freezing a worker mid-step while the test takes a power-cut image. Hooks are
 * called from any background thread (the writeback and gc workers, writeback's syncer) and
 * also from threads that run a step themselves (a drain, a writer that drops a segment's last
 * reference), so an implementation must be thread-safe.
 */
interface StepHook {
    /** Where a step is. Each point is reached after what its name says was done (and persisted). */
    enum Point {
        /** A writeback batch was gathered (nothing of it written yet); the previous batch's flush
         *  may be under way meanwhile. */
        WRITEBACK_GATHERED(true),
        /** One extent of a writeback batch was written to the backing device (others may not be yet). */
        WRITEBACK_BETWEEN_WRITES(true),
        /** The previous batch's backing writes completed; the backing device is about to be flushed
         *  (the next batch may be being gathered or written meanwhile). */
        WRITEBACK_BEFORE_SYNC(true),
        /** The backing device was flushed; the dirty tail is not yet advanced over the synced batch. */
        WRITEBACK_AFTER_SYNC(true),
        /** The dirty tail was advanced and persisted. */
        WRITEBACK_AFTER_TAIL(true),
        /** gc dropped the segment references of the keys of the kset at the key tail (reclaiming
         *  the segments whose last reference went); the key tail is not yet advanced. */
        GC_AFTER_UNREF(false),
        /** gc advanced and persisted the key tail past the kset (freeing a log segment it left). */
        GC_AFTER_TAIL(false),
        /** A data segment whose last reference went has its generation bumped and persisted; not yet free. */
        RECLAIM_AFTER_BUMP(false);

        private final boolean writeback;

        Point(boolean writeback) {
            this.writeback = writeback;
        }

        /** True for writeback points, false for gc and reclaim points. */
        boolean writeback() {
            return writeback;
        }
    }

    /** Called when a step reaches {@code p}. */
    void at(Point p);

    /** Does nothing. */
    StepHook NONE = p -> { };
}
