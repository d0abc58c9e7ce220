package io.pmcache.media;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A decorator that makes {@link #persist} of another {@link Medium} fail, for tests: the way an
 * msync that returns EIO (or a DAX write-back fault) reaches the engine, as an
 * {@link UncheckedIOException}. Chosen points: the {@code n}-th persist from now, every persist
 * from now on, or every persist overlapping an address range.
 *
 * <p>A failed persist does not reach the delegate: its stores stay unpersisted (on a
 * {@link PowerCutMedium} delegate a later cut may keep or drop them, as after a real failed msync).
 * Loads and stores go to the delegate's memory directly and never fail here.
 */
public final class FaultyMedium implements Medium {
    private final Medium delegate;
    private final AtomicLong persists = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    private volatile long failAt = Long.MAX_VALUE;
    private volatile boolean failAlways;
    private volatile long failFrom = -1;
    private volatile long failTo = -1;

    public FaultyMedium(Medium delegate) {
        this.delegate = delegate;
    }

    public Medium delegate() {
        return delegate;
    }

    /** Fails the {@code n}-th persist from now (1 = the next one), once. */
    public FaultyMedium failNthPersist(long n) {
        if (n < 1) {
            throw new IllegalArgumentException("n must be >= 1, got " + n);
        }
        failAt = persists.get() + n;
        return this;
    }

    /** Fails every persist from now on until {@link #heal}. */
    public FaultyMedium failAlways() {
        failAlways = true;
        return this;
    }

    /** Fails every persist that overlaps {@code [from, to)} until {@link #heal}. */
    public FaultyMedium failRange(long from, long to) {
        failFrom = from;
        failTo = to;
        return this;
    }

    public FaultyMedium heal() {
        failAlways = false;
        failAt = Long.MAX_VALUE;
        failFrom = -1;
        failTo = -1;
        return this;
    }

    /** Persists called so far (failed ones included). */
    public long persists() {
        return persists.get();
    }

    /** Persists failed so far. */
    public long failures() {
        return failed.get();
    }

    @Override
    public MemorySegment segment() {
        return delegate.segment();
    }

    @Override
    public long size() {
        return delegate.size();
    }

    @Override
    public void persist(long offset, long length) {
        long n = persists.incrementAndGet();
        if (failAlways || n == failAt || (length > 0 && offset < failTo && offset + length > failFrom)) {
            failed.incrementAndGet();
            throw new UncheckedIOException(new IOException("injected EIO: msync of [" + offset + ", +" + length
                    + ") of " + delegate.describe() + " failed"));
        }
        delegate.persist(offset, length);
    }

    @Override
    public String describe() {
        return delegate.describe() + " (faulty)";
    }

    /** Closes the delegate. */
    @Override
    public void close() throws IOException {
        delegate.close();
    }
}
