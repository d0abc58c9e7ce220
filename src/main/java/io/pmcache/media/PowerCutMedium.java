package io.pmcache.media;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

/**
 * An in-memory {@link Medium} that simulates power loss, for tests.
 *
 * <p>It holds two images of the same size: the <em>live</em> image ({@link #segment()}, what the
 * CPU sees) and the <em>persisted</em> image (what the medium would hold after a power cut if
 * the CPU caches were lost). Both start zeroed.
 *
 * <ul>
 *   <li>{@link #persist} widens the range to whole 64-byte lines and copies those lines from the
 *       live image to the persisted image.</li>
 *   <li>{@link #cut(long)} models power loss: the new medium holds the persisted image, plus, for
 *       each aligned 8-byte word where live and persisted differ, the live word with probability
 *       1/2 (chosen by {@code SplittableRandom(seed)} in address order). A word is never torn:
 *       it is wholly old or wholly new, as 8-byte aligned stores are on x86-64 and ARMv8.</li>
 *   <li>{@link #crash()} models a process crash: the mapped pages survive, so the new medium holds
 *       the whole live image.</li>
 * </ul>
 *
 * <p>The word granularity means that a store of fewer than 8 bytes next to unrelated unpersisted
 * bytes in the same word survives or vanishes together with them. A trailing partial word (size
 * not a multiple of 8) is one unit.
 *
 * <p>Crash-point sweeps: {@link #observePersists} installs an observer called before each
 * non-empty persist with its index, so a test can count the persists of a deterministic workload
 * and, on a rerun, take a {@link #cut} right before the i-th one.
 *
 * <p>Thread-safety: the live image may be read and written from any thread. {@code persist},
 * {@code cut}, {@code crash} and {@code copy} are serialized with each other, so a persist that
 * returned before a cut is in the cut's persisted image.
 */
public final class PowerCutMedium implements Medium {

    /** Persistence granularity: a CPU cache line. */
    public static final int LINE = 64;
    private static final int WORD = Long.BYTES;
    private static final long ALIGNMENT = 4096;

    private final long size;
    private final Arena arena;
    private final MemorySegment live;
    private final MemorySegment persisted;
    private final ReentrantLock lock = new ReentrantLock();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final AtomicLong persists = new AtomicLong();
    private volatile PersistObserver observer;

    /** Sees each persist of a medium before it takes effect (crash-point sweeps). */
    @FunctionalInterface
    public interface PersistObserver {
        /**
         * Called in the persisting thread before {@code [offset, offset + length)} is persisted,
         * outside the medium's lock: it may {@link #cut}, {@link #copy} or {@link #crash} the
         * medium, whose persisted image then does not hold this persist yet.
         *
         * @param index the number of non-empty persists of this medium before this one
         */
        void beforePersist(PowerCutMedium medium, long index, long offset, long length);
    }

    private PowerCutMedium(long size) {
        if (size <= 0) {
            throw new IllegalArgumentException("medium size must be positive, got " + size);
        }
        this.size = size;
        this.arena = Arena.ofShared();
        this.live = arena.allocate(size, ALIGNMENT);
        this.persisted = arena.allocate(size, ALIGNMENT);
    }

    /** A zeroed medium of {@code size} bytes, all of it persisted. */
    public static PowerCutMedium create(long size) {
        return new PowerCutMedium(size);
    }

    /** A medium whose live and persisted images are both {@code image} (e.g. a saved medium). */
    public static PowerCutMedium of(byte[] image) {
        PowerCutMedium m = new PowerCutMedium(image.length);
        MemorySegment src = MemorySegment.ofArray(image);
        m.live.copyFrom(src);
        m.persisted.copyFrom(src);
        return m;
    }

    /** A medium whose live and persisted images are both {@code image}. */
    public static PowerCutMedium of(MemorySegment image) {
        PowerCutMedium m = new PowerCutMedium(image.byteSize());
        m.live.copyFrom(image);
        m.persisted.copyFrom(image);
        return m;
    }

    @Override
    public MemorySegment segment() {
        return live;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public void persist(long offset, long length) {
        Objects.checkFromIndexSize(offset, length, size);
        if (length == 0) {
            return;
        }
        long index = persists.getAndIncrement();
        PersistObserver o = observer;
        if (o != null) {
            o.beforePersist(this, index, offset, length);
        }
        long start = offset & -LINE;
        long end = Math.min(size, (offset + length + LINE - 1) & -LINE);
        lock.lock();
        try {
            MemorySegment.copy(live, start, persisted, start, end - start);
        } finally {
            lock.unlock();
        }
    }

    /** Installs (or, with null, removes) the observer of this medium's persists. */
    public void observePersists(PersistObserver o) {
        this.observer = o;
    }

    /** Non-empty persists of this medium so far (media made by {@link #cut} etc. start at 0). */
    public long persists() {
        return persists.get();
    }

    /** The persisted image, read-only: what a power cut would keep for certain. */
    public MemorySegment persistedImage() {
        return persisted.asReadOnly();
    }

    /**
     * Power loss: a new medium holding the persisted image plus a seeded random subset of the
     * unpersisted 8-byte words. This medium is unchanged and stays usable.
     */
    public PowerCutMedium cut(long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        lock.lock();
        try {
            PowerCutMedium next = new PowerCutMedium(size);
            next.live.copyFrom(persisted);
            forEachDirtyWord((word, end) -> {
                if (random.nextBoolean()) {
                    copyWord(live, next.live, word, end);
                }
            });
            next.persisted.copyFrom(next.live);
            return next;
        } finally {
            lock.unlock();
        }
    }

    /** Process crash: a new medium whose live and persisted images are this live image. */
    public PowerCutMedium crash() {
        lock.lock();
        try {
            return of(live);
        } finally {
            lock.unlock();
        }
    }

    /** An exact copy: same live image, same persisted image. */
    public PowerCutMedium copy() {
        lock.lock();
        try {
            PowerCutMedium next = new PowerCutMedium(size);
            next.live.copyFrom(live);
            next.persisted.copyFrom(persisted);
            return next;
        } finally {
            lock.unlock();
        }
    }

    /** Number of 8-byte words (the trailing partial word counts as one) that differ from the persisted image. */
    public long unpersistedWords() {
        long[] count = {0};
        lock.lock();
        try {
            forEachDirtyWord((word, end) -> count[0]++);
        } finally {
            lock.unlock();
        }
        return count[0];
    }

    @Override
    public String describe() {
        return "power-cut medium (" + size + " bytes in memory)";
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "PowerCutMedium[" + size + " bytes]";
    }

    @FunctionalInterface
    private interface WordVisitor {
        void visit(long word, long end);
    }

    /**
     * Visits, in address order, each word {@code [word, end)} (8-byte aligned, {@code end} is
     * {@code word + 8} except for a trailing partial word) where live and persisted differ.
     * Equal stretches are skipped with the vectorized {@link MemorySegment#mismatch}.
     */
    private void forEachDirtyWord(WordVisitor visitor) {
        long pos = 0;
        while (pos < size) {
            long rel = MemorySegment.mismatch(live, pos, size, persisted, pos, size);
            if (rel < 0) {
                return;
            }
            long word = (pos + rel) & -WORD;
            long end = Math.min(size, word + WORD);
            visitor.visit(word, end);
            pos = end;
        }
    }

    /** Copies one word as a single 8-byte load (not torn by a concurrent aligned store). */
    private static void copyWord(MemorySegment from, MemorySegment to, long word, long end) {
        if (end - word == WORD) {
            to.set(ValueLayout.JAVA_LONG, word, from.get(ValueLayout.JAVA_LONG, word));
        } else {
            MemorySegment.copy(from, word, to, word, end - word);
        }
    }
}
