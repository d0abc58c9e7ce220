package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Requests that end just as the server's timer takes the reader's role over from them (writes
 * lasting about {@link Connection#INLINE_TAKEOVER_NANOS}): the overtaken request hands back the old
 * input buffer as soon as it sees the takeover, so the new reader must not read requests from it
 * afterwards. Found under load in CI as a reply whose handle came twice (a request read again from
 * a recycled input buffer). Every request must be answered exactly once, with the right data.
 */
class InlineTakeoverRaceTest {
    @TempDir
    Path dir;

    @Test
    @Timeout(120)
    void requestsEndingAsTheyAreOvertakenAreAnsweredOnceEach() throws Exception {
        long seed = new SplittableRandom().nextLong();
        MemoryBlockDevice device = new MemoryBlockDevice(64 << 20);
        SplittableRandom jitterSeed = new SplittableRandom(seed);
        ThreadLocal<SplittableRandom> jitter = ThreadLocal.withInitial(jitterSeed::split);
        device.onCall((op, offset) -> {
            if (op.equals("write")) { // 0.7 to 1.3 ms: around the takeover threshold
                long nanos = 700_000 + jitter.get().nextLong(600_000);
                long end = System.nanoTime() + nanos;
                while (System.nanoTime() < end) {
                    LockSupport.parkNanos(50_000);
                }
            }
        });
        Path socket = dir.resolve("s.sock");
        try (NbdServer server = NbdServer.builder().device(device).build()) {
            server.listenUnix(socket);
            int clients = 4;
            int perClient = 40;
            int sessions = 15; // new connections take input buffers from the pool while others are overtaken
            List<Future<?>> done = new ArrayList<>();
            try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
                for (int k = 0; k < clients; k++) {
                    int client = k;
                    done.add(pool.submit(() -> {
                        for (int session = 0; session < sessions; session++) {
                            client(socket, client, perClient, seed);
                        }
                        return null;
                    }));
                }
                for (Future<?> f : done) {
                    f.get();
                }
            }
            NbdStats.Snapshot s = server.stats().snapshot();
            assertThat(s.protocolViolations()).as("seed %d", seed).isZero();
            assertThat(s.requests("write")).as("seed %d", seed).isEqualTo((long) clients * perClient * sessions);
            assertThat(s.inlineTakeovers()).as("the race was exercised (seed %d)", seed).isPositive();
        }
    }

    /** Queue depth 1 and 2 in turns (alone: inline; pipelined: inline if small), then a read-back. */
    private static Void client(Path socket, int client, int count, long seed) throws IOException {
        try (NbdTestClient c = NbdTestClient.open(socket, client % 2 == 0, false)) {
            boolean[] seen = new boolean[count];
            int i = 0;
            while (i < count) {
                int depth = Math.min(count - i, 1 + i % 2);
                for (int d = 0; d < depth; d++) {
                    c.request(0, NBD_CMD_WRITE, i + d, offset(client, i + d), 4096, pattern(client, i + d));
                }
                for (int d = 0; d < depth; d++) {
                    NbdTestClient.Reply r = c.reply(0);
                    assertThat(r.error()).as("seed %d", seed).isZero();
                    assertThat(r.handle()).as("a reply to a request sent (seed %d)", seed).isBetween((long) i, (long) i + depth - 1);
                    assertThat(seen[(int) r.handle()]).as("reply to %d twice (seed %d)", r.handle(), seed).isFalse();
                    seen[(int) r.handle()] = true;
                }
                i += depth;
            }
            for (int j = 0; j < count; j++) {
                assertThat(c.read(100_000 + j, offset(client, j), 4096)).as("seed %d", seed)
                        .isEqualTo(pattern(client, j));
            }
            c.disconnect();
        }
        return null;
    }

    private static byte[] pattern(int client, int i) {
        byte[] data = new byte[4096];
        Arrays.fill(data, (byte) (client * 31 + i));
        return data;
    }

    private static long offset(int client, int i) {
        return ((long) client * 1024 + i) * 4096;
    }
}
