package io.pmcache.cache;

import io.pmcache.device.DeviceClosedException;
import java.io.IOException;
import java.io.InterruptedIOException;

/**
 * Unchecked carrier of the checked exception that ends an engine call from deep inside (an
 * allocation that waits in a lambda, a persist inside the key log): the cache stopped
 * ({@link DeviceClosedException}), failed ({@link io.pmcache.device.DeviceFailedException}) or the
 * calling thread was interrupted. {@link Cache}'s public methods unwrap it, so callers only ever
 * see the {@link IOException}.
 */
final class EngineAbort extends RuntimeException {
    private final IOException io;

    EngineAbort(IOException io) {
        super(io.getMessage(), io, false, false);
        this.io = io;
    }

    static EngineAbort closed(String what) {
        return new EngineAbort(new DeviceClosedException(what));
    }

    static EngineAbort interrupted(String what) {
        return new EngineAbort(new InterruptedIOException(what));
    }

    IOException io() {
        return io;
    }
}
