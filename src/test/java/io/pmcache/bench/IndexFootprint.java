package io.pmcache.bench;

import io.pmcache.backing.FileBackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheOptions;
import io.pmcache.cache.CacheStatus;
import io.pmcache.cache.FormatOptions;
import io.pmcache.index.Extent;
import io.pmcache.index.ExtentMap;
import io.pmcache.index.RangeIndex;
import io.pmcache.media.MappedFileMedium;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * How much heap the index costs per cached extent, and how fast replay rebuilds it (issue 10).
 * Not JMH: one run fills the index once and weighs it.
 *
 * <pre>
 * java ... io.pmcache.bench.IndexFootprint heap N [random|sequential|sparse]
 *     N separate 4 KiB extents (every other 4 KiB block of a device of 2N blocks, so no two are
 *     adjacent: 512 per 4 MiB range) inserted into a {@link RangeIndex} exactly as the write path
 *     does (range lock, {@link ExtentMap#insert}), in random (default) or ascending order; prints
 *     the heap used after a full GC before and after, divided by N. sparse: one extent per 4 MiB
 *     range (random order), which weighs the cost of a range rather than of an extent.
 * java ... io.pmcache.bench.IndexFootprint replay N [rounds]
 *     formats a cache on /dev/shm (N x 4 KiB of data: 4 GiB for N = 1 M), writes N separate
 *     4 KiB blocks in random order through {@link Cache#write} (writeback and gc off), closes it,
 *     and reopens it {@code rounds} times (default 3): prints each replay's keys/s (the cache's
 *     own replay timer) and the heap used after a full GC per extent of the open cache.
 * java ... io.pmcache.bench.IndexFootprint fill N random|sequential DIR
 *     formats a cache in DIR (kept) and fills its key log with N separate 4 KiB keys
 *     ({@link io.pmcache.cache.KeyLogFill}: 16 MiB of real writes, the other keys name that data),
 *     so that replay of millions of keys needs ~65 bytes of medium per key, not 4 KiB.
 * java ... io.pmcache.bench.IndexFootprint reopen N DIR [rounds]
 *     reopens the cache in DIR {@code rounds} times: replay keys/s, checking N keys were replayed.
 *     Run by bench/replay-rate.sh with two builds, alternately, on the same files.
 * </pre>
 *
 * Heap is {@code MemoryMXBean.getHeapMemoryUsage().getUsed()} after {@code System.gc()} (run
 * with G1, where that is a full collection), taken three times and the lowest kept.
 */
public final class IndexFootprint {
    static final int BLOCK = 4096;

    private IndexFootprint() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: IndexFootprint heap N [random|sequential] | replay N [rounds]");
            System.exit(2);
        }
        long n = parseCount(args[1]);
        switch (args[0]) {
            case "heap" -> heap(n, args.length < 3 ? "random" : args[2]);
            case "replay" -> replay(n, args.length < 3 ? 3 : Integer.parseInt(args[2]));
            case "fill" -> fill(n, args[2], Path.of(args[3]));
            case "reopen" -> reopen(n, Path.of(args[2]), args.length < 4 ? 1 : Integer.parseInt(args[3]));
            default -> {
                System.err.println("unknown mode " + args[0]);
                System.exit(2);
            }
        }
    }

    static long parseCount(String s) {
        s = s.toUpperCase();
        long mul = s.endsWith("M") ? 1_000_000 : s.endsWith("K") ? 1_000 : 1;
        return Long.parseLong(mul == 1 ? s : s.substring(0, s.length() - 1)) * mul;
    }

    /** Heap used after a full GC (the lowest of three). */
    static long usedAfterGc() {
        long best = Long.MAX_VALUE;
        var mx = ManagementFactory.getMemoryMXBean();
        for (int i = 0; i < 3; i++) {
            System.gc();
            best = Math.min(best, mx.getHeapMemoryUsage().getUsed());
        }
        return best;
    }

    /** Block numbers 0, stride, 2 stride, ...: ascending, or shuffled with a fixed seed. */
    static long[] blocks(long n, boolean random, long stride) {
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("too many extents: " + n);
        }
        long[] b = new long[(int) n];
        for (int i = 0; i < b.length; i++) {
            b[i] = stride * i;
        }
        if (random) {
            SplittableRandom r = new SplittableRandom(10);
            for (int i = b.length - 1; i > 0; i--) {
                int j = r.nextInt(i + 1);
                long t = b[i];
                b[i] = b[j];
                b[j] = t;
            }
        }
        return b;
    }

    static void heap(long n, String order) {
        boolean random = !order.equals("sequential");
        long stride = order.equals("sparse") ? (4 << 20) / BLOCK : 2;   // sparse: one extent per 4 MiB range
        long[] blocks = blocks(n, random, stride);
        long device = stride * n * BLOCK;
        int perSegment = (16 << 20) / BLOCK;          // a 16 MiB data segment's worth of 4 KiB writes
        long before = usedAfterGc();
        RangeIndex index = new RangeIndex(device);
        long t0 = System.nanoTime();
        for (int i = 0; i < blocks.length; i++) {
            long off = blocks[i] * BLOCK;
            ExtentMap map = index.rangeFor(off);
            map.lock().lock();
            try {
                map.insert(Extent.data(off, BLOCK, i / perSegment, (i % perSegment) * BLOCK, 1, true), null);
            } finally {
                map.lock().unlock();
            }
        }
        long nanos = System.nanoTime() - t0;
        long after = usedAfterGc();                   // blocks[] is still live, as it was before
        long count = 0;
        for (int r = 0; r < index.rangeCount(); r++) {
            ExtentMap m = index.rangeIfPresent(r);
            count += m == null ? 0 : m.size();
        }
        if (count != n) {
            throw new IllegalStateException("index holds " + count + " extents, expected " + n);
        }
        System.out.printf("heap %s: %,d extents of 4 KiB in %,d ranges (%s order): %,d bytes of heap = %.1f B/extent;"
                        + " insert %.0f ns/extent (%,.0f/s)%n",
                ExtentMap.class.getSimpleName(), n, index.rangeCount(), order, after - before,
                (double) (after - before) / n, (double) nanos / n, n * 1e9 / nanos);
        reachabilityFence(index);
        reachabilityFence(blocks);
    }

    static void replay(long n, int rounds) throws IOException {
        Path dir = BenchFiles.dir();
        long data = n * BLOCK;
        long mediumSize = data + data / 8 + (256L << 20);      // data, key log (64 B a key), slack
        try (MappedFileMedium medium = MappedFileMedium.create(dir.resolve("cache.img"), mediumSize);
             FileBackingDevice backing = FileBackingDevice.createSparse(dir.resolve("backing.img"), 2 * data)) {
            Cache.format(medium, backing, FormatOptions.defaults());
            CacheOptions options = CacheOptions.defaults().withWriteback(false).withGc(false);
            long[] blocks = blocks(n, true, 2);
            long t0 = System.nanoTime();
            try (Cache cache = Cache.open(medium, backing, options); Arena a = Arena.ofConfined()) {
                MemorySegment buf = a.allocate(BLOCK, BLOCK);
                for (long b : blocks) {
                    buf.set(ValueLayout.JAVA_LONG, 0, b);
                    cache.write(b * BLOCK, buf, false);
                }
                cache.flush();
            }
            System.out.printf("replay: wrote %,d separate 4 KiB blocks in %.1f s%n", n, (System.nanoTime() - t0) / 1e9);
            blocks = null;
            for (int round = 1; round <= rounds; round++) {
                long before = usedAfterGc();
                long t1 = System.nanoTime();
                try (Cache cache = Cache.open(medium, backing, options)) {
                    long open = System.nanoTime() - t1;
                    CacheStatus s = cache.status();
                    long after = usedAfterGc();
                    System.out.printf("replay round %d: %,d keys in %,d ksets in %.0f ms = %,.0f keys/s (open %.0f ms);"
                                    + " heap of the open cache %.1f B/extent%n",
                            round, s.replayKeys(), s.replayKsets(), s.replayNanos() / 1e6,
                            s.replayKeys() * 1e9 / s.replayNanos(), open / 1e6, (double) (after - before) / n);
                }
            }
        } finally {
            BenchFiles.deleteTree(dir);
        }
    }

    static void fill(long n, String order, Path dir) throws IOException {
        long data = (long) POOL * BLOCK;
        long mediumSize = data + n * 66 + (512L << 20);        // data pool, key log (64.5 B a key), slack
        long[] blocks = blocks(n, !order.equals("sequential"), 2);
        for (int i = 0; i < blocks.length; i++) {
            blocks[i] *= BLOCK;
        }
        try (MappedFileMedium medium = MappedFileMedium.create(dir.resolve("cache.img"), mediumSize);
             FileBackingDevice backing = FileBackingDevice.createSparse(dir.resolve("backing.img"), 2 * n * BLOCK)) {
            Cache.format(medium, backing, FormatOptions.defaults());
            long t0 = System.nanoTime();
            try (Cache cache = Cache.open(medium, backing, CacheOptions.defaults().withWriteback(false).withGc(false))) {
                io.pmcache.cache.KeyLogFill.fill(cache, blocks, BLOCK, POOL);
            }
            System.out.printf("fill: %,d keys of 4 KiB (%s order) in %.1f s%n", n, order, (System.nanoTime() - t0) / 1e9);
        }
    }

    /** Real data blocks of {@link #fill}; the other keys name their data. */
    static final int POOL = 4096;

    static void reopen(long n, Path dir, int rounds) throws IOException {
        CacheOptions options = CacheOptions.defaults().withWriteback(false).withGc(false);
        var threads = ManagementFactory.getThreadMXBean();
        for (int round = 1; round <= rounds; round++) {
            try (MappedFileMedium medium = MappedFileMedium.open(dir.resolve("cache.img"));
                 FileBackingDevice backing = FileBackingDevice.open(dir.resolve("backing.img"), false)) {
                long cpu0 = threads.getCurrentThreadCpuTime();
                long proc0 = processCpu();
                long t0 = System.nanoTime();
                Cache cache = Cache.open(medium, backing, options);
                long wall = System.nanoTime() - t0;
                long cpu = threads.getCurrentThreadCpuTime() - cpu0;
                long proc = processCpu() - proc0;
                CacheStatus s = cache.status();
                cache.close();
                if (s.replayKeys() != n) {
                    throw new IllegalStateException("replayed " + s.replayKeys() + " keys, expected " + n);
                }
                System.out.printf("reopen round %d: %,d keys in %,d ksets in %.0f ms = %,.0f keys/s; whole open %.0f ms,"
                                + " CPU %.0f ms on the opening thread, %.0f ms in the process (JIT and GC included)%n",
                        round, s.replayKeys(), s.replayKsets(), s.replayNanos() / 1e6,
                        s.replayKeys() * 1e9 / s.replayNanos(), wall / 1e6, cpu / 1e6, proc / 1e6);
            }
        }
    }

    /** CPU time of the whole process (every thread: replay's, the JIT's, the GC's). */
    static long processCpu() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    private static void reachabilityFence(Object o) {
        java.lang.ref.Reference.reachabilityFence(o);
    }
}
