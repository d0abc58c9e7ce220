package io.pmcache.cache;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.FaultyBackingDevice;
import io.pmcache.backing.FaultyBackingDevice.Op;
import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.format.KeyRecord;
import io.pmcache.format.Layout;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Each damaged key is counted once — in {@code dataCrcErrors} or {@code corruptKeysSkipped} —
 * although replay checks it at open and writeback checks it again before writing back (and again
 * on every retry of a failed batch).
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class DamageCountTest {
    private static final long MIB = Rig.MIB;
    private static final int SEGMENTS = 16;
    private static final int DEVICE = (int) (32 * MIB);
    /** No background workers: flushAll runs writeback in the test's thread. */
    private static final CacheOptions QUIET = new CacheOptions(1, 90, false, false);

    private record Found(LogReader.KsetAt kset, int slot, KeyRecord key) {
    }

    /** Every dirty data key of the live log. */
    private static List<Found> dirtyKeys(Cache c) {
        List<Found> out = new ArrayList<>();
        for (LogReader.KsetAt k : Rig.ksets(c)) {
            for (int s = 0; s < k.slots(); s++) {
                KeyRecord key = c.engine().reader.key(k, s);
                if (key != null && key.dirty() && !key.zero()) {
                    out.add(new Found(k, s, key));
                }
            }
        }
        return out;
    }

    private static long dataAddress(KeyRecord key) {
        return Layout.segmentAreaOffset(SEGMENTS) + key.segment() * MIB + key.segmentOffset();
    }

    private static void flip(MemorySegment m, long at) {
        m.set(JAVA_BYTE, at, (byte) (m.get(JAVA_BYTE, at) ^ 0x10));
    }

    private static Rig filled(FaultyBackingDevice faulty, WriteHistory model) throws IOException {
        Rig rig = Rig.format(SEGMENTS, faulty, true);
        rig.open(QUIET);
        for (int i = 0; i < 40; i++) {
            rig.write(model, i * 128 * 1024L, 8192); // one key each, distinct sectors
        }
        rig.cache.flush();
        return rig;
    }

    @Test
    void keysDamagedBeforeTheOpenAreCountedByReplayOnlyEvenWhenWritebackRetries(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory(DEVICE);
        MemoryBackingDevice disk = new MemoryBackingDevice(DEVICE, 7);
        FaultyBackingDevice faulty = new FaultyBackingDevice(disk);
        try (Rig rig = filled(faulty, model)) {
            List<Found> keys = dirtyKeys(rig.cache);
            Found bad = keys.get(r.nextInt(keys.size()));
            rig.closeCache();
            // Only the data: the kset's seal stays valid, so replay leaves the key in its slot (a
            // damaged key slot would break the seal, and replay would zero the slot when resealing).
            flip(rig.bytes(), dataAddress(bad.key()) + r.nextInt(bad.key().length()));

            rig.open(QUIET);
            CacheStatus atOpen = rig.cache.status();
            assertThat(atOpen.dataCrcErrors()).as("%s: found by replay", seed).isEqualTo(1);

            faulty.failNext(Op.WRITE, 3); // writeback reads the batch, fails, and reads it again
            rig.cache.flushAll(left -> { });
            CacheStatus after = rig.cache.status();
            assertThat(after.backingErrors()).as("writeback retried").isPositive();
            assertThat(after.dirtyBytes()).isZero();
            assertThat(after.dataCrcErrors()).as("%s: not counted again by writeback", seed).isEqualTo(1);
            assertThat(after.corruptKeysSkipped()).isZero();
            byte[] expected = model.current.clone();
            long off = bad.key().offset();
            java.util.Arrays.fill(expected, (int) off, (int) off + bad.key().length(), (byte) 0);
            assertThat(disk.toByteArray()).as("%s: everything but the damaged key written back", seed)
                    .isEqualTo(expected);
        }
    }

    @Test
    void dataDamagedAfterTheOpenIsCountedOnceByWriteback(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory(DEVICE);
        MemoryBackingDevice disk = new MemoryBackingDevice(DEVICE, 7);
        FaultyBackingDevice faulty = new FaultyBackingDevice(disk);
        try (Rig rig = filled(faulty, model)) {
            List<Found> keys = dirtyKeys(rig.cache);
            Found bad = keys.get(r.nextInt(keys.size()));
            flip(rig.bytes(), dataAddress(bad.key()) + r.nextInt(bad.key().length()));
            assertThat(rig.cache.status().dataCrcErrors()).isZero();

            faulty.failNext(Op.WRITE, 3);
            rig.cache.flushAll(left -> { });
            CacheStatus st = rig.cache.status();
            assertThat(st.backingErrors()).as("writeback retried").isPositive();
            assertThat(st.dataCrcErrors()).as("%s: once, not once per attempt", seed).isEqualTo(1);
            assertThat(st.corruptKeysSkipped()).isZero();
            assertThat(st.dirtyBytes()).as("%s: the dropped key is no longer dirty", seed).isZero();
        }
    }
}
