package io.pmcache.bench;

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
import org.openjdk.jmh.infra.Blackhole;

/**
 * The physical limit for {@link EngineBenchmark}: a plain {@link MemorySegment#copy} of 4 KiB or
 * 64 KiB from a native buffer into the same kind of medium (a {@link MappedFileMedium} on
 * {@code /dev/shm}, pages resident) at advancing offsets, as a data head fills its segment; and
 * a 4 KiB copy out of the medium from random offsets of a 64 MiB region, as a read hit does.
 * Each thread writes its own part of the medium; nothing else (no CRC, no index, no key).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 5, time = 200, timeUnit = TimeUnit.MILLISECONDS)
@Measurement(iterations = 10, time = 200, timeUnit = TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-Xms2g", "-Xmx2g"})
public class MemcpyBaseline {

    static final int BLOCK = 4096;
    static final int BIG = 65536;
    static final long READ_REGION = 64L << 20;

    @State(Scope.Benchmark)
    public static class Medium {
        /** Medium size in MiB; 1 GiB is well beyond the CPU caches. */
        @Param("1024")
        public long mediumMiB;

        Path dir;
        MappedFileMedium medium;
        MemorySegment seg;
        final AtomicInteger threads = new AtomicInteger();

        @Setup(Level.Trial)
        public void setUp() throws IOException {
            dir = BenchFiles.dir();
            medium = BenchFiles.prefaulted(dir.resolve("medium.img"), mediumMiB << 20);
            seg = medium.segment();
            BenchFiles.fillRandom(seg.asSlice(0, READ_REGION), 7);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            medium.close();
            BenchFiles.deleteTree(dir);
        }
    }

    @State(Scope.Thread)
    public static class Cursor {
        MemorySegment src;
        MemorySegment dst;
        long base;
        long span;
        long pos;
        SplittableRandom random;

        @Setup(Level.Trial)
        public void setUp(Medium m) {
            int me = m.threads.getAndIncrement();
            src = Arena.ofAuto().allocate(BIG, 4096);
            dst = Arena.ofAuto().allocate(BIG, 4096);
            BenchFiles.fillRandom(src, 100 + me);
            // Two halves, one per thread (at most two threads on this machine; more share a half).
            span = (m.mediumMiB << 20) / 2;
            base = (me % 2) * span;
            random = new SplittableRandom(me);
        }

        long next(int len) {
            long at = base + pos;
            pos += len;
            if (pos + len > span) {
                pos = 0;
            }
            return at;
        }

        long randomBlock() {
            return random.nextLong(READ_REGION / BLOCK) * BLOCK;
        }
    }

    @Benchmark
    @Threads(1)
    public void write4k_t1(Medium m, Cursor c) {
        MemorySegment.copy(c.src, 0, m.seg, c.next(BLOCK), BLOCK);
    }

    @Benchmark
    @Threads(2)
    public void write4k_t2(Medium m, Cursor c) {
        MemorySegment.copy(c.src, 0, m.seg, c.next(BLOCK), BLOCK);
    }

    @Benchmark
    @Threads(1)
    public void write64k_t1(Medium m, Cursor c) {
        MemorySegment.copy(c.src, 0, m.seg, c.next(BIG), BIG);
    }

    @Benchmark
    @Threads(2)
    public void write64k_t2(Medium m, Cursor c) {
        MemorySegment.copy(c.src, 0, m.seg, c.next(BIG), BIG);
    }

    @Benchmark
    @Threads(1)
    public void read4k_t1(Medium m, Cursor c, Blackhole bh) {
        MemorySegment.copy(m.seg, c.randomBlock(), c.dst, 0, BLOCK);
        bh.consume(c.dst.get(ValueLayout.JAVA_LONG, 0));
    }

    @Benchmark
    @Threads(2)
    public void read4k_t2(Medium m, Cursor c, Blackhole bh) {
        MemorySegment.copy(m.seg, c.randomBlock(), c.dst, 0, BLOCK);
        bh.consume(c.dst.get(ValueLayout.JAVA_LONG, 0));
    }
}
