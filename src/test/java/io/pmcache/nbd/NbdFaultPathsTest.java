package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The server's failure paths: running out of memory, slow devices, clients that do not read their
 * replies or leave, and stopping with requests in flight. No test here depends on timing: waits
 * are on conditions, bounded only to turn a hang into a failure.
 */
@Timeout(120)
class NbdFaultPathsTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        Collections.reverse(open);
        for (AutoCloseable c : open) {
            c.close();
        }
    }

    private <T extends AutoCloseable> T closeLater(T c) {
        open.add(c);
        return c;
    }

    private Path serve(NbdServer server) throws IOException {
        closeLater(server);
        Path socket = dir.resolve("s" + open.size() + ".sock");
        server.listenUnix(socket);
        return socket;
    }

    /** Waits for {@code condition}; fails (instead of hanging) after a generous bound. */
    static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("timed out waiting until " + what + "; threads: " + dumpThreads());
            }
            Thread.sleep(1);
        }
    }

    /** A dump of every thread, virtual ones included, in a file; its name (for a failure message). */
    private static String dumpThreads() {
        try {
            Path f = Path.of(System.getProperty("java.io.tmpdir"), "nbd-threads-" + System.nanoTime() + ".txt");
            java.lang.management.ManagementFactory.getPlatformMXBean(com.sun.management.HotSpotDiagnosticMXBean.class)
                    .dumpThreads(f.toString(), com.sun.management.HotSpotDiagnosticMXBean.ThreadDumpFormat.TEXT_PLAIN);
            return f.toString();
        } catch (IOException | RuntimeException e) {
            return "(no dump: " + e + ")";
        }
    }

    private static byte[] pattern(int length, long offset) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) ((offset + i) * 31 >>> 7);
        }
        return b;
    }

    private static void fill(MemoryBlockDevice device, long offset, int length) throws IOException {
        device.write(offset, java.lang.foreign.MemorySegment.ofArray(pattern(length, offset)), false);
    }

    /** Platform threads inside the NBD server's code (reading, waiting) but not inside a device call. */
    private static List<String> waitingServerThreads() {
        List<String> out = new ArrayList<>();
        Thread.getAllStackTraces().forEach((t, stack) -> {
            boolean server = false;
            boolean device = false;
            for (StackTraceElement e : stack) {
                server |= e.getClassName().startsWith("io.pmcache.nbd.") && !e.getClassName().contains("Test")
                        && !e.getClassName().equals(MemoryBlockDevice.class.getName());
                device |= e.getClassName().startsWith(MemoryBlockDevice.class.getName());
            }
            if (server && !device) { // a reader still in a socket read counts too: it has not seen the EOF yet
                out.add(t.getName() + " " + t.getState() + " at " + List.of(stack).subList(0, Math.min(4, stack.length)));
            }
        });
        return out;
    }

    // ---- item 8: memory -------------------------------------------------------------------------

    @Test
    void anAllocationFailureFailsOnlyThatRequestWithEnomemAndReleasesWhatItHeld() throws Exception {
        MemoryBlockDevice device = new MemoryBlockDevice(64 * MIB);
        fill(device, 0, 4096);
        NbdServer server = NbdServer.builder().device(device)
                .bufferAllocator(size -> {
                    if (size >= MIB) {
                        throw new OutOfMemoryError("Cannot reserve " + size + " bytes of direct buffer memory (test)");
                    }
                    return ByteBuffer.allocateDirect(size);
                }).build();
        Path socket = serve(server);
        for (boolean structured : new boolean[] {false, true}) {
            try (NbdTestClient c = NbdTestClient.open(socket, structured, false)) {
                c.request(0, NBD_CMD_READ, 1, 0, 2 * MIB, null);
                NbdTestClient.Reply r = c.reply(2 * MIB);
                assertThat(r.handle()).isEqualTo(1);
                assertThat(r.error()).as("a read whose buffer cannot be allocated").isEqualTo(NBD_ENOMEM);
                // a write whose buffer cannot be allocated: its payload is read and dropped
                c.request(0, NBD_CMD_WRITE, 2, 0, 2 * MIB, new byte[2 * MIB]);
                r = c.reply(0);
                assertThat(r.handle()).isEqualTo(2);
                assertThat(r.error()).isEqualTo(NBD_ENOMEM);
                assertThat(c.read(3, 0, 4096)).as("the connection stays in step and serves small requests")
                        .isEqualTo(pattern(4096, 0));
                c.disconnect();
            }
        }
        await("both connections have ended (nothing they held is still counted in flight)",
                () -> server.stats().snapshot().connectionsActive() == 0);
        assertThat(server.stats().snapshot().errors("ENOMEM")).isEqualTo(4);
        assertThat(server.stats().snapshot().allocationFailures()).isEqualTo(4);
    }

    @Test
    void payloadMemoryIsBoundedForTheWholeServer() throws Exception {
        MemoryBlockDevice device = new MemoryBlockDevice(64 * MIB);
        fill(device, 32 * MIB, 16 * MIB);
        CountDownLatch gate = new CountDownLatch(1);
        AtomicInteger inDevice = new AtomicInteger();
        AtomicInteger mostInDevice = new AtomicInteger();
        device.onRead(offset -> {
            mostInDevice.accumulateAndGet(inDevice.incrementAndGet(), Math::max);
            try {
                if (offset < 32 * MIB && !gate.await(60, TimeUnit.SECONDS)) {
                    throw new IOException("gate not opened");
                }
            } catch (InterruptedException e) {
                throw new IOException(e);
            } finally {
                inDevice.decrementAndGet();
            }
        });
        // 32 MiB for the whole server: two 16 MiB reads fill it, though each connection may have 64 MiB in flight
        NbdServer server = NbdServer.builder().device(device).maxBufferedBytes(32 * MIB).build();
        Path socket = serve(server);
        NbdTestClient a = closeLater(NbdTestClient.open(socket, false, false));
        NbdTestClient b = closeLater(NbdTestClient.open(socket, false, false));
        a.request(0, NBD_CMD_READ, 1, 0, 16 * MIB, null);
        a.request(0, NBD_CMD_READ, 2, 16 * MIB, 16 * MIB, null);
        await("both reads of the first client are in the device", () -> inDevice.get() == 2);
        b.request(0, NBD_CMD_READ, 3, 32 * MIB, 16 * MIB, null);
        await("the second client's read waits for memory, or (unbounded) reached the device",
                () -> server.stats().snapshot().bufferWaits() == 1 || inDevice.get() == 3);
        assertThat(inDevice.get()).as("the third 16 MiB buffer waits while 32 MiB are in flight").isEqualTo(2);
        gate.countDown();
        // the first client's replies are read first: until they are, their buffers are in use
        assertThat(a.reply(16 * MIB).error()).isZero();
        assertThat(a.reply(16 * MIB).error()).isZero();
        NbdTestClient.Reply r = b.reply(16 * MIB);
        assertThat(r.handle()).isEqualTo(3);
        assertThat(r.payload()).isEqualTo(pattern(16 * MIB, 32 * MIB));
        assertThat(mostInDevice.get()).isEqualTo(2);
    }

    @Test
    void clientsThatNeverReadRepliesCannotStarveOthersOnceTheyLeave() throws Exception {
        // The attack of issue 9 item 8, scaled down: clients send two large reads each and never read
        // the replies, so those replies (and their buffers) are stuck in the sockets; a new client's
        // large read waits for memory; when the attackers leave, everything they held is released.
        MemoryBlockDevice device = new MemoryBlockDevice(64 * MIB);
        fill(device, 0, 8 * MIB);
        NbdServer server = NbdServer.builder().device(device).maxBufferedBytes(32 * MIB).build();
        Path socket = serve(server);
        List<NbdTestClient> attackers = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            NbdTestClient c = NbdTestClient.open(socket, false, false);
            attackers.add(c);
            c.request(0, NBD_CMD_READ, 1, 8 * MIB, 8 * MIB, null);
            c.request(0, NBD_CMD_READ, 2, 16 * MIB, 8 * MIB, null);
        }
        await("the attackers' reads have taken all the memory and the rest wait",
                () -> server.stats().snapshot().bufferWaits() >= 1);
        NbdTestClient good = closeLater(NbdTestClient.open(socket, false, false));
        good.request(0, NBD_CMD_READ, 7, 0, 8 * MIB, null);
        for (NbdTestClient c : attackers) {
            c.close();
        }
        NbdTestClient.Reply r = good.reply(8 * MIB);
        assertThat(r.handle()).isEqualTo(7);
        assertThat(r.payload()).isEqualTo(pattern(8 * MIB, 0));
        await("every attacker's connection has ended", () -> server.stats().snapshot().connectionsActive() == 1);
    }

    @Test
    void noThreadStaysWithAConnectionWhoseClientLeftWhileARequestWasStuck() throws Exception {
        MemoryBlockDevice device = new MemoryBlockDevice(4 * MIB);
        CountDownLatch gate = new CountDownLatch(1);
        AtomicInteger inDevice = new AtomicInteger();
        device.onRead(offset -> {
            inDevice.incrementAndGet();
            try {
                if (!gate.await(60, TimeUnit.SECONDS)) {
                    throw new IOException("gate not opened");
                }
            } catch (InterruptedException e) {
                throw new IOException(e);
            }
        });
        NbdServer server = NbdServer.builder().device(device).build();
        Path socket = serve(server);
        NbdTestClient c = NbdTestClient.open(socket, false, false);
        c.request(0, NBD_CMD_READ, 1, 0, 4096, null);
        await("the read is stuck in the device", () -> inDevice.get() == 1);
        await("another thread reads the socket meanwhile", () -> Thread.getAllStackTraces().values().stream()
                .anyMatch(st -> List.of(st).stream().anyMatch(e -> e.getClassName().equals(Connection.class.getName())
                        && e.getMethodName().equals("fill"))));
        c.close();
        // the only thread left working for the connection is the one inside the device call: no
        // reader waits for it (issue 9: readers stayed in InFlightLimiter.awaitIdle forever)
        await("no thread but the device call's is left with the connection", () -> waitingServerThreads().isEmpty());
        gate.countDown();
        await("the connection has ended once its request returned",
                () -> server.stats().snapshot().connectionsActive() == 0);
    }

    // ---- item 9: slow requests ------------------------------------------------------------------

    @Test
    void slowRequestsAreHandedOffInsteadOfEachBeingTakenOver() throws Exception {
        // Every read waits until 8 are in the device at once (a device that takes a while, made
        // deterministic): at queue depth 8, once a slow read has been taken over, the next ones must
        // go to request threads (hand-off mode) instead of each being taken over in turn.
        int reads = 200;
        int depth = 8;
        CyclicBarrier wave = new CyclicBarrier(depth);
        MemoryBlockDevice device = new MemoryBlockDevice(4 * MIB);
        device.onRead(offset -> {
            try {
                wave.await(60, TimeUnit.SECONDS);
            } catch (InterruptedException | BrokenBarrierException | TimeoutException e) {
                throw new IOException("reads were not served concurrently", e);
            }
        });
        NbdServer server = NbdServer.builder().device(device).build();
        Path socket = serve(server);
        try (NbdTestClient c = NbdTestClient.open(socket, false, false)) {
            Semaphore window = new Semaphore(depth);
            Thread sender = Thread.ofVirtual().start(() -> {
                try {
                    for (int i = 0; i < reads; i++) {
                        window.acquire();
                        c.request(0, NBD_CMD_READ, i, 4096L * (i % 512), 4096, null);
                    }
                } catch (IOException | InterruptedException e) {
                    throw new IllegalStateException(e);
                }
            });
            Set<Long> seen = ConcurrentHashMap.newKeySet();
            for (int i = 0; i < reads; i++) {
                NbdTestClient.Reply r = c.reply(4096);
                assertThat(r.error()).isZero();
                assertThat(seen.add(r.handle())).isTrue();
                window.release();
            }
            sender.join();
        }
        long takeovers = server.stats().snapshot().inlineTakeovers();
        assertThat(takeovers).as("takeovers for %d slow reads at queue depth %d", reads, depth)
                .isPositive().isLessThanOrEqualTo(reads / 2);
    }

    @Test
    void aSlowDeviceAtQueueDepthOneIsNotTakenOverOncePerRequest() throws Exception {
        // Every read takes 3 ms, sent one at a time: a lone request is not handed off after one
        // takeover (that one may be a preempted request), but a second takeover soon after shows a
        // slow device, and from then on the requests go to their own threads.
        int reads = 40;
        MemoryBlockDevice device = new MemoryBlockDevice(4 * MIB);
        device.onRead(offset -> {
            try {
                Thread.sleep(3);
            } catch (InterruptedException e) {
                throw new IOException(e);
            }
        });
        NbdServer server = NbdServer.builder().device(device).build();
        Path socket = serve(server);
        try (NbdTestClient c = NbdTestClient.open(socket, false, false)) {
            for (int i = 0; i < reads; i++) {
                c.request(0, NBD_CMD_READ, i, 4096L * i, 4096, null);
                assertThat(c.reply(4096).error()).isZero();
            }
        }
        assertThat(server.stats().snapshot().inlineTakeovers()).as("takeovers for %d slow reads at queue depth 1", reads)
                .isPositive().isLessThanOrEqualTo(reads / 4);
    }

    // ---- item 10: stop --------------------------------------------------------------------------

    /** Reads replies until the server closes the connection. */
    private static List<NbdTestClient.Reply> repliesUntilClosed(NbdTestClient c, int dataLength) throws IOException {
        return repliesUntilClosed(c, dataLength, new ArrayList<>());
    }

    /** Reads replies into {@code replies} (as they come) until the server closes the connection. */
    private static List<NbdTestClient.Reply> repliesUntilClosed(NbdTestClient c, int dataLength,
                                                               List<NbdTestClient.Reply> replies) throws IOException {
        while (true) {
            try {
                replies.add(c.reply(dataLength));
            } catch (EOFException e) {
                return replies;
            }
        }
    }

    @Test
    void stopAnswersEveryRequestAlreadyReceived() throws Exception {
        // 32 pipelined 1 MiB reads; the connection may have 4 in flight, so when the server stops,
        // 4 are in the device and the rest are received but not started: every one is answered,
        // with its data or ESHUTDOWN, before the connection closes.
        MemoryBlockDevice device = new MemoryBlockDevice(64 * MIB);
        fill(device, 0, 32 * MIB);
        CountDownLatch gate = new CountDownLatch(1);
        AtomicInteger inDevice = new AtomicInteger();
        device.onRead(offset -> {
            inDevice.incrementAndGet();
            try {
                if (!gate.await(60, TimeUnit.SECONDS)) {
                    throw new IOException("gate not opened");
                }
            } catch (InterruptedException e) {
                throw new IOException(e);
            }
        });
        NbdServer server = NbdServer.builder().device(device).maxInFlightRequests(4).build();
        Path socket = serve(server);
        NbdTestClient c = closeLater(NbdTestClient.open(socket, true, false));
        for (int i = 0; i < 32; i++) {
            c.request(0, NBD_CMD_READ, i, (long) i * MIB, MIB, null);
        }
        await("4 reads are in the device and the fifth waits for room",
                () -> inDevice.get() == 4 && server.stats().snapshot().requests("read") >= 5);
        Thread closer = Thread.ofVirtual().start(server::close);
        await("the server is stopping (its socket is gone)", () -> !java.nio.file.Files.exists(socket));
        gate.countDown();
        List<NbdTestClient.Reply> replies = repliesUntilClosed(c, MIB);
        closer.join();
        assertThat(replies).extracting(NbdTestClient.Reply::handle).as("one reply per request")
                .containsExactlyInAnyOrderElementsOf(java.util.stream.LongStream.range(0, 32).boxed().toList());
        int answered = 0;
        for (NbdTestClient.Reply r : replies) {
            if (r.error() == 0) {
                answered++;
                ByteBuffer b = ByteBuffer.wrap(r.payload());
                assertThat(b.getLong()).isEqualTo(r.handle() * MIB);
                byte[] data = new byte[b.remaining()];
                b.get(data);
                assertThat(data).isEqualTo(pattern(MIB, r.handle() * MIB));
            } else {
                assertThat(r.error()).as("request %d", r.handle()).isEqualTo(NBD_ESHUTDOWN);
            }
        }
        assertThat(answered).as("the reads in flight finished").isGreaterThanOrEqualTo(4);
    }

    @Test
    void stopFailsRequestsBlockedInTheDeviceWithEshutdownOnceItIsClosed() throws Exception {
        // the stop sequence of `pmcache serve`: drain (in-flight requests get a grace period), close
        // the device (calls blocked in it fail with DeviceClosedException), close the server.
        MemoryBlockDevice device = new MemoryBlockDevice(64 * MIB);
        fill(device, 0, 32 * MIB);
        AtomicInteger blocked = new AtomicInteger();
        device.onRead(offset -> {
            if ((offset / MIB) % 2 == 1) {
                blocked.incrementAndGet();
                device.awaitClose(); // a writer waiting for space, say
            }
        });
        NbdServer server = NbdServer.builder().device(device).shutdownGrace(java.time.Duration.ofMillis(100)).build();
        Path socket = serve(server);
        NbdTestClient c = closeLater(NbdTestClient.open(socket, false, false));
        NbdTestClient idle = closeLater(NbdTestClient.open(socket, false, false));
        List<NbdTestClient.Reply> replies = java.util.Collections.synchronizedList(new ArrayList<>());
        Thread collector = Thread.ofVirtual().start(() -> {
            try {
                repliesUntilClosed(c, MIB, replies);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        for (int i = 0; i < 32; i++) {
            c.request(0, NBD_CMD_READ, i, (long) i * MIB, MIB, null);
        }
        await("the 16 odd reads are blocked in the device", () -> blocked.get() == 16);
        assertThat(server.drain()).as("requests are still in flight after the grace").isFalse();
        c.request(0, NBD_CMD_WRITE, 100, 0, 4096, new byte[4096]);
        await("the request sent after the stop began is answered",
                () -> List.copyOf(replies).stream().anyMatch(r -> r.handle() == 100));
        device.close();
        server.close();
        collector.join();
        assertThat(replies).hasSize(33);
        for (NbdTestClient.Reply r : replies) {
            if (r.handle() == 100) {
                assertThat(r.error()).as("a request received after the stop began").isEqualTo(NBD_ESHUTDOWN);
            } else if (r.handle() % 2 == 0) {
                assertThat(r.error()).isZero();
                assertThat(r.payload()).isEqualTo(pattern(MIB, r.handle() * MIB));
            } else {
                assertThat(r.error()).as("blocked read %d", r.handle()).isEqualTo(NBD_ESHUTDOWN);
            }
        }
        assertThat(idle.closedByServer()).isTrue();
        assertThat(server.stats().snapshot().connectionsActive()).isZero();
    }

    @Test
    void stopIsBoundedWhenADeviceCallNeverReturns() throws Exception {
        MemoryBlockDevice device = new MemoryBlockDevice(4 * MIB);
        CountDownLatch never = new CountDownLatch(1);
        open.add(never::countDown); // released after the test, so the stuck thread ends
        AtomicInteger inDevice = new AtomicInteger();
        device.onRead(offset -> {
            inDevice.incrementAndGet();
            try {
                never.await();
            } catch (InterruptedException e) {
                throw new IOException(e);
            }
        });
        NbdServer server = NbdServer.builder().device(device).shutdownGrace(java.time.Duration.ofMillis(100)).build();
        Path socket = serve(server);
        NbdTestClient c = closeLater(NbdTestClient.open(socket, false, false));
        c.request(0, NBD_CMD_READ, 1, 0, 4096, null);
        await("the read is stuck in the device", () -> inDevice.get() == 1);
        server.close(); // returns: the grace is a bound, not a hope
        assertThat(c.closedByServer()).isTrue();
    }

    @Test
    void handshakeOptionsDuringStopAreRefusedWithErrShutdown() throws Exception {
        MemoryBlockDevice device = new MemoryBlockDevice(4 * MIB);
        NbdServer server = NbdServer.builder().device(device).build();
        Path socket = serve(server);
        NbdTestClient c = closeLater(NbdTestClient.connect(socket));
        c.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
        c.option(NBD_OPT_LIST, new byte[0]);
        assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_SERVER);
        assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ACK);
        assertThat(server.drain()).isTrue();
        c.option(NBD_OPT_GO, NbdTestClient.infoData("", new int[0]));
        assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ERR_SHUTDOWN);
        server.close();
        assertThat(c.closedByServer()).isTrue();
    }
}
