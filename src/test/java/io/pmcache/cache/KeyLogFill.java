package io.pmcache.cache;

import io.pmcache.format.KeyRecord;
import io.pmcache.index.ExtentMap;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Fills the key log of an open cache with many 4 KiB keys without writing 4 KiB of data per key
 * (benchmarks of replay: 8 M real writes would need 32 GiB of medium). The first {@code pool}
 * blocks are written through {@link Cache#write} (real data, real allocations); every later block
 * gets a key appended to the log exactly as the write path appends it (same stream, same slots,
 * dirty, with the data CRC of its data) but naming the data of pool block {@code i % pool}. To
 * replay, the log is indistinguishable from one of real writes whose data happens to be shared:
 * every key is live, sealed on close, and its data CRC holds. The index of the open cache is not
 * updated for the appended keys (the cache is closed right after; replay rebuilds it).
 */
public final class KeyLogFill {
    private KeyLogFill() {
    }

    public static void fill(Cache cache, long[] offsets, int blockSize, int pool) throws IOException {
        Engine e = cache.engine();
        int n = Math.min(pool, offsets.length);
        int[] seg = new int[n];
        int[] segOff = new int[n];
        long[] gen = new long[n];
        int[] crc = new int[n];
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(blockSize, blockSize);
            for (int i = 0; i < n; i++) {
                buf.set(ValueLayout.JAVA_LONG, 0, offsets[i]);
                cache.write(offsets[i], buf, false);
                ExtentMap map = e.index.rangeFor(offsets[i]);
                map.lock().lock();
                try {
                    if (!map.findCovering(offsets[i], offsets[i] + blockSize)) {
                        throw new IllegalStateException("block at " + offsets[i] + " not in the index after its write");
                    }
                    seg[i] = map.foundSegment();
                    segOff[i] = (int) map.foundAddress();
                    gen[i] = map.foundGeneration();
                } finally {
                    map.lock().unlock();
                }
                crc[i] = io.pmcache.format.Crc.ofData(e.medium.segment(), e.address(seg[i], segOff[i]), blockSize);
            }
        }
        for (int i = n; i < offsets.length; i++) {
            int p = i % n;
            KeyRecord key = new KeyRecord(offsets[i], blockSize, KeyRecord.FLAG_DIRTY, seg[p], segOff[p], gen[p], crc[p]);
            ExtentMap map = e.index.rangeFor(offsets[i]);
            map.lock().lock();
            try {
                e.keyLog.append(key);
            } finally {
                map.lock().unlock();
            }
        }
        cache.flush();
    }
}
