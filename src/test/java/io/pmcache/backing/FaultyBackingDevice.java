package io.pmcache.backing;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A decorator that injects faults into another {@link BackingDevice}, switchable at run time by
 * tests: failures ({@code IOException("injected EIO")}) per kind of operation, for the next
 * {@code n} calls, every n-th call, or until healed, and a stall (sleep) before every call.
 *
 * <p>An injected failure happens before the call reaches the delegate, so the delegate is
 * unchanged by a failed call. Size, fingerprint and describe never fail.
 *
 * <p>Thread-safe: settings are atomics read on every call; switching them while I/O runs is the
 * intended use.
 */
public final class FaultyBackingDevice implements BackingDevice {

    /** The kinds of operation that can be made to fail. {@code writeZeroes} counts as WRITE, {@code blockStatus} as READ. */
    public enum Op { READ, WRITE, FLUSH, TRIM }

    /** Remaining failures to inject per op; {@link Long#MAX_VALUE} means until healed. */
    private final Map<Op, AtomicLong> failuresLeft = new EnumMap<>(Op.class);
    private final Map<Op, AtomicLong> injected = new EnumMap<>(Op.class);
    /** Fail every n-th call per op (0 = off), counted by {@link #calls}. */
    private final Map<Op, AtomicLong> failEvery = new EnumMap<>(Op.class);
    private final Map<Op, AtomicLong> calls = new EnumMap<>(Op.class);
    private final BackingDevice delegate;
    private volatile long stallNanos;

    public FaultyBackingDevice(BackingDevice delegate) {
        this.delegate = delegate;
        for (Op op : Op.values()) {
            failuresLeft.put(op, new AtomicLong());
            injected.put(op, new AtomicLong());
            failEvery.put(op, new AtomicLong());
            calls.put(op, new AtomicLong());
        }
    }

    /** The wrapped device. */
    public BackingDevice delegate() {
        return delegate;
    }

    /** Fails every {@code op} call until {@link #heal} is called. */
    public FaultyBackingDevice failAlways(Op op) {
        failuresLeft.get(op).set(Long.MAX_VALUE);
        return this;
    }

    /** Fails the next {@code count} {@code op} calls, then lets them through again. */
    public FaultyBackingDevice failNext(Op op, long count) {
        if (count < 0) {
            throw new IllegalArgumentException("count must be >= 0, got " + count);
        }
        failuresLeft.get(op).set(count);
        return this;
    }

    /** Fails every {@code n}-th {@code op} call from now on (an intermittent fault) until healed. */
    public FaultyBackingDevice failEvery(Op op, long n) {
        if (n < 1) {
            throw new IllegalArgumentException("n must be >= 1, got " + n);
        }
        calls.get(op).set(0);
        failEvery.get(op).set(n);
        return this;
    }

    /** Stops failing {@code op}. */
    public FaultyBackingDevice heal(Op op) {
        failuresLeft.get(op).set(0);
        failEvery.get(op).set(0);
        return this;
    }

    /** Stops all failures and stalls. */
    public FaultyBackingDevice heal() {
        for (Op op : Op.values()) {
            heal(op);
        }
        stallNanos = 0;
        return this;
    }

    /** Sleeps {@code perCall} before every I/O call ({@link Duration#ZERO} to stop). */
    public FaultyBackingDevice stall(Duration perCall) {
        if (perCall.isNegative()) {
            throw new IllegalArgumentException("stall must not be negative: " + perCall);
        }
        stallNanos = perCall.toNanos();
        return this;
    }

    /** Failures injected so far, all ops. */
    public long injectedFailures() {
        return injected.values().stream().mapToLong(AtomicLong::get).sum();
    }

    /** Failures injected so far for {@code op}. */
    public long injectedFailures(Op op) {
        return injected.get(op).get();
    }

    @Override
    public long size() {
        return delegate.size();
    }

    @Override
    public long fingerprint() {
        return delegate.fingerprint();
    }

    @Override
    public String describe() {
        return "faulty(" + delegate.describe() + ")";
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        before(Op.READ);
        delegate.read(offset, dst);
    }

    @Override
    public void write(long offset, MemorySegment src, boolean fua) throws IOException {
        before(Op.WRITE);
        delegate.write(offset, src, fua);
    }

    @Override
    public void writeBehind(long offset, MemorySegment src) throws IOException {
        before(Op.WRITE);
        delegate.writeBehind(offset, src);
    }

    @Override
    public void flush() throws IOException {
        before(Op.FLUSH);
        delegate.flush();
    }

    /** The delegate's own flusher, failing and stalling as a FLUSH. */
    @Override
    public Flusher newFlusher() throws IOException {
        Flusher f = delegate.newFlusher();
        return new Flusher() {
            @Override
            public void flush() throws IOException {
                before(Op.FLUSH);
                f.flush();
            }

            @Override
            public void close() throws IOException {
                f.close();
            }
        };
    }

    @Override
    public void trim(long offset, long length) throws IOException {
        before(Op.TRIM);
        delegate.trim(offset, length);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean fua) throws IOException {
        before(Op.WRITE);
        delegate.writeZeroes(offset, length, fua);
    }

    /** Asks the delegate; fails and stalls as a READ. */
    @Override
    public java.util.List<io.pmcache.device.BlockStatus> blockStatus(long offset, long length, int maxExtents)
            throws IOException {
        before(Op.READ);
        return delegate.blockStatus(offset, length, maxExtents);
    }

    @Override
    public void close() throws IOException {
        delegate.close();
    }

    private void before(Op op) throws IOException {
        long stall = stallNanos;
        if (stall > 0) {
            try {
                Thread.sleep(Duration.ofNanos(stall));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException(describe() + ": interrupted while stalled");
            }
        }
        long every = failEvery.get(op).get();
        boolean intermittent = every > 0 && calls.get(op).incrementAndGet() % every == 0;
        if (intermittent || takeFailure(failuresLeft.get(op))) {
            injected.get(op).incrementAndGet();
            throw new IOException("injected EIO (" + op + " on " + delegate.describe() + ")");
        }
    }

    /** Consumes one failure if any is left; MAX_VALUE is never consumed. */
    private static boolean takeFailure(AtomicLong left) {
        long n;
        do {
            n = left.get();
            if (n == 0) {
                return false;
            }
        } while (n != Long.MAX_VALUE && !left.compareAndSet(n, n - 1));
        return true;
    }
}
