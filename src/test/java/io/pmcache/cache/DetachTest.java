package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** Detach: everything written back, the cache empty, the backing device usable on its own. */
@ExtendWith(RandomSeed.class)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class DetachTest {
    private static final long MIB = Rig.MIB;
    private static final int DEVICE = (int) (48 * MIB);

    @Test
    void detachWritesBackEverythingAndEmptiesTheCache(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory(DEVICE);
        try (Rig rig = Rig.format(24, DEVICE, r.nextBoolean())) {
            rig.open(new CacheOptions(2, 70, true, true));
            CorruptMediaTest.writeSome(rig, model, r, 400, false); // dirty, some of it written back already
            rig.read(0, (int) (2 * MIB)); // clean fills too
            List<Long> progress = new ArrayList<>();
            rig.cache.detach(progress::add);
            CacheStatus st = rig.cache.status();
            assertThat(st.dirtyBytes()).as("%s", seed).isZero();
            assertThat(st.segmentsUsed()).as("%s: only the log's head segment stays", seed).isEqualTo(1);
            assertThat(progress).as("progress reported").isNotEmpty();
            assertThat(progress.getLast()).isZero();
            assertThat(((MemoryBackingDevice) rig.backing).toByteArray()).as("%s: the backing device alone", seed)
                    .isEqualTo(model.current);
            long missesBefore = st.readMisses();
            CorruptMediaTest.verifyCurrent(rig, model, seed + " after detach");
            assertThat(rig.cache.status().readMisses()).as("reads come from the backing device").isGreaterThan(missesBefore);

            // Still usable; detach again after more writes; then reopen reads everything from the backing device.
            CorruptMediaTest.writeSome(rig, model, r, 100, true);
            rig.cache.detach(left -> { });
            assertThat(((MemoryBackingDevice) rig.backing).toByteArray()).isEqualTo(model.current);
            rig.closeCache();
            rig.open(new CacheOptions(2, 70, true, true));
            assertThat(rig.cache.status().dirtyBytes()).isZero();
            assertThat(rig.cache.status().segmentsUsed()).isEqualTo(1);
            assertThat(rig.cache.status().replayKeys()).as("an empty log").isZero();
            CorruptMediaTest.verifyCurrent(rig, model, seed + " after reopen");
        }
    }

    @Test
    void detachOfAnEmptyCacheIsANoOp() throws IOException {
        try (Rig rig = Rig.format(16, DEVICE, false)) {
            rig.open(CacheOptions.defaults());
            rig.cache.detach(left -> { });
            assertThat(rig.cache.status().segmentsUsed()).isEqualTo(1);
            assertThat(rig.cache.status().dirtyBytes()).isZero();
        }
    }
}
