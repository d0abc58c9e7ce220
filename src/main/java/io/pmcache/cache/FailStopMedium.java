package io.pmcache.cache;

import io.pmcache.media.Medium;
import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * The medium as the engine sees it: a persist that fails puts the cache into the failed state
 * ({@link FailState}), and once failed every persist fails at once, so nothing that depends on a
 * failed persist can be reported durable afterwards. Persist failures surface as an
 * {@link EngineAbort} carrying the {@link io.pmcache.device.DeviceFailedException}.
 */
final class FailStopMedium implements Medium {
    private final Medium inner;
    private final FailState state;

    FailStopMedium(Medium inner, FailState state) {
        this.inner = inner;
        this.state = state;
    }

    @Override
    public MemorySegment segment() {
        return inner.segment();
    }

    @Override
    public long size() {
        return inner.size();
    }

    @Override
    public void persist(long offset, long length) {
        if (state.failed()) {
            throw new EngineAbort(state.exception());
        }
        try {
            inner.persist(offset, length);
        } catch (RuntimeException | Error ex) {
            state.fail("persist of [" + offset + ", +" + length + ") of " + inner.describe() + " failed", ex);
            throw new EngineAbort(state.exception());
        }
    }

    @Override
    public String describe() {
        return inner.describe();
    }

    /** The caller owns the medium and closes it. */
    @Override
    public void close() throws IOException {
    }
}
