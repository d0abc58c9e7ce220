package io.pmcache.device;

import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;

/**
 * The contract every {@link BlockDevice} passes: it must behave exactly like a disk. A subclass
 * supplies {@link #newDevice(long)} and, if its devices keep their content across close, overrides
 * {@link #reopen(BlockDevice)}. Random tests are seeded; a failure names its seed (repeat with
 * {@code -Dpmcache.seed=...}).
 */
@ExtendWith(RandomSeed.class)
public abstract class BlockDeviceContractTest {

    private final List<BlockDevice> opened = new ArrayList<>();

    /** A new device of {@code size} bytes that reads as zeros. */
    protected abstract BlockDevice newDevice(long size) throws IOException;

    /**
     * Closes {@code device} and returns a device with the same content (as after a clean restart),
     * or null when the implementation cannot (the durability test is then skipped).
     */
    protected BlockDevice reopen(BlockDevice device) throws IOException {
        return null;
    }

    /** The device size the tests use; override if the implementation needs another. */
    protected long deviceSize() {
        return 4L << 20;
    }

    /** The largest single I/O the random tests issue. */
    protected int maxIoLength() {
        return 64 << 10;
    }

    /** A new device, closed after the test. */
    protected final BlockDevice open(long size) throws IOException {
        BlockDevice d = newDevice(size);
        opened.add(d);
        return d;
    }

    @AfterEach
    final void closeAll() throws IOException {
        for (BlockDevice d : opened) {
            d.close();
        }
        opened.clear();
    }

    // ---- helpers for subclasses ----

    protected static byte[] read(BlockDevice d, long offset, int length) throws IOException {
        byte[] b = new byte[length];
        d.read(offset, MemorySegment.ofArray(b));
        return b;
    }

    /** Reads through a native segment, the path an NBD server or the engine uses. */
    protected static byte[] readNative(BlockDevice d, long offset, int length) throws IOException {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(Math.max(1, length)).asSlice(0, length);
            d.read(offset, s);
            return s.toArray(ValueLayout.JAVA_BYTE);
        }
    }

    protected static void write(BlockDevice d, long offset, byte[] data, boolean fua) throws IOException {
        d.write(offset, MemorySegment.ofArray(data), fua);
    }

    protected static void writeNative(BlockDevice d, long offset, byte[] data, boolean fua) throws IOException {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(Math.max(1, data.length)).asSlice(0, data.length);
            MemorySegment.copy(data, 0, s, ValueLayout.JAVA_BYTE, 0, data.length);
            d.write(offset, s, fua);
        }
    }

    /** Asserts the whole device equals {@code model}, naming the first differing offset. */
    protected static void assertContent(BlockDevice d, byte[] model, Object context) throws IOException {
        byte[] actual = read(d, 0, model.length);
        long at = MemorySegment.ofArray(actual).mismatch(MemorySegment.ofArray(model));
        assertThat(at).as("%s: first byte differing from the model", context).isEqualTo(-1L);
    }

    /** Asserts {@code [offset, +length)} of the device equals the same range of {@code model}. */
    protected static void assertRange(BlockDevice d, long offset, int length, byte[] model, Object context)
            throws IOException {
        byte[] actual = read(d, offset, length);
        long at = MemorySegment.ofArray(actual).mismatch(
                MemorySegment.ofArray(model).asSlice(offset, length));
        assertThat(at).as("%s: first byte differing from the model in [%d, +%d)", context, offset, length)
                .isEqualTo(-1L);
    }

    /** Random writes, with random data, at random unaligned offsets, applied to device and model. */
    protected void randomWrites(BlockDevice d, byte[] model, SplittableRandom r, int count) throws IOException {
        for (int i = 0; i < count; i++) {
            int off = r.nextInt(model.length);
            int len = r.nextInt(Math.min(maxIoLength(), model.length - off) + 1);
            byte[] data = new byte[len];
            r.nextBytes(data);
            if (r.nextBoolean()) {
                write(d, off, data, r.nextInt(8) == 0);
            } else {
                writeNative(d, off, data, r.nextInt(8) == 0);
            }
            System.arraycopy(data, 0, model, off, len);
        }
    }

    // ---- the contract ----

    @Test
    void sizeIsAsRequested() throws IOException {
        assertThat(open(deviceSize()).size()).isEqualTo(deviceSize());
    }

    @Test
    void neverWrittenBytesReadAsZeros() throws IOException {
        BlockDevice d = open(deviceSize());
        assertContent(d, new byte[(int) d.size()], "fresh device");
    }

    @Test
    void unalignedReadsAndWritesMatchAModel(Seed seed) throws IOException {
        BlockDevice d = open(deviceSize());
        SplittableRandom r = seed.random();
        byte[] model = new byte[(int) d.size()];
        for (int round = 0; round < 20; round++) {
            randomWrites(d, model, r, 25);
            for (int i = 0; i < 25; i++) {
                int off = r.nextInt(model.length);
                int len = r.nextInt(Math.min(maxIoLength(), model.length - off) + 1);
                if (r.nextBoolean()) {
                    assertRange(d, off, len, model, seed);
                } else {
                    byte[] got = readNative(d, off, len);
                    assertThat(MemorySegment.ofArray(got).mismatch(MemorySegment.ofArray(model).asSlice(off, len)))
                            .as("%s native read [%d, +%d)", seed, off, len).isEqualTo(-1L);
                }
            }
        }
        assertContent(d, model, seed);
    }

    @Test
    void firstAndLastBytesAreAddressable() throws IOException {
        BlockDevice d = open(deviceSize());
        long last = d.size() - 1;
        write(d, 0, new byte[] {1}, false);
        write(d, last, new byte[] {2}, false);
        assertThat(read(d, 0, 1)).containsExactly(1);
        assertThat(read(d, last, 1)).containsExactly(2);
        assertThat(read(d, last - 1, 2)).containsExactly(0, 2);
    }

    @Test
    void zeroLengthIoIsANoOpAnywhereInRange() throws IOException {
        BlockDevice d = open(deviceSize());
        long size = d.size();
        write(d, 10, new byte[] {7}, false);
        assertThatCode(() -> {
            for (long off : new long[] {0, 10, size - 1, size}) {
                d.read(off, MemorySegment.NULL);
                d.write(off, MemorySegment.ofArray(new byte[0]), false);
                d.write(off, MemorySegment.ofArray(new byte[0]), true);
                d.trim(off, 0);
                d.writeZeroes(off, 0, false);
                d.writeZeroes(off, 0, true);
            }
        }).doesNotThrowAnyException();
        assertThat(read(d, 10, 1)).containsExactly(7);
    }

    @Test
    void outOfRangeIoIsRejectedAndChangesNothing() throws IOException {
        BlockDevice d = open(deviceSize());
        long size = d.size();
        write(d, size - 4, new byte[] {1, 2, 3, 4}, false);
        MemorySegment two = MemorySegment.ofArray(new byte[2]);
        List<ThrowingRunnable> calls = List.of(
                () -> d.read(-1, two),
                () -> d.read(size - 1, two),
                () -> d.read(size + 1, MemorySegment.NULL),
                () -> d.read(Long.MAX_VALUE, two),
                () -> d.write(-2, two, false),
                () -> d.write(size - 1, two, true),
                () -> d.write(Long.MIN_VALUE, two, false),
                () -> d.trim(-1, 1),
                () -> d.trim(size - 2, 3),
                () -> d.trim(0, -1),
                () -> d.trim(1, Long.MAX_VALUE),
                () -> d.writeZeroes(size - 2, 3, false),
                () -> d.writeZeroes(-1, 0, true),
                () -> d.writeZeroes(0, size + 1, false));
        for (int i = 0; i < calls.size(); i++) {
            ThrowingRunnable call = calls.get(i);
            assertThatThrownBy(call::run).as("call %d", i).isInstanceOf(IllegalArgumentException.class);
        }
        assertThat(read(d, size - 4, 4)).containsExactly(1, 2, 3, 4);
    }

    @Test
    void trimmedRangesReadAsZeros(Seed seed) throws IOException {
        zeroingMatchesModel(seed, (d, off, len, r) -> d.trim(off, len));
    }

    @Test
    void writeZeroesRangesReadAsZeros(Seed seed) throws IOException {
        zeroingMatchesModel(seed, (d, off, len, r) -> d.writeZeroes(off, len, r.nextBoolean()));
    }

    @Test
    void trimOfTheWholeDeviceReadsZeros(Seed seed) throws IOException {
        BlockDevice d = open(deviceSize());
        byte[] model = new byte[(int) d.size()];
        randomWrites(d, model, seed.random(), 50);
        d.trim(0, d.size());
        assertContent(d, new byte[model.length], seed);
    }

    @Test
    void concurrentWritersToDisjointRangesDoNotInterfere(Seed seed) throws Exception {
        BlockDevice d = open(deviceSize());
        int threads = 8;
        int slice = (int) (d.size() / threads);
        byte[] model = new byte[(int) d.size()];
        long[] seeds = seed.random().longs(threads).toArray();
        try (ExecutorService pool = Executors.newFixedThreadPool(threads)) {
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int base = t * slice;
                SplittableRandom r = new SplittableRandom(seeds[t]);
                futures.add(pool.submit(() -> {
                    for (int i = 0; i < 200; i++) {
                        int off = r.nextInt(slice);
                        int len = r.nextInt(Math.min(maxIoLength(), slice - off) + 1);
                        byte[] data = new byte[len];
                        r.nextBytes(data);
                        int kind = r.nextInt(10);
                        switch (kind) {
                            case 0 -> {
                                d.trim(base + off, len);
                                Arrays.fill(model, base + off, base + off + len, (byte) 0);
                            }
                            case 1 -> d.flush();
                            default -> {
                                write(d, base + off, data, r.nextInt(16) == 0);
                                System.arraycopy(data, 0, model, base + off, len);
                            }
                        }
                        assertRange(d, base + off, len, model, seed + " thread at " + base);
                    }
                    return null;
                }));
            }
            for (Future<?> f : futures) {
                f.get();
            }
        }
        assertContent(d, model, seed);
    }

    @Test
    void flushAndFuaSucceedAndKeepTheData() throws IOException {
        BlockDevice d = open(deviceSize());
        byte[] data = {9, 8, 7, 6, 5};
        write(d, 4093, data, true);
        d.flush();
        d.flush();
        assertThat(read(d, 4093, 5)).isEqualTo(data);
    }

    @Test
    void wholeDeviceIoInOneCall(Seed seed) throws IOException {
        BlockDevice d = open(deviceSize());
        byte[] data = new byte[(int) d.size()];
        seed.random().nextBytes(data);
        writeNative(d, 0, data, false);
        assertThat(readNative(d, 0, data.length)).as("%s", seed).isEqualTo(data);
    }

    @Test
    void contentSurvivesCloseAndReopen(Seed seed) throws IOException {
        BlockDevice d = newDevice(deviceSize());
        byte[] model = new byte[(int) d.size()];
        SplittableRandom r = seed.random();
        randomWrites(d, model, r, 100);
        d.trim(4096, 8192);
        Arrays.fill(model, 4096, 4096 + 8192, (byte) 0);
        d.flush();
        BlockDevice again = reopen(d);
        if (again == null) {
            d.close();
        }
        assumeThat(again).as("%s does not support reopen", getClass().getSimpleName()).isNotNull();
        opened.add(again);
        assertThat(again.size()).isEqualTo(model.length);
        assertContent(again, model, seed);
    }

    @Test
    void blockStatusIsWellFormedAndNeverClaimsZerosOverData(Seed seed) throws IOException {
        BlockDevice d = open(deviceSize());
        SplittableRandom r = seed.random();
        byte[] model = new byte[(int) d.size()];
        int[] maxes = {1, 2, 7, 1024};
        BlockStatusCheck.check(d, 0, model.length, 1024, model, seed + " fresh");
        for (int round = 0; round < 40; round++) {
            randomWrites(d, model, r, 3);
            int off = r.nextInt(model.length);
            int len = r.nextInt(Math.min(4 * maxIoLength(), model.length - off) + 1);
            if (r.nextInt(3) == 0) {
                off -= off % 4096;
                len = Math.min(model.length - off, (1 + r.nextInt(64)) * 4096);
            }
            switch (r.nextInt(3)) {
                case 0 -> d.trim(off, len);
                case 1 -> d.writeZeroes(off, len, r.nextBoolean());
                default -> write(d, off, new byte[len], false); // zeros written as data
            }
            Arrays.fill(model, off, off + len, (byte) 0);
            for (int q = 0; q < 5; q++) {
                long qo = r.nextInt(model.length);
                long ql = 1 + r.nextLong(model.length - qo);
                BlockStatusCheck.check(d, qo, ql, maxes[r.nextInt(maxes.length)], model, seed + " round " + round);
            }
        }
        BlockStatusCheck.check(d, 0, model.length, 1024, model, seed + " at the end");
    }

    @Test
    void blockStatusOutOfRangeIsRejected() throws IOException {
        BlockDevice d = open(deviceSize());
        long size = d.size();
        assertThatThrownBy(() -> d.blockStatus(size - 1, 2, 8)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> d.blockStatus(-1, 1, 8)).isInstanceOf(IllegalArgumentException.class);
        assertThat(d.blockStatus(size - 1, 1, 8)).hasSize(1);
    }

    @FunctionalInterface
    protected interface ThrowingRunnable {
        void run() throws Exception;
    }

    @FunctionalInterface
    private interface Zeroing {
        void apply(BlockDevice d, long offset, long length, SplittableRandom r) throws IOException;
    }

    private void zeroingMatchesModel(Seed seed, Zeroing zeroing) throws IOException {
        BlockDevice d = open(deviceSize());
        SplittableRandom r = seed.random();
        byte[] model = new byte[(int) d.size()];
        for (int round = 0; round < 30; round++) {
            randomWrites(d, model, r, 10);
            int off;
            int len;
            if (r.nextBoolean()) {
                off = r.nextInt(model.length);
                len = r.nextInt(Math.min(4 * maxIoLength(), model.length - off) + 1);
            } else {
                off = r.nextInt(model.length / 4096) * 4096;
                len = Math.min(model.length - off, (1 + r.nextInt(64)) * 4096);
            }
            zeroing.apply(d, off, len, r);
            Arrays.fill(model, off, off + len, (byte) 0);
            assertRange(d, off, len, model, seed + " after zeroing");
        }
        assertContent(d, model, seed);
    }
}
