package io.pmcache.bench;

import io.pmcache.backing.FileBackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheOptions;
import io.pmcache.cache.FormatOptions;
import io.pmcache.media.MappedFileMedium;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * Heap bytes the calling thread allocates per 4 KiB write and per 4 KiB read hit, counted by
 * operations instead of time (JMH {@code -prof gc} needs enough CPU to reach steady state within
 * its iterations, which a heavily shared machine does not give): {@code warm} operations first
 * (so that C2 has compiled the path), then {@code ops} counted with
 * {@code ThreadMXBean.getThreadAllocatedBytes} of this thread. Background threads (the sealer) are
 * not counted: this is what the request itself costs. Writes go to random 4 KiB blocks of a 1 GiB
 * device, reads to random blocks of a 64 MiB region written as 4 KiB extents, as in
 * {@code EngineBenchmark}; writeback and gc off.
 *
 * <pre>java ... io.pmcache.bench.HotPathAlloc [warm [ops]]     (defaults 200000 100000)</pre>
 */
public final class HotPathAlloc {
    private HotPathAlloc() {
    }

    public static void main(String[] args) throws IOException {
        int warm = args.length > 0 ? Integer.parseInt(args[0]) : 200_000;
        int ops = args.length > 1 ? Integer.parseInt(args[1]) : 100_000;
        int block = 4096;
        long device = 1L << 30;
        long region = 64L << 20;
        var mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long me = Thread.currentThread().threadId();
        Path dir = BenchFiles.dir();
        long mediumSize = (long) (warm + ops) * block + region + (512L << 20);
        try (MappedFileMedium medium = MappedFileMedium.create(dir.resolve("cache.img"), mediumSize);
             FileBackingDevice backing = FileBackingDevice.createSparse(dir.resolve("backing.img"), device);
             Arena arena = Arena.ofConfined()) {
            Cache.format(medium, backing, FormatOptions.defaults());
            MemorySegment buf = arena.allocate(block, block);
            BenchFiles.fillRandom(buf, 1);
            SplittableRandom random = new SplittableRandom(2);
            try (Cache cache = Cache.open(medium, backing, CacheOptions.defaults().withWriteback(false).withGc(false))) {
                for (long off = 0; off < region; off += block) {
                    cache.write(off, buf, false);
                }
                for (int i = 0; i < warm; i++) {
                    cache.read(random.nextLong(region / block) * block, buf);
                }
                long a0 = mx.getThreadAllocatedBytes(me);
                for (int i = 0; i < ops; i++) {
                    cache.read(random.nextLong(region / block) * block, buf);
                }
                long read = mx.getThreadAllocatedBytes(me) - a0;
                for (int i = 0; i < warm; i++) {
                    cache.write(random.nextLong(device / block) * block, buf, false);
                }
                long a1 = mx.getThreadAllocatedBytes(me);
                for (int i = 0; i < ops; i++) {
                    cache.write(random.nextLong(device / block) * block, buf, false);
                }
                long write = mx.getThreadAllocatedBytes(me) - a1;
                System.out.printf("4 KiB read hit: %.1f B/op; 4 KiB write: %.1f B/op (%,d ops after %,d warm-up)%n",
                        (double) read / ops, (double) write / ops, ops, warm);
            }
        } finally {
            BenchFiles.deleteTree(dir);
        }
    }
}
