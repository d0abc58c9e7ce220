package io.pmcache.cache;

/**
 * One turn of the writeback worker: gathers the engine's figures, asks the {@link WritebackPolicy}
 * how fast to go, and writes back accordingly.
 *
 * <ul>
 *   <li>Full speed (drain, pressure, idle): one {@link Writeback#step} with the policy's
 *       full-speed batch ({@link WritebackPolicy#fullSpeedBatch}), which depends on how much the
 *       last full-speed batch absorbed and left to newer keys.</li>
 *   <li>Paced (controller): a token bucket filled at the decided rate. Once it holds a batch's
 *       worth — the rate times {@value #BATCH_SECONDS} s, {@link #MIN_BATCH}..the base batch —
 *       one step writes about that much (whole ksets, so the bucket may go below zero); between
 *       batches a step with limit 0 syncs the batch just written, so the dirty tail does not wait
 *       for the next batch. A paced batch is thus about one backing-device sync per second.</li>
 * </ul>
 * The time comes from the caller, so tests drive turns with a fake clock. Not thread-safe: one
 * worker (or one test thread) turns it.
 */
final class WritebackDriver {
    static final double BATCH_SECONDS = 1;
    static final long MIN_BATCH = 256L << 10;
    /** The longest wait between turns: the policy's inputs change meanwhile. */
    static final long MAX_WAIT_MILLIS = 200;

    enum Outcome {
        /** A batch was written (or a previous one synced) at full speed. */
        PROGRESS,
        /** Nothing sealed to write back. */
        IDLE,
        /** A backing-device call failed; the data stays dirty. */
        FAILED,
        /** Paced: waiting for the rate to allow the next batch (a paced batch may have been written). */
        PACED
    }

    /** What a turn did, how long to wait before the next one (paced), and the policy's decision. */
    record Turn(Outcome outcome, long waitMillis, WritebackPolicy.Decision decision) {
    }

    private final Engine e;
    private final Writeback writeback;
    private final GarbageCollector gc;
    private final WritebackPolicy policy;
    private boolean pacing;
    /** What the last full-speed batch absorbed and left to newer keys. */
    private WritebackPolicy.LastBatch lastFullSpeed = WritebackPolicy.LastBatch.NONE;
    private double tokens;
    private long refilled;

    WritebackDriver(Engine e, Writeback writeback, GarbageCollector gc, WritebackPolicy policy) {
        this.e = e;
        this.writeback = writeback;
        this.gc = gc;
        this.policy = policy;
    }

    /** The engine's figures now. */
    WritebackPolicy.Inputs inputs() {
        var info = e.info.current();
        CacheStats s = e.stats;
        return new WritebackPolicy.Inputs(s.dirtyBytes.sum(), e.segments.count(), e.segments.segmentSize(),
                e.allocator.usedCount(), gc.threshold(), e.allocator.hasWaiters(),
                info.keyTail().ksetSeq() >= info.dirtyTail().ksetSeq(),
                s.reads.sum() + s.writes.sum() + s.flushes.sum() + s.trims.sum(), writeback.writtenUnsyncedBytes(),
                s.spaceWaits.sum());
    }

    /** One turn at {@code now} (nanoseconds). */
    Turn turn(long now) {
        WritebackPolicy.Inputs in = inputs();
        WritebackPolicy.Decision d = policy.decide(now, in, lastFullSpeed);
        if (d.fullSpeed()) {
            pacing = false;
            Writeback.Step s = writeback.step(WritebackPolicy.fullSpeedBatch(in, d.targetBytes(), lastFullSpeed));
            if (s == Writeback.Step.PROGRESS && writeback.lastBatchBytes() > 0) {
                lastFullSpeed = writeback.lastBatch();
            }
            return new Turn(outcome(s), 0, d);
        }
        long batch = Math.clamp((long) (d.rate() * BATCH_SECONDS), MIN_BATCH,
                WritebackPolicy.baseBatch(in.cacheBytes()));
        if (!pacing) {
            pacing = true;
            tokens = 0;
            refilled = now;
        }
        tokens = Math.min(batch, tokens + d.rate() * Math.max(0, now - refilled) / 1e9);
        refilled = now;
        if (tokens >= batch) {
            Writeback.Step s = writeback.step(batch);
            if (s == Writeback.Step.PROGRESS) {
                tokens -= writeback.lastBatchBytes();
            }
            if (s != Writeback.Step.PROGRESS || writeback.lastBatchBytes() > 0) {
                return new Turn(s == Writeback.Step.PROGRESS ? Outcome.PACED : outcome(s), 0, d);
            }
        } else if (writeback.step(0) == Writeback.Step.FAILED) {
            return new Turn(Outcome.FAILED, 0, d);
        }
        long wait = d.rate() <= 0 ? MAX_WAIT_MILLIS
                : (long) Math.ceil((batch - tokens) * 1000 / d.rate());
        return new Turn(Outcome.PACED, Math.clamp(wait, 1, MAX_WAIT_MILLIS), d);
    }

    private static Outcome outcome(Writeback.Step s) {
        return switch (s) {
            case PROGRESS -> Outcome.PROGRESS;
            case IDLE -> Outcome.IDLE;
            case FAILED -> Outcome.FAILED;
        };
    }
}
