package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.testing.Hangs;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Threads race reads (and so read-miss fills), writes, write-zeroes and trims on the same 4 KiB
 * blocks and the same sectors of a small cache while writeback and gc churn, with no lock in the
 * test: unlike {@link ConcurrencyTest}, nothing keeps two operations on one block apart.
 *
 * <h2>How a read is judged without a lock</h2>
 * Every write stamps each 512-byte sector with its id (thread and op number), the sector number,
 * and a pattern derived from both, so any sector read names the write it came from, or reads as
 * zeros, or as the backing device's initial stamp; anything else is garbage or a sector from the
 * wrong place, reported at once. Each operation takes a tick from one clock before it starts and
 * after it returns, so "A completed before B began" is {@code A.end < B.start}. A sector is a
 * regular register:
 * <ul>
 *   <li>a read may return the value of any mutation of that sector that began before the read
 *       ended, unless another mutation of the sector began after it ended and itself ended
 *       before the read began (then the value is stale);</li>
 *   <li>after all threads joined, each sector holds the value of a mutation not followed, in
 *       real time, by another mutation of that sector (a linearizability-light check), and a
 *       flush, a reopen and a drain to the backing device all agree with that final read.</li>
 * </ul>
 * Each thread also owns private sectors (a 1 MiB region, and the first half of every
 * {@code THREADS}-th block of a mixed zone whose other half is shared): only it writes them, so
 * its reads of them must return exactly what its own last operation left there (a simple and
 * strong check, made at once).
 *
 * <h2>Layout of the 32 MiB device</h2>
 * <pre>
 *   [0, 6 MiB)    private: thread t owns [t MiB, t+1 MiB)
 *   [6, 8 MiB)    mixed: in each 4 KiB block b, sectors 0-3 belong to thread b % THREADS,
 *                 sectors 4-7 are shared (so one block sees private and shared operations);
 *                 most operations go to its first HOT_BLOCKS blocks, so that they collide
 *   [8, 32 MiB)   shared: hot windows of 64 KiB at 8 MiB and of 128 KiB around the 12 MiB
 *                 range boundary, and a 4 MiB window at 16 MiB that churns through the
 *                 16 MiB cache (misses, fills), besides operations anywhere
 * </pre>
 * In a run on a loaded 2-core machine about 7,000 sector reads overlapped in time a mutation
 * of the same sector, and about 2,000 returned the value of a write still in flight.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 600, unit = TimeUnit.SECONDS)
class SameBlockRaceTest {
    private static final long MIB = CacheHarness.MIB;
    private static final int SECTOR = 512;
    private static final int THREADS = 6;
    private static final int OPS_PER_THREAD = 3000;
    private static final int DEVICE = (int) (32 * MIB);
    private static final int SECTORS = DEVICE / SECTOR;
    private static final long MIXED_START = THREADS * MIB;
    private static final long SHARED_START = 8 * MIB;
    private static final int SHARED = -1;
    /** Mutations of the mixed zone go mostly to its first blocks, so that they collide. */
    private static final int HOT_BLOCKS = 48;

    /** What a sector reads as: zeros, the initial backing content, or a write's id (never 0 or INITIAL). */
    private static final long ZERO = 0;
    private static final long INITIAL = -1;
    /** A sector that is neither: reported at once. */
    private static final long GARBAGE = Long.MIN_VALUE;

    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED;

    enum Kind { WRITE, ZERO, TRIM }

    /** A completed mutation; its ticks bracket the call. */
    record Mutation(int thread, int op, Kind kind, long offset, int length, long start, long end) {
        long id() {
            return SameBlockRaceTest.id(thread, op);
        }

        boolean covers(int sector) {
            return sector >= offset / SECTOR && sector < (offset + length) / SECTOR;
        }

        @Override
        public String toString() {
            return kind + " #" + op + " of thread " + thread + " [" + offset + ", +" + length + ") ticks "
                    + start + ".." + end;
        }
    }

    /** A completed read and what each of its sectors held. */
    record Read(int thread, int op, long offset, long start, long end, long[] seen) {
    }

    static long id(int thread, int op) {
        return ((long) (thread + 1) << 32) | op;
    }

    static String describe(long v) {
        if (v == ZERO) {
            return "zeros";
        }
        if (v == INITIAL) {
            return "the initial content";
        }
        return "write #" + (int) v + " of thread " + ((v >>> 32) - 1);
    }

    @Test
    void sameBlockReadsWritesZeroesAndTrimsRaceWithoutTestLocks(Seed seed) throws Exception {
        MemoryBackingDevice disk = new MemoryBackingDevice(DEVICE, 7);
        byte[] initial = new byte[DEVICE];
        for (int s = 0; s < SECTORS; s++) {
            stamp(initial, s * SECTOR, INITIAL, s);
        }
        disk.write(0, MemorySegment.ofArray(initial), false);
        initial = null;
        AtomicLong clock = new AtomicLong();
        /** Per sector, the value its owner's last mutation left (only the owner reads or writes an entry). */
        long[] own = new long[SECTORS];
        Arrays.fill(own, INITIAL);
        List<List<Mutation>> mutations = new ArrayList<>();
        List<List<Read>> reads = new ArrayList<>();
        for (int t = 0; t < THREADS; t++) {
            mutations.add(new ArrayList<>());
            reads.add(new ArrayList<>());
        }
        try (CacheHarness h = CacheHarness.create(16, disk, new CacheOptions(4, 40, true, true), false)) {
            Throwable[] failed = new Throwable[THREADS];
            Thread[] threads = new Thread[THREADS];
            for (int t = 0; t < THREADS; t++) {
                int me = t;
                SplittableRandom r = new SplittableRandom(seed.value() + t);
                threads[t] = Thread.ofPlatform().name("race-" + t).start(() -> {
                    try {
                        run(h, me, r, clock, own, mutations.get(me), reads.get(me), seed);
                    } catch (Throwable ex) {
                        failed[me] = ex;
                    }
                });
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(480);
            for (Thread th : threads) {
                Hangs.join(th, Duration.ofNanos(Math.max(1, deadline - System.nanoTime())),
                        seed + ": racing thread " + th.getName(), Hangs.cacheThreadsAnd("race-"));
            }
            for (Throwable ex : failed) {
                if (ex != null) {
                    throw ex instanceof AssertionError a ? a : new AssertionError(seed + ": a racing thread failed", ex);
                }
            }
            CacheStatus st = h.cache().status();
            assertThat(st.segmentsReclaimed()).as("gc churned").isPositive();
            assertThat(st.writebackBytes()).as("writeback churned").isPositive();
            assertThat(st.fillBytes()).as("read misses filled the cache").isPositive();

            History history = new History(mutations);
            List<String> problems = new ArrayList<>();
            for (List<Read> rs : reads) {
                for (Read rd : rs) {
                    for (int i = 0; i < rd.seen().length && problems.size() < 20; i++) {
                        int s = (int) (rd.offset() / SECTOR) + i;
                        String p = history.check(s, rd.seen()[i], rd.start(), rd.end());
                        if (p != null) {
                            problems.add("read #" + rd.op() + " of thread " + rd.thread() + " (ticks " + rd.start()
                                    + ".." + rd.end() + "), sector " + s + ": " + p);
                        }
                    }
                }
            }
            assertThat(problems).as("%s: reads during the race", seed).isEmpty();

            h.flush();
            byte[] last = readAll(h);
            for (int s = 0; s < SECTORS && problems.size() < 20; s++) {
                long v = decode(last, s * SECTOR, s);
                String p = v == GARBAGE ? "garbage: " + garbage(last, s * SECTOR, s)
                        : history.check(s, v, Long.MAX_VALUE, Long.MAX_VALUE);
                if (p != null) {
                    problems.add("after join, sector " + s + ": " + p);
                }
            }
            assertThat(problems).as("%s: final content (each sector: a write not followed by another)", seed)
                    .isEmpty();
            h.reopen();
            byte[] reopened = readAll(h);
            assertThat(firstDifference(reopened, last)).as("%s: first sector that differs after reopen", seed)
                    .isEqualTo(-1);
            h.flushAll();
            byte[] drained = disk.toByteArray();
            assertThat(firstDifference(drained, last)).as("%s: first sector of the drained disk that differs", seed)
                    .isEqualTo(-1);
        }
    }

    /** One racing thread: OPS_PER_THREAD operations; a wrong read fails it at once. */
    private static void run(CacheHarness h, int t, SplittableRandom r, AtomicLong clock, long[] own,
                            List<Mutation> mutations, List<Read> reads, Seed seed) throws IOException {
        for (int op = 0; op < OPS_PER_THREAD; op++) {
            int dice = r.nextInt(100);
            if (dice < 3) {
                h.flush();
                continue;
            }
            if (dice < 45) {
                long[] span = readSpan(r, t);
                long off = span[0];
                int len = (int) span[1];
                byte[] got = new byte[len];
                long start = clock.incrementAndGet();
                h.read(off, MemorySegment.ofArray(got));
                long end = clock.incrementAndGet();
                long[] seen = new long[len / SECTOR];
                for (int i = 0; i < seen.length; i++) {
                    int s = (int) (off / SECTOR) + i;
                    long v = decode(got, i * SECTOR, s);
                    String where = seed + ": thread " + t + " read #" + op + " [" + off + ", +" + len + ") sector " + s;
                    if (v == GARBAGE) {
                        throw new AssertionError(where + ": garbage: " + garbage(got, i * SECTOR, s));
                    }
                    if (owner(s) == t && v != own[s]) {
                        throw new AssertionError(where + " (private to this thread): read " + describe(v)
                                + ", but this thread's last operation there left " + describe(own[s]));
                    }
                    seen[i] = v;
                }
                reads.add(new Read(t, op, off, start, end, seen));
                continue;
            }
            Kind kind = dice < 80 ? Kind.WRITE : dice < 90 ? Kind.ZERO : Kind.TRIM;
            long[] span = mutationSpan(r, t);
            long off = span[0];
            int len = (int) span[1];
            boolean fua = r.nextInt(20) == 0;
            long id = id(t, op);
            byte[] data = null;
            if (kind == Kind.WRITE) {
                data = new byte[len];
                for (int i = 0; i < len / SECTOR; i++) {
                    stamp(data, i * SECTOR, id, off / SECTOR + i);
                }
            }
            long start = clock.incrementAndGet();
            switch (kind) {
                case WRITE -> h.write(off, MemorySegment.ofArray(data), fua);
                case ZERO -> h.writeZeroes(off, len, fua);
                case TRIM -> h.trim(off, len);
            }
            long end = clock.incrementAndGet();
            mutations.add(new Mutation(t, op, kind, off, len, start, end));
            for (int s = (int) (off / SECTOR); s < (off + len) / SECTOR; s++) {
                if (owner(s) == t) {
                    own[s] = kind == Kind.WRITE ? id : ZERO;
                }
            }
        }
    }

    /** The thread that alone mutates sector {@code s}, or SHARED. */
    static int owner(int s) {
        long pos = (long) s * SECTOR;
        if (pos < MIXED_START) {
            return (int) (pos / MIB);
        }
        if (pos < SHARED_START) {
            return s % 8 < 4 ? (s / 8) % THREADS : SHARED;
        }
        return SHARED;
    }

    /** {offset, length} of a mutation by thread {@code t}: it never touches another thread's private sectors. */
    private static long[] mutationSpan(SplittableRandom r, int t) {
        int zone = r.nextInt(100);
        if (zone < 30) { // own private region
            int sectors = 1 + (r.nextInt(5) == 0 ? r.nextInt(256) : r.nextInt(32));
            long off = t * MIB + (long) r.nextInt((int) (MIB / SECTOR) - sectors + 1) * SECTOR;
            return new long[] {off, (long) sectors * SECTOR};
        }
        int firstBlock = (int) (MIXED_START / 4096);
        int blocks = (int) ((SHARED_START - MIXED_START) / 4096);
        if (zone < 45) { // the private half of one of its mixed blocks
            int first = ((t - firstBlock % THREADS) % THREADS + THREADS) % THREADS;
            int span = r.nextInt(5) == 0 ? blocks : HOT_BLOCKS; // mostly the hot first blocks
            int block = firstBlock + first + THREADS * r.nextInt((span - first + THREADS - 1) / THREADS);
            int from = r.nextInt(4);
            int sectors = 1 + r.nextInt(4 - from);
            return new long[] {block * 4096L + from * SECTOR, (long) sectors * SECTOR};
        }
        if (zone < 60) { // the shared half of any mixed block
            int block = firstBlock + r.nextInt(r.nextInt(5) == 0 ? blocks : HOT_BLOCKS);
            int from = 4 + r.nextInt(4);
            int sectors = 1 + r.nextInt(8 - from);
            return new long[] {block * 4096L + from * SECTOR, (long) sectors * SECTOR};
        }
        int sectors = r.nextInt(5) == 0 ? 1 + r.nextInt(512) : 1 + r.nextInt(24);
        return new long[] {sharedOffset(r, sectors), (long) sectors * SECTOR};
    }

    /** A sector-aligned offset in the shared zone with room for {@code sectors}. */
    private static long sharedOffset(SplittableRandom r, int sectors) {
        long off = switch (r.nextInt(4)) {
            case 0 -> SHARED_START + r.nextLong(64 * 1024);
            case 1 -> 12 * MIB - 64 * 1024 + r.nextLong(128 * 1024);
            case 2 -> 16 * MIB + r.nextLong(4 * MIB);
            default -> SHARED_START + r.nextLong(DEVICE - SHARED_START);
        };
        off = Math.max(SHARED_START, Math.min(off, DEVICE - (long) sectors * SECTOR));
        return off - off % SECTOR;
    }

    /** {offset, length} of a read: anywhere, mostly where the mutations are. */
    private static long[] readSpan(SplittableRandom r, int t) {
        int sectors;
        long off;
        switch (r.nextInt(5)) {
            case 0 -> {
                sectors = 1 + r.nextInt(64);
                off = t * MIB + r.nextLong(MIB);
            }
            case 1 -> {
                sectors = 1 + r.nextInt(32);
                off = MIXED_START + r.nextLong(r.nextInt(5) == 0 ? SHARED_START - MIXED_START : HOT_BLOCKS * 4096L);
            }
            case 2 -> {
                sectors = 1 + r.nextInt(64);
                off = sharedOffset(r, sectors);
            }
            case 3 -> { // across the zone boundaries
                sectors = 1 + r.nextInt(256);
                off = (r.nextBoolean() ? MIXED_START : SHARED_START) - 64 * 1024 + r.nextLong(128 * 1024);
            }
            default -> {
                sectors = 1 + r.nextInt(512);
                off = r.nextLong(DEVICE);
            }
        }
        off = Math.min(off, DEVICE - (long) sectors * SECTOR);
        return new long[] {off - off % SECTOR, (long) sectors * SECTOR};
    }

    // ---------------------------------------------------------------- sector stamps

    /** Sector {@code sector}'s content as written by {@code id}: the id, the sector, then a pattern of both. */
    static void stamp(byte[] dst, int at, long id, long sector) {
        MemorySegment m = MemorySegment.ofArray(dst);
        m.set(LONG, at, id);
        m.set(LONG, at + 8, sector);
        for (int i = 16; i < SECTOR; i += 8) {
            m.set(LONG, at + i, pattern(id, sector, i));
        }
    }

    private static long pattern(long id, long sector, int i) {
        long z = id * 0x9E3779B97F4A7C15L + sector * SECTOR + i;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** What the sector at {@code at} holds, if it is sector {@code sector}'s zeros or stamp; else GARBAGE. */
    static long decode(byte[] buf, int at, long sector) {
        MemorySegment m = MemorySegment.ofArray(buf);
        boolean zero = true;
        for (int i = 0; i < SECTOR && zero; i += 8) {
            zero = m.get(LONG, at + i) == 0;
        }
        if (zero) {
            return ZERO;
        }
        long id = m.get(LONG, at);
        if (m.get(LONG, at + 8) != sector || (id != INITIAL && (id >>> 32 < 1 || id >>> 32 > THREADS))) {
            return GARBAGE;
        }
        for (int i = 16; i < SECTOR; i += 8) {
            if (m.get(LONG, at + i) != pattern(id, sector, i)) {
                return GARBAGE;
            }
        }
        return id;
    }

    /** Says what a garbage sector looks like: what its header claims and where it stops matching that. */
    static String garbage(byte[] buf, int at, long sector) {
        MemorySegment m = MemorySegment.ofArray(buf);
        long id = m.get(LONG, at);
        long claimed = m.get(LONG, at + 8);
        StringBuilder sb = new StringBuilder("header says ").append(id == INITIAL || (id >>> 32 >= 1
                && id >>> 32 <= THREADS) ? describe(id) : "id 0x" + Long.toHexString(id))
                .append(" for sector ").append(claimed);
        if (claimed != sector) {
            sb.append(" (a sector from another place)");
        }
        for (int i = 16; i < SECTOR; i += 8) {
            if (m.get(LONG, at + i) != pattern(id, claimed, i)) {
                sb.append("; bytes from ").append(i).append(" on do not match it (0x")
                        .append(Long.toHexString(m.get(LONG, at + i))).append(')');
                break;
            }
        }
        return sb.toString();
    }

    private static byte[] readAll(CacheHarness h) throws IOException {
        byte[] all = new byte[DEVICE];
        for (int off = 0; off < DEVICE; off += (int) (4 * MIB)) {
            h.read(off, MemorySegment.ofArray(all).asSlice(off, 4 * MIB));
        }
        return all;
    }

    /** The first sector where {@code a} and {@code b} differ, or -1. */
    private static long firstDifference(byte[] a, byte[] b) {
        long at = Arrays.mismatch(a, b);
        return at < 0 ? -1 : at / SECTOR;
    }

    // ---------------------------------------------------------------- the history

    /** Every completed mutation, per sector, to judge what a read of that sector may return. */
    static final class History {
        private final Map<Long, Mutation> byId = new HashMap<>();
        /** Per sector: its mutations by end tick, and the latest start among the first i of them. */
        private final Mutation[][] byEnd = new Mutation[SECTORS][];
        private final long[][] maxStart = new long[SECTORS][];

        History(List<List<Mutation>> all) {
            int[] count = new int[SECTORS];
            for (List<Mutation> ms : all) {
                for (Mutation m : ms) {
                    byId.put(m.id(), m);
                    for (long s = m.offset() / SECTOR; s < (m.offset() + m.length()) / SECTOR; s++) {
                        count[(int) s]++;
                    }
                }
            }
            for (int s = 0; s < SECTORS; s++) {
                byEnd[s] = new Mutation[count[s]];
                count[s] = 0;
            }
            for (List<Mutation> ms : all) {
                for (Mutation m : ms) {
                    for (long s = m.offset() / SECTOR; s < (m.offset() + m.length()) / SECTOR; s++) {
                        byEnd[(int) s][count[(int) s]++] = m;
                    }
                }
            }
            for (int s = 0; s < SECTORS; s++) {
                Arrays.sort(byEnd[s], (a, b) -> Long.compare(a.end(), b.end()));
                long[] ms = new long[byEnd[s].length];
                long max = 0;
                for (int i = 0; i < ms.length; i++) {
                    max = Math.max(max, byEnd[s][i].start());
                    ms[i] = max;
                }
                maxStart[s] = ms;
            }
        }

        /**
         * Why sector {@code s} may not read as {@code v} in a read that ran from tick
         * {@code readStart} to {@code readEnd}; null if it may.
         */
        String check(int s, long v, long readStart, long readEnd) {
            long valueEnd;
            Mutation from = null;
            if (v == INITIAL) {
                valueEnd = 0;
            } else if (v == ZERO) {
                for (Mutation m : byEnd[s]) {
                    if (m.kind() != Kind.WRITE && m.start() < readEnd && (from == null || m.end() > from.end())) {
                        from = m;
                    }
                }
                if (from == null) {
                    return "reads as zeros, but no trim or zero of it had begun";
                }
                valueEnd = from.end();
            } else {
                from = byId.get(v);
                if (from == null || from.kind() != Kind.WRITE || !from.covers(s)) {
                    return "reads as " + describe(v) + ", which never wrote this sector";
                }
                if (from.start() >= readEnd) {
                    return "reads as " + from + ", which began only after the read ended";
                }
                valueEnd = from.end();
            }
            Mutation newer = newerCompletedBefore(s, valueEnd, readStart);
            if (newer != null) {
                return "stale: reads as " + (from == null ? "the initial content" : from.toString())
                        + ", but " + newer + " began after it ended and ended before the read began";
            }
            return null;
        }

        /** A mutation of {@code s} that began after {@code after} and ended before {@code before}, or null. */
        private Mutation newerCompletedBefore(int s, long after, long before) {
            Mutation[] ms = byEnd[s];
            int lo = 0;
            int hi = ms.length; // first index with end >= before
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                if (ms[mid].end() < before) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            if (lo == 0 || maxStart[s][lo - 1] <= after) {
                return null;
            }
            for (int i = 0; i < lo; i++) {
                if (ms[i].start() > after) {
                    return ms[i];
                }
            }
            throw new IllegalStateException("unreachable");
        }
    }
}
