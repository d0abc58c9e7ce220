package io.pmcache.cache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.pmcache.device.DeviceClosedException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link Cache#writeFrom}: the data read from its source straight into the medium, piece by piece
 * (at 4 MiB range ends and segment ends), each piece's key appended once the piece is in; the
 * rest taken whole when there is no room without waiting or the mode routes the write past the
 * cache; a source that fails midway leaves no key for the piece it was filling and the cache
 * healthy. (The model test with power cuts writes half its data this way too.)
 */
@Timeout(120)
class WriteFromTest {
    private static final long MIB = Rig.MIB;

    private static byte[] random(long seed, int n) {
        byte[] b = new byte[n];
        new SplittableRandom(seed).nextBytes(b);
        return b;
    }

    @Test
    void aWriteAcrossRangeAndSegmentEndsIsReadStraightIntoTheMediumAndReplaysWithItsCrcs() throws Exception {
        try (Rig rig = Rig.format(24, 64 * MIB, true)) {
            Cache c = rig.open(CacheOptions.defaults().withWriteback(false).withGc(false));
            long offset = 4 * MIB - 1_536 * 1024; // 1.5 MiB before a range end: crosses it and segment ends
            byte[] data = random(1, (int) (3 * MIB));
            ArrayPayload payload = new ArrayPayload(data);
            c.writeFrom(offset, data.length, payload, false);
            assertThat(payload.restTaken()).as("room was at hand: nothing taken whole").isFalse();
            assertThat(payload.pieces()).as("pieces cut at the range end and at segment ends").isGreaterThanOrEqualTo(4);
            assertThat(rig.read(offset, data.length)).isEqualTo(data);
            assertThat(c.status().writes()).isEqualTo(1);
            assertThat(c.status().writeBytes()).isEqualTo(data.length);
            rig.closeCache();

            c = rig.open(CacheOptions.defaults().withWriteback(false).withGc(false)); // replay checks every data CRC
            assertThat(c.status().dataCrcErrors()).isZero();
            assertThat(c.status().corruptKeysSkipped()).isZero();
            assertThat(rig.read(offset, data.length)).isEqualTo(data);
        }
    }

    @Test
    void aSourceThatFailsMidwayPassesItsErrorOnAndLeavesNoKeyForThePieceItWasFilling() throws Exception {
        try (Rig rig = Rig.format(24, 64 * MIB, true)) {
            Cache c = rig.open(CacheOptions.defaults().withWriteback(false).withGc(false));
            byte[] before = random(2, (int) (3 * MIB));
            c.write(MIB, MemorySegment.ofArray(before), false);
            byte[] data = random(3, (int) (3 * MIB));
            ArrayPayload payload = new ArrayPayload(data).failAfter(MIB + 100_000);
            assertThatThrownBy(() -> c.writeFrom(MIB, data.length, payload, false))
                    .isInstanceOf(IOException.class).hasMessageContaining("payload lost");
            int done = payload.delivered(); // the pieces delivered whole have their keys
            assertThat(done).isLessThanOrEqualTo((int) MIB + 100_000).isGreaterThan(0);
            byte[] expected = before.clone();
            System.arraycopy(data, 0, expected, 0, done);
            assertThat(rig.read(MIB, data.length)).isEqualTo(expected);
            assertThat(c.status().failure()).as("a lost payload is no cache failure").isNull();

            byte[] after = random(4, 256 * 1024);
            c.writeFrom(2 * MIB, after.length, new ArrayPayload(after), false);
            System.arraycopy(after, 0, expected, (int) MIB, after.length);
            assertThat(rig.read(MIB, data.length)).isEqualTo(expected);
            rig.closeCache();

            Cache reopened = rig.open(CacheOptions.defaults().withWriteback(false).withGc(false));
            assertThat(reopened.status().dataCrcErrors()).isZero();
            assertThat(reopened.status().corruptKeysSkipped()).isZero();
            assertThat(rig.read(MIB, data.length)).isEqualTo(expected);
        }
    }

    /**
     * A payload lost midway (the NBD client went away) keeps the pieces delivered whole, and those
     * end on 512-byte sectors of the device: every sector the write touches holds its old data or
     * the write's, never part of each, wherever the write starts and whatever sizes the cache
     * stored before (an unaligned write leaves the data head at an odd place in its segment, where
     * a piece is cut at the segment's end). A process killed between two pieces leaves the same.
     */
    @Test
    void aPayloadLostMidwayLeavesEverySectorOldOrNew() throws Exception {
        int sector = 512;
        for (long start : new long[] {0, 100, 4 * MIB - 300}) {
            for (int odd : new int[] {0, 1000}) {
                String c0 = "write at " + start + ", after a write of " + odd + " bytes";
                try (Rig rig = Rig.format(24, 64 * MIB, true)) {
                    Cache c = rig.open(CacheOptions.defaults().withParallel(1).withWriteback(false).withGc(false));
                    if (odd > 0) {
                        c.write(40 * MIB + 7, MemorySegment.ofArray(random(7, odd)), false);
                    }
                    int len = (int) (3 * MIB);
                    long from = start / sector * sector;
                    long to = (start + len + sector - 1) / sector * sector;
                    byte[] old = new byte[(int) (to - from)];
                    rig.backing.read(from, MemorySegment.ofArray(old)); // not through the cache: no fill
                    byte[] data = random(8, len);
                    byte[] written = old.clone();
                    System.arraycopy(data, 0, written, (int) (start - from), len);
                    ArrayPayload payload = new ArrayPayload(data).failAfter(MIB + 5000);
                    assertThatThrownBy(() -> c.writeFrom(start, len, payload, false)).as(c0)
                            .isInstanceOf(IOException.class);
                    byte[] got = rig.read(from, old.length);
                    int kept = 0;
                    for (int at = 0; at < got.length; at += sector) {
                        byte[] g = Arrays.copyOfRange(got, at, at + sector);
                        boolean isNew = Arrays.equals(g, Arrays.copyOfRange(written, at, at + sector));
                        assertThat(isNew || Arrays.equals(g, Arrays.copyOfRange(old, at, at + sector)))
                                .as("%s: the sector at %d holds its old data or the write's", c0, from + at).isTrue();
                        kept += isNew ? 1 : 0;
                    }
                    assertThat(kept).as("%s: the pieces delivered whole are kept", c0).isGreaterThan(0);
                }
            }
        }
    }

    @Test
    void aWriteTheModeRoutesPastTheCacheTakesItsDataWhole() throws Exception {
        try (Rig rig = Rig.format(24, 64 * MIB, false)) {
            Cache c = rig.open(CacheOptions.defaults());
            c.setCacheMode(CacheMode.WRITEAROUND, left -> { });
            byte[] data = random(5, 512 * 1024);
            ArrayPayload payload = new ArrayPayload(data);
            c.writeFrom(8 * MIB, data.length, payload, true);
            assertThat(payload.restTaken()).isTrue();
            assertThat(c.status().directWrites()).isEqualTo(1);
            byte[] onDisk = new byte[data.length];
            rig.backing.read(8 * MIB, MemorySegment.ofArray(onDisk));
            assertThat(onDisk).isEqualTo(data);
            assertThat(rig.read(8 * MIB, data.length)).isEqualTo(data);
        }
    }

    @Test
    void withNoRoomAtHandTheRestIsTakenWholeAndWaitsForRoomAsAWriteDoes() throws Exception {
        try (Rig rig = Rig.format(16, 64 * MIB, false);
             ExecutorService threads = Executors.newCachedThreadPool()) {
            Cache c = rig.open(CacheOptions.defaults().withWriteback(false));
            // fill the cache: with writeback off no space comes back, a write waits for it
            CompletableFuture<Throwable> filler = CompletableFuture.supplyAsync(() -> {
                try {
                    byte[] block = new byte[(int) (256 * 1024)];
                    for (long off = 0; ; off = (off + block.length) % (48 * MIB)) {
                        c.write(off, MemorySegment.ofArray(block), false);
                    }
                } catch (Throwable t) {
                    return t;
                }
            }, threads);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (c.status().spaceWaits() == 0) {
                assertThat(System.nanoTime() < deadline).as("the cache fills").isTrue();
                Thread.sleep(5);
            }
            byte[] data = random(6, (int) (2 * MIB)); // more than a segment: needs a new one
            ArrayPayload payload = new ArrayPayload(data);
            CompletableFuture<Throwable> streamed = CompletableFuture.supplyAsync(() -> {
                try {
                    c.writeFrom(56 * MIB, data.length, payload, false);
                    return null;
                } catch (Throwable t) {
                    return t;
                }
            }, threads);
            while (!payload.restTaken()) {
                assertThat(System.nanoTime() < deadline).as("the rest is taken whole").isTrue();
                assertThat(streamed.isDone()).as("the write waits for room").isFalse();
                Thread.sleep(5);
            }
            Thread.sleep(50);
            assertThat(streamed.isDone()).as("the write waits for room, as a write does").isFalse();
            rig.closeCache(); // fails the waiting writers
            assertThat(streamed.get(30, TimeUnit.SECONDS)).isInstanceOf(DeviceClosedException.class);
            assertThat(filler.get(30, TimeUnit.SECONDS)).isInstanceOf(DeviceClosedException.class);
        }
    }
}
