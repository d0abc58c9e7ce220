package io.pmcache.cache;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.backing.MemoryBackingDevice;
import io.pmcache.format.KeyRecord;
import io.pmcache.format.Layout;
import io.pmcache.format.SegmentInfo;
import io.pmcache.testing.RandomSeed;
import io.pmcache.testing.RandomSeed.Seed;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Damage to exactly the newest of a segment's two info slots. Replay falls back to the older
 * slot; where the key log proves what the newest held (a generation its keys name, or the link to
 * the next log segment, see {@link SlotRecovery}) it is restored and nothing acknowledged is lost;
 * keys that no write of the slot explains are counted and reported, never dropped silently.
 */
@ExtendWith(RandomSeed.class)
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class SegmentInfoSlotTest {
    private static final long MIB = Rig.MIB;
    private static final int SEGMENTS = 16;
    private static final int DEVICE = (int) (32 * MIB);
    /** No background workers: the dirty data stays in the cache, only the cache holds it. */
    private static final CacheOptions QUIET = new CacheOptions(1, 90, false, false);

    private static long cacheId(Rig rig) throws IOException {
        return Cache.superblock(rig.medium).cacheId();
    }

    /** The slot holding the newest valid copy of {@code seg}'s info (both must be valid). */
    private static int newestSlot(Rig rig, int seg) throws IOException {
        SegmentInfo a = SegmentInfo.decodeSlot(rig.bytes(), seg, 0, cacheId(rig), SEGMENTS);
        SegmentInfo b = SegmentInfo.decodeSlot(rig.bytes(), seg, 1, cacheId(rig), SEGMENTS);
        assertThat(a).as("slot 0 of segment %d", seg).isNotNull();
        assertThat(b).as("slot 1 of segment %d", seg).isNotNull();
        return a.sequence() > b.sequence() ? 0 : 1;
    }

    private static void damage(MemorySegment m, long at) {
        m.set(JAVA_BYTE, at, (byte) (m.get(JAVA_BYTE, at) ^ 0x21));
    }

    /** Every data segment the dirty keys of the live log point into. */
    private static Set<Integer> dirtyDataSegments(Cache c) {
        Set<Integer> out = new LinkedHashSet<>();
        for (LogReader.KsetAt k : Rig.ksets(c)) {
            for (int s = 0; s < k.slots(); s++) {
                KeyRecord key = c.engine().reader.key(k, s);
                if (key != null && key.dirty() && !key.zero()) {
                    out.add(key.segment());
                }
            }
        }
        return out;
    }

    /**
     * A cache whose segments have all been reclaimed at least once (so each has two valid info
     * slots), then filled with dirty data that only the cache holds.
     */
    private static Rig dirtyOverReclaimedSegments(SplittableRandom r, WriteHistory model) throws IOException {
        Rig rig = Rig.format(SEGMENTS, new MemoryBackingDevice(DEVICE, 7), false);
        rig.open(new CacheOptions(1, 0, true, true));
        for (int i = 0; i < 192; i++) { // 48 MiB through a 16 MiB cache
            int len = 256 * 1024;
            rig.write(model, r.nextLong((DEVICE - len) / 4096 + 1) * 4096, len);
        }
        rig.cache.detach(left -> { }); // every data segment reclaimed
        rig.closeCache();
        rig.open(QUIET);
        CorruptMediaTest.writeSome(rig, model, r, 120, true);
        return rig;
    }

    @Test
    void aDamagedNewestSlotIsRestoredFromTheGenerationItsKeysName(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory(DEVICE);
        try (Rig rig = dirtyOverReclaimedSegments(r, model)) {
            List<Integer> candidates = new ArrayList<>();
            for (int s : dirtyDataSegments(rig.cache)) {
                if (rig.cache.engine().segments.generation(s) >= 1) {
                    candidates.add(s);
                }
            }
            assertThat(candidates).as("data segments reclaimed before").isNotEmpty();
            int seg = candidates.get(r.nextInt(candidates.size()));
            long generation = rig.cache.engine().segments.generation(seg);
            rig.closeCache();
            int newest = newestSlot(rig, seg);
            damage(rig.bytes(), Layout.segmentInfoSlot(seg, newest) + r.nextInt(24));
            String what = seed + " segment " + seg + " slot " + newest;
            assertThat(SegmentInfo.read(rig.bytes(), seg, cacheId(rig), SEGMENTS).generation())
                    .as("the older slot holds the generation before").isEqualTo(generation - 1);

            Checker.Report report = Checker.check(rig.medium, null, true, null);
            assertThat(report.clean()).as("%s: %s", what, report.findings()).isTrue();
            assertThat(report.findings()).as(what).anyMatch(f -> f.severity() == Checker.Severity.WARNING
                    && f.message().contains("segment " + seg + ": its damaged info slot held generation " + generation));

            rig.open(QUIET);
            assertThat(rig.cache.status().corruptKeysSkipped()).as(what).isZero();
            CorruptMediaTest.verifyCurrent(rig, model, what + ": nothing acknowledged is lost");
            SegmentInfo s0 = SegmentInfo.decodeSlot(rig.bytes(), seg, 0, cacheId(rig), SEGMENTS);
            SegmentInfo s1 = SegmentInfo.decodeSlot(rig.bytes(), seg, 1, cacheId(rig), SEGMENTS);
            assertThat(s0).as("%s: slot 0 valid again", what).isNotNull();
            assertThat(s1).as("%s: slot 1 valid again", what).isNotNull();
            assertThat(SegmentInfo.read(rig.bytes(), seg, cacheId(rig), SEGMENTS).generation()).isEqualTo(generation);
            rig.cache.flushAll(left -> { });
            assertThat(((MemoryBackingDevice) rig.backing).toByteArray()).as(what).isEqualTo(model.current);
            rig.closeCache();
            assertThat(Checker.check(rig.medium, null, true, null).warnings()).as("%s: healed", what).isZero();
        }
    }

    @Test
    void aDamagedNewestSlotIsRestoredFromTheKeyLogLinkItHeld(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory(DEVICE);
        try (Rig rig = Rig.format(SEGMENTS, new MemoryBackingDevice(DEVICE, 7), false)) {
            rig.open(QUIET);
            Engine e = rig.cache.engine();
            int first = e.info.current().keyTail().segment();
            // Flushed one by one, ksets stay small: a few thousand fill more than a log segment.
            while (e.keyLog.chainFrom(first).size() < 3) { // about 11,000 ksets and 5.5 MiB of data
                rig.write(model, r.nextLong(4 * MIB / 512) * 512, 512);
                rig.cache.flush();
            }
            List<Integer> chain = e.keyLog.chainFrom(first);
            int seg = chain.get(r.nextInt(chain.size() - 1)); // a segment that links to the next
            int next = e.segments.next(seg);
            rig.closeCache();
            int newest = newestSlot(rig, seg);
            assertThat(SegmentInfo.decodeSlot(rig.bytes(), seg, newest, cacheId(rig), SEGMENTS).next()).isEqualTo(next);
            damage(rig.bytes(), Layout.segmentInfoSlot(seg, newest) + 16); // the link itself
            String what = seed + " log segment " + seg + " -> " + next;
            assertThat(SegmentInfo.read(rig.bytes(), seg, cacheId(rig), SEGMENTS).next())
                    .as("the older slot has no link").isEqualTo(SegmentInfo.NO_NEXT);

            Checker.Report report = Checker.check(rig.medium, null, false, null);
            assertThat(report.clean()).as("%s: %s", what, report.findings()).isTrue();
            assertThat(report.findings()).as(what).anyMatch(f -> f.message().contains(
                    "segment " + seg + ": its damaged info slot held the key log's link to segment " + next));

            rig.open(QUIET);
            CorruptMediaTest.verifyCurrent(rig, model, what + ": the ksets after the link are replayed");
            assertThat(SegmentInfo.read(rig.bytes(), seg, cacheId(rig), SEGMENTS).next()).isEqualTo(next);
            rig.cache.flushAll(left -> { });
            assertThat(((MemoryBackingDevice) rig.backing).toByteArray()).as(what).isEqualTo(model.current);
        }
    }

    /**
     * A valid newest slot whose generation no write explains (rewritten one lower, CRC and all):
     * with no damaged slot to restore, the keys naming the segment's real generation are from the
     * future as far as the slots tell. They are dropped, counted and reported by check, never
     * dropped silently; their sectors read what the backing device holds.
     */
    @Test
    void keysNamingAGenerationNoSlotExplainsAreCountedAndReported(Seed seed) throws IOException {
        SplittableRandom r = seed.random();
        WriteHistory model = new WriteHistory(DEVICE);
        try (Rig rig = dirtyOverReclaimedSegments(r, model)) {
            Engine e = rig.cache.engine();
            int seg = -1;
            for (int s : dirtyDataSegments(rig.cache)) {
                if (e.segments.generation(s) >= 1) {
                    seg = s;
                    break;
                }
            }
            assertThat(seg).isNotNegative();
            long generation = e.segments.generation(seg);
            int lost = 0;
            for (LogReader.KsetAt k : Rig.ksets(rig.cache)) {
                for (int s = 0; s < k.slots(); s++) {
                    KeyRecord key = e.reader.key(k, s);
                    if (key != null && !key.zero() && key.segment() == seg) {
                        lost++;
                    }
                }
            }
            rig.closeCache();
            long id = cacheId(rig);
            int newest = newestSlot(rig, seg);
            SegmentInfo cur = SegmentInfo.decodeSlot(rig.bytes(), seg, newest, id, SEGMENTS);
            new SegmentInfo(cur.sequence(), generation - 1, cur.next()).encode(rig.bytes(), seg, newest, id);
            String what = seed + " segment " + seg;

            Checker.Report report = Checker.check(rig.medium, null, false, null);
            assertThat(report.clean()).as(what).isFalse();
            assertThat(report.badKeys()).as(what).isEqualTo(lost);
            final int victim = seg;
            assertThat(report.findings()).as(what).anyMatch(f -> f.severity() == Checker.Severity.ERROR
                    && f.message().contains("names generation " + generation + " of segment " + victim));

            rig.open(QUIET);
            assertThat(rig.cache.status().corruptKeysSkipped()).as("%s: every lost key counted", what)
                    .isEqualTo(lost);
            CorruptMediaTest.verifyOnceWritten(rig, model, what);
        }
    }
}
