package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * WRITEs whose payload the device reads from the socket itself ({@link Connection#STREAM_MIN_BYTES}
 * or more, not all read yet): the request runs inline on the reader, and until its last payload
 * byte is read no other thread may take the reader's role over (it would read payload bytes as
 * requests); a device that stops midway leaves the rest to be dropped; a client that stops sending
 * midway must not hold up the server's stop.
 */
@Timeout(60)
class StreamedWriteTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    private Path serve(NbdServer server) throws IOException {
        Path socket = dir.resolve("s.sock");
        server.listenUnix(socket);
        return socket;
    }

    private static byte[] random(SplittableRandom rnd, int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) rnd.nextInt();
        }
        return b;
    }

    /** Sends {@code payload} in pieces at the given cut points, pausing {@code pauseMs} before each. */
    private static void sendInPieces(NbdTestClient c, byte[] payload, int[] cuts, long pauseMs) throws Exception {
        int at = 0;
        for (int cut : cuts) {
            c.send(payload, at, cut - at);
            at = cut;
            Thread.sleep(pauseMs);
        }
        c.send(payload, at, payload.length - at);
    }

    @Test
    void aPayloadThatArrivesSlowlyIsReadByItsWriteAndTheConnectionStaysInStep() throws Exception {
        long seed = new SplittableRandom().nextLong();
        SplittableRandom rnd = new SplittableRandom(seed);
        MemoryBlockDevice device = new MemoryBlockDevice(64 * MIB);
        device.streamWrites(48 << 10);
        try (NbdServer server = NbdServer.builder().device(device).build()) {
            Path socket = serve(server);
            for (boolean structured : new boolean[] {false, true}) {
                int streamedBefore = device.streamedWrites();
                try (NbdTestClient c = NbdTestClient.open(socket, structured, false)) {
                    // A write runs inline, so streamed, unless two takeovers within 20 ms on a
                    // loaded machine (of reads, or of writes after their payload) put the connection
                    // in hand-off mode for every request: write until 3 were streamed, 30 at most.
                    for (int i = 0; i < 30 && device.streamedWrites() - streamedBefore < 3; i++) {
                        int len = (64 << 10) + 4096 * rnd.nextInt(64); // 64 KiB .. 316 KiB
                        long offset = 4096L * rnd.nextInt(8192);
                        byte[] data = random(rnd, len);
                        c.request(0, NBD_CMD_WRITE, 100 + i, offset, len, null);
                        // pauses far beyond the takeover threshold (1 ms), mid-payload and at piece ends
                        int a = 1 + rnd.nextInt(len / 2);
                        int b = a + 1 + rnd.nextInt(len - a - 1);
                        sendInPieces(c, data, new int[] {a, b}, 30);
                        NbdTestClient.Reply r = c.reply(0);
                        assertThat(r.handle()).as("seed %d", seed).isEqualTo(100 + i);
                        assertThat(r.error()).as("seed %d", seed).isZero();
                        assertThat(c.read(200 + i, offset, len)).as("seed %d", seed).isEqualTo(data);
                    }
                    c.disconnect();
                }
                assertThat(device.streamedWrites() - streamedBefore).as("writes streamed, seed %d", seed)
                        .isEqualTo(3);
            }
            assertThat(server.stats().snapshot().streamedWrites()).isEqualTo(device.streamedWrites());
        }
    }

    /**
     * A client sending large WRITEs back to back (a sequential writer at queue depth 8): each one's
     * payload goes straight into the device. A socket read that took whatever had arrived would read
     * the next WRITE's payload into the input buffer with its header, to be copied out of it: every
     * other WRITE (measured: 41 % streamed in a 128 KiB sequential fio run before
     * {@link Connection#HEADER_READ_BYTES}, 99.8 % after).
     */
    @Test
    void pipelinedLargeWritesAreEachStreamed() throws Exception {
        long seed = new SplittableRandom().nextLong();
        SplittableRandom rnd = new SplittableRandom(seed);
        MemoryBlockDevice device = new MemoryBlockDevice(64 * MIB);
        device.streamWrites(128 << 10);
        int batch = 8;
        int len = 128 << 10;
        try (NbdServer server = NbdServer.builder().device(device).build()) {
            Path socket = serve(server);
            try (NbdTestClient c = NbdTestClient.open(socket, false, false)) {
                // Every WRITE of a batch after its first (which follows the READs that check the
                // last batch, and may have arrived whole with its header) is streamed, unless two
                // takeovers within 20 ms on a loaded machine put the connection in hand-off mode:
                // batches until one is, 10 at most.
                int best = 0;
                for (int round = 0; round < 10 && best < batch - 1; round++) {
                    int before = device.streamedWrites();
                    byte[][] data = new byte[batch][];
                    for (int i = 0; i < batch; i++) {
                        data[i] = random(rnd, len);
                        c.request(0, NBD_CMD_WRITE, i, (long) (round * batch + i) * len, len, data[i]);
                    }
                    for (int i = 0; i < batch; i++) {
                        NbdTestClient.Reply r = c.reply(0);
                        assertThat(r.error()).as("seed %d", seed).isZero();
                    }
                    best = Math.max(best, device.streamedWrites() - before);
                    for (int i = 0; i < batch; i++) {
                        assertThat(c.read(100 + i, (long) (round * batch + i) * len, len)).as("seed %d", seed)
                                .isEqualTo(data[i]);
                    }
                }
                assertThat(best).as("the most WRITEs of one batch streamed, seed %d", seed)
                        .isGreaterThanOrEqualTo(batch - 1);
                c.disconnect();
            }
        }
    }

    @Test
    void aDeviceThatFailsMidwayAnswersEioAndThePayloadLeftIsDropped() throws Exception {
        MemoryBlockDevice device = new MemoryBlockDevice(64 * MIB);
        device.streamWrites(32 << 10);
        AtomicInteger pieces = new AtomicInteger();
        device.onCall((op, offset) -> {
            if (op.equals("piece") && offset == MIB + (64 << 10)) { // the third piece of the write at 1 MiB
                pieces.incrementAndGet();
                throw new IOException("injected failure after two pieces");
            }
        });
        try (NbdServer server = NbdServer.builder().device(device).build()) {
            Path socket = serve(server);
            try (NbdTestClient c = NbdTestClient.open(socket, false, false)) {
                byte[] data = new byte[256 << 10];
                Arrays.fill(data, (byte) 7);
                c.request(0, NBD_CMD_WRITE, 1, MIB, data.length, null);
                sendInPieces(c, data, new int[] {1000, 100_000}, 20);
                NbdTestClient.Reply r = c.reply(0);
                assertThat(r.handle()).isEqualTo(1);
                assertThat(r.error()).isEqualTo(NBD_EIO);
                assertThat(pieces.get()).isEqualTo(1);
                // in step: the rest of the payload was read and dropped, not taken for requests
                byte[] small = new byte[4096];
                Arrays.fill(small, (byte) 9);
                assertThat(c.write(2, 0, small)).isZero();
                assertThat(c.read(3, 0, 4096)).isEqualTo(small);
                c.disconnect();
            }
        }
    }

    @Test
    void aDeviceThatRefusesTheWriteBeforeReadingAnyOfItAnswersAndDropsThePayload() throws Exception {
        MemoryBlockDevice device = new MemoryBlockDevice(64 * MIB);
        device.streamWrites(32 << 10);
        device.failAt(2 * MIB);
        try (NbdServer server = NbdServer.builder().device(device).build()) {
            Path socket = serve(server);
            try (NbdTestClient c = NbdTestClient.open(socket, true, false)) {
                byte[] data = new byte[200 << 10];
                c.request(0, NBD_CMD_WRITE, 1, 2 * MIB, data.length, null);
                sendInPieces(c, data, new int[] {10}, 10);
                NbdTestClient.Reply r = c.reply(0);
                assertThat(r.error()).isEqualTo(NBD_EIO);
                assertThat(c.read(2, 0, 4096)).isEqualTo(new byte[4096]);
                c.disconnect();
            }
        }
    }

    @Test
    void aClientThatGoesAwayMidPayloadEndsOnlyItsConnection() throws Exception {
        MemoryBlockDevice device = new MemoryBlockDevice(64 * MIB);
        device.streamWrites(16 << 10);
        try (NbdServer server = NbdServer.builder().device(device).build()) {
            Path socket = serve(server);
            NbdTestClient gone = NbdTestClient.open(socket, false, false);
            gone.request(0, NBD_CMD_WRITE, 1, 0, 128 << 10, null);
            gone.send(new byte[50_000], 0, 50_000);
            Thread.sleep(20);
            gone.close();
            await("the connection has ended and released what it held",
                    () -> server.stats().snapshot().connectionsActive() == 0);
            try (NbdTestClient c = NbdTestClient.open(socket, false, false)) {
                byte[] data = new byte[128 << 10];
                Arrays.fill(data, (byte) 3);
                assertThat(c.write(2, 0, data)).isZero();
                assertThat(c.read(3, 0, data.length)).isEqualTo(data);
                c.disconnect();
            }
        }
    }

    /**
     * docs/nbd.md, "A WRITE whose payload never fully arrives": served by the cache, a streamed
     * WRITE whose client goes away mid-payload keeps the pieces the cache had received whole (a
     * prefix of the write), not the piece it was filling nor anything after; every sector holds its
     * old data or the write's, never part of each.
     */
    @Test
    void aCacheKeepsTheWholePiecesOfAPayloadThatStopsComingAndNoSectorHalfWritten() throws Exception {
        int sector = 512;
        try (io.pmcache.media.PowerCutMedium medium = io.pmcache.media.PowerCutMedium.create(32 * MIB)) {
            io.pmcache.backing.MemoryBackingDevice backing = new io.pmcache.backing.MemoryBackingDevice(16 * MIB, 3);
            io.pmcache.cache.Cache.format(medium, backing, new io.pmcache.cache.FormatOptions(MIB, false));
            io.pmcache.cache.Cache cache = io.pmcache.cache.Cache.open(medium, backing,
                    io.pmcache.cache.CacheOptions.defaults().withParallel(1).withWriteback(false));
            try (NbdServer server = NbdServer.builder().device(cache).build()) {
                Path socket = serve(server);
                // An odd-sized write first puts the cache's data head at an odd place in its segment.
                try (NbdTestClient c = NbdTestClient.open(socket, false, false)) {
                    assertThat(c.write(1, 12 * MIB + 3, new byte[1001])).isZero();
                    c.disconnect();
                }
                long offset = 3 * MIB - 300; // pieces end at segment ends and at the 4 MiB range end
                int len = 3 * MIB;
                int sent = 2 * MIB + 777;
                long from = offset / sector * sector;
                long to = (offset + len + sector - 1) / sector * sector;
                byte[] old = new byte[(int) (to - from)];
                backing.read(from, java.lang.foreign.MemorySegment.ofArray(old));
                byte[] data = random(new SplittableRandom(4), len);
                byte[] written = old.clone();
                System.arraycopy(data, 0, written, (int) (offset - from), len);

                NbdTestClient gone = NbdTestClient.open(socket, false, false);
                gone.request(0, NBD_CMD_WRITE, 2, offset, len, null);
                gone.send(data, 0, sent);
                gone.close();
                await("the connection has ended", () -> server.stats().snapshot().connectionsActive() == 0);
                assertThat(server.stats().snapshot().streamedWrites()).as("the WRITE was streamed").isEqualTo(1);

                byte[] got = new byte[old.length];
                cache.read(from, java.lang.foreign.MemorySegment.ofArray(got));
                long keptUpTo = from; // the end of the new sectors, which must come first
                for (int at = 0; at < got.length; at += sector) {
                    byte[] g = Arrays.copyOfRange(got, at, at + sector);
                    boolean isNew = Arrays.equals(g, Arrays.copyOfRange(written, at, at + sector));
                    boolean isOld = Arrays.equals(g, Arrays.copyOfRange(old, at, at + sector));
                    assertThat(isNew || isOld).as("the sector at %d holds its old data or the write's", from + at)
                            .isTrue();
                    if (isNew && !isOld) {
                        assertThat(keptUpTo).as("the sector at %d is new after an old one", from + at)
                                .isEqualTo(from + at);
                        keptUpTo = from + at + sector;
                    }
                }
                assertThat(keptUpTo - offset).as("bytes kept: the whole pieces received, not more than was sent")
                        .isGreaterThanOrEqualTo(MIB).isLessThanOrEqualTo(sent);
            } finally {
                cache.close();
            }
        }
    }

    @Test
    void theServersStopDoesNotWaitForAPayloadThatDoesNotCome() throws Exception {
        MemoryBlockDevice device = new MemoryBlockDevice(64 * MIB);
        device.streamWrites(16 << 10);
        CountDownLatch inDevice = new CountDownLatch(1);
        device.onCall((op, offset) -> {
            if (op.equals("piece")) {
                inDevice.countDown();
            }
        });
        NbdServer server = NbdServer.builder().device(device).shutdownGrace(Duration.ofMillis(300)).build();
        Path socket = serve(server);
        try (NbdTestClient c = NbdTestClient.open(socket, false, false)) {
            c.request(0, NBD_CMD_WRITE, 1, 0, 128 << 10, null);
            c.send(new byte[10_000], 0, 10_000); // and nothing more
            assertThat(inDevice.await(10, TimeUnit.SECONDS)).isTrue();
            long start = System.nanoTime();
            server.drain();
            // Closed by drain itself: the device closes next (the cache waits up to 30 s for the
            // calls in it, then unmaps its medium), and closing it would not end a call that
            // waits for the client. Only server.close() would close the connection otherwise.
            CompletableFuture<Boolean> closed = CompletableFuture.supplyAsync(() -> {
                try {
                    return c.closedByServer();
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }, runnable -> Thread.ofPlatform().daemon().start(runnable));
            assertThat(closed.get(10, TimeUnit.SECONDS)).as("connection closed by drain").isTrue();
            await("the streamed write has left the device", () -> server.stats().snapshot().connectionsActive() == 0);
            device.close();
            server.close();
            long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            assertThat(ms).as("stop took %d ms with a grace of 300 ms", ms).isLessThan(10_000);
        }
    }

    private static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!condition.getAsBoolean()) {
            assertThat(System.nanoTime() < deadline).as(what).isTrue();
            Thread.sleep(5);
        }
    }
}
