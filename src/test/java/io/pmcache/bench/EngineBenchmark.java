package io.pmcache.bench;

import io.pmcache.backing.FileBackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheOptions;
import io.pmcache.cache.CacheStatus;
import io.pmcache.cache.FormatOptions;
import io.pmcache.media.MappedFileMedium;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.infra.Blackhole;

/**
 * The engine's hot paths through the public API ({@link Cache#write}, {@link Cache#read}):
 * 4 KiB random write, 64 KiB random write and 4 KiB random read hit, on one and two threads.
 *
 * <p>Setup. The cache medium is a {@link MappedFileMedium} on {@code /dev/shm} (java.io.tmpdir
 * when there is none), every page touched once at the start of the trial. The backing device is
 * a sparse 1 GiB file beside it; the logical device is cut into two halves, one per thread, and
 * each write goes to a random aligned block of its thread's half (overwrites trim old extents, as
 * a real random-write load does). Default cache options (4 data heads and kset streams), data CRC
 * computed and stored on every write as always (the format option only adds verification).
 *
 * <p>Full cache. The cache is re-formatted before every iteration (warm-up and measurement), and
 * {@code cacheMiB} is sized so that one iteration's writes fit: writeback and gc are off, so the
 * numbers are the foreground cost of a write and never include a wait for space. Each thread
 * has a byte budget per iteration (85 % of the cache, shared by the threads); a write beyond it
 * fails the run at once instead of stalling on a full cache: then raise {@code -p cacheMiB=...} or
 * shorten the iterations ({@code -r}). The tear-down also checks that no write waited for space.
 * The sealer (ksets closed when full or a second old, data and keys msync'ed) runs as in
 * production.
 *
 * <p>Read hits come from a 64 MiB region written with 4 KiB writes (so 16384 4 KiB extents) and
 * sealed before each iteration; both threads read random blocks of it.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 5, time = 200, timeUnit = TimeUnit.MILLISECONDS)
@Measurement(iterations = 10, time = 200, timeUnit = TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-Xms2g", "-Xmx2g"})
public class EngineBenchmark {

    static final int BLOCK = 4096;
    static final int BIG = 65536;
    static final long DEVICE = 1L << 30;
    static final long READ_REGION = 64L << 20;

    @State(Scope.Benchmark)
    public static class Engine {
        /** Cache medium in MiB: must hold one iteration of writes (checked after each iteration). */
        @Param("6144")
        public long cacheMiB;

        Path dir;
        MappedFileMedium medium;
        FileBackingDevice backing;
        Cache cache;
        final AtomicInteger threads = new AtomicInteger();

        @Setup(Level.Trial)
        public void setUpTrial() throws IOException {
            dir = BenchFiles.dir();
            medium = BenchFiles.prefaulted(dir.resolve("cache.img"), cacheMiB << 20);
            backing = FileBackingDevice.createSparse(dir.resolve("backing.img"), DEVICE);
        }

        long budgetPerThread;

        @Setup(Level.Iteration)
        public void setUpIteration(BenchmarkParams params) throws IOException {
            budgetPerThread = (long) (0.85 * ((cacheMiB << 20) - READ_REGION)) / params.getThreads();
            Cache.format(medium, backing, FormatOptions.defaults());
            cache = Cache.open(medium, backing, CacheOptions.defaults().withWriteback(false).withGc(false));
            try (Arena a = Arena.ofConfined()) {
                MemorySegment block = a.allocate(BLOCK, 4096);
                for (long off = 0; off < READ_REGION; off += BLOCK) {
                    block.set(ValueLayout.JAVA_LONG, 0, off);
                    cache.write(off, block, false);
                }
            }
            cache.flush();
        }

        @TearDown(Level.Iteration)
        public void tearDownIteration() throws IOException {
            CacheStatus s = cache.status();
            cache.close();
            if (s.spaceWaits() != 0) {
                throw new IllegalStateException("the cache filled during the iteration (" + s.spaceWaits()
                        + " writes waited for space): raise -p cacheMiB (now " + cacheMiB + ") or shorten -r");
            }
            if (Boolean.getBoolean("pmcache.bench.verbose")) {
                System.out.printf(" [cache: %d of %d segments used, %d writes, %d reads not fully hit]%n", s.segmentsUsed(),
                        s.segmentsTotal(), s.writes(), s.readMisses() + s.readPartialHits());
            }
        }

        @TearDown(Level.Trial)
        public void tearDownTrial() throws IOException {
            backing.close();
            medium.close();
            BenchFiles.deleteTree(dir);
        }
    }

    @State(Scope.Thread)
    public static class Client {
        MemorySegment src;
        MemorySegment dst;
        long base;
        SplittableRandom random;

        long written;
        long budget;

        @Setup(Level.Iteration)
        public void resetBudget(Engine engine) {
            written = 0;
            budget = engine.budgetPerThread;
        }

        long writeOffset(int len) {
            written += len;
            if (written > budget) {
                throw new IllegalStateException("this iteration's writes would fill the cache (no writeback/gc in "
                        + "this benchmark): raise -p cacheMiB or shorten -r");
            }
            return base + random.nextLong(DEVICE / 2 / len) * len;
        }

        @Setup(Level.Trial)
        public void setUp(Engine engine) {
            int me = engine.threads.getAndIncrement();
            src = Arena.ofAuto().allocate(BIG, 4096);
            dst = Arena.ofAuto().allocate(BIG, 4096);
            BenchFiles.fillRandom(src, 100 + me);
            src4k = src.asSlice(0, BLOCK);
            dst4k = dst.asSlice(0, BLOCK);
            base = (me % 2) * (DEVICE / 2);
            random = new SplittableRandom(me);
        }

        MemorySegment src4k;
        MemorySegment dst4k;

        long readOffset() {
            return random.nextLong(READ_REGION / BLOCK) * BLOCK;
        }
    }

    @Benchmark
    @Threads(1)
    public void write4k_t1(Engine e, Client c) throws IOException {
        e.cache.write(c.writeOffset(BLOCK), c.src4k, false);
    }

    @Benchmark
    @Threads(2)
    public void write4k_t2(Engine e, Client c) throws IOException {
        e.cache.write(c.writeOffset(BLOCK), c.src4k, false);
    }

    @Benchmark
    @Threads(1)
    public void write64k_t1(Engine e, Client c) throws IOException {
        e.cache.write(c.writeOffset(BIG), c.src, false);
    }

    @Benchmark
    @Threads(2)
    public void write64k_t2(Engine e, Client c) throws IOException {
        e.cache.write(c.writeOffset(BIG), c.src, false);
    }

    @Benchmark
    @Threads(1)
    public void read4kHit_t1(Engine e, Client c, Blackhole bh) throws IOException {
        e.cache.read(c.readOffset(), c.dst4k);
        bh.consume(c.dst4k.get(ValueLayout.JAVA_LONG, 0));
    }

    @Benchmark
    @Threads(2)
    public void read4kHit_t2(Engine e, Client c, Blackhole bh) throws IOException {
        e.cache.read(c.readOffset(), c.dst4k);
        bh.consume(c.dst4k.get(ValueLayout.JAVA_LONG, 0));
    }
}
