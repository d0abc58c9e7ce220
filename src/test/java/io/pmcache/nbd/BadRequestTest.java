package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;
import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.device.DeviceClosedException;
import io.pmcache.device.DeviceFailedException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Malformed and out-of-range requests get the spec's error replies, and a second, well-behaved
 * client keeps reading and writing correctly after every one of them.
 */
@Timeout(120)
class BadRequestTest {
    private static final long SIZE = 8 << 20;

    @TempDir
    Path dir;
    MemoryBlockDevice device;
    NbdServer server;
    Path socket;
    NbdTestClient healthy;
    int round;

    @BeforeEach
    void start() throws Exception {
        device = new MemoryBlockDevice(SIZE);
        server = NbdServer.builder().device(device).build();
        socket = dir.resolve("nbd.sock");
        server.listenUnix(socket);
        healthy = NbdTestClient.open(socket, false, false);
        healthyStillWorks();
    }

    @AfterEach
    void stop() throws IOException {
        healthyStillWorks();
        healthy.disconnect();
        server.close();
    }

    /** The other client writes a fresh pattern and reads it back. */
    private void healthyStillWorks() throws IOException {
        round++;
        byte[] data = new byte[4096];
        Arrays.fill(data, (byte) round);
        long offset = SIZE - 4096L * round;
        assertThat(healthy.write(1000 + round, offset, data)).isZero();
        assertThat(healthy.read(2000 + round, offset, 4096)).isEqualTo(data);
    }

    private int errorOf(NbdTestClient c, long handle) throws IOException {
        NbdTestClient.Reply r = c.reply(0);
        assertThat(r.handle()).isEqualTo(handle);
        if (c.structured && r.error() != 0) {
            assertThat(r.structured()).as("structured error reply").isTrue();
            assertThat(r.type()).isEqualTo(NBD_REPLY_TYPE_ERROR);
            assertThat(r.flags() & NBD_REPLY_FLAG_DONE).isEqualTo(NBD_REPLY_FLAG_DONE);
            ByteBuffer b = ByteBuffer.wrap(r.payload());
            b.getInt();
            assertThat(b.getShort()).as("error message length").isPositive();
        }
        return r.error();
    }

    @Test
    void outOfRangeReadsAndWrites() throws Exception {
        for (boolean structured : new boolean[] {false, true}) {
            try (NbdTestClient c = NbdTestClient.open(socket, structured, false)) {
                c.request(0, NBD_CMD_READ, 1, SIZE - 512, 1024, null);
                assertThat(errorOf(c, 1)).isEqualTo(NBD_EINVAL);
                c.request(0, NBD_CMD_READ, 2, -4096, 512, null);
                assertThat(errorOf(c, 2)).isEqualTo(NBD_EINVAL);
                c.request(0, NBD_CMD_WRITE, 3, SIZE, 512, new byte[512]);
                assertThat(errorOf(c, 3)).isEqualTo(NBD_ENOSPC);
                c.request(0, NBD_CMD_TRIM, 4, SIZE - 512, 4096, null);
                assertThat(errorOf(c, 4)).as("TRIM past the end (spec: ENOSPC only for writes)").isEqualTo(NBD_EINVAL);
                c.request(0, NBD_CMD_WRITE_ZEROES, 5, 0, SIZE + 1, null);
                assertThat(errorOf(c, 5)).isEqualTo(NBD_ENOSPC);
                c.request(0, NBD_CMD_READ, 6, 0, 0, null);
                assertThat(errorOf(c, 6)).isEqualTo(NBD_EINVAL);
                // the rejected write's payload was consumed: the connection is still in step
                assertThat(c.write(7, 0, new byte[] {5})).isZero();
                assertThat(c.read(8, 0, 1)).containsExactly(5);
            }
            healthyStillWorks();
        }
        assertThat(server.stats().snapshot().errors("ENOSPC")).isEqualTo(4);
    }

    @Test
    void oversizedRequests() throws Exception {
        try (NbdTestClient c = NbdTestClient.open(socket, true, false)) {
            c.request(0, NBD_CMD_READ, 1, 0, MAX_PAYLOAD_SIZE + 1L, null);
            assertThat(errorOf(c, 1)).isEqualTo(NBD_EINVAL);
            // a too-large write under the discard limit is read, dropped and refused
            int len = MAX_PAYLOAD_SIZE + 4096;
            c.request(0, NBD_CMD_WRITE, 2, 0, len, new byte[len]);
            assertThat(errorOf(c, 2)).isEqualTo(NBD_EINVAL);
            assertThat(c.read(3, 0, 16)).hasSize(16);
        }
        healthyStillWorks();
        try (NbdTestClient c = NbdTestClient.open(socket, false, false)) {
            // a write claiming 4 GiB - 1: refused, then the connection is closed. Header only: the
            // server may close before any payload arrives, and sending it would then fail (EPIPE).
            c.request(0, NBD_CMD_WRITE, 4, 0, 0xffff_ffffL, null);
            assertThat(errorOf(c, 4)).isEqualTo(NBD_EINVAL);
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void unknownCommandsAndFlags() throws Exception {
        try (NbdTestClient c = NbdTestClient.open(socket, false, false)) {
            c.request(0, 42, 1, 0, 512, null);
            assertThat(errorOf(c, 1)).isEqualTo(NBD_EINVAL);
            c.request(1 << 9, NBD_CMD_READ, 2, 0, 512, null);
            assertThat(errorOf(c, 2)).isEqualTo(NBD_EINVAL);
            c.request(NBD_CMD_FLAG_DF, NBD_CMD_READ, 3, 0, 512, null);
            assertThat(errorOf(c, 3)).isEqualTo(NBD_EINVAL);
            c.request(NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE, 4, 0, 512, new byte[512]);
            assertThat(errorOf(c, 4)).isEqualTo(NBD_EINVAL);
            c.request(0, NBD_CMD_FLUSH, 5, 0, 512, null);
            assertThat(errorOf(c, 5)).isEqualTo(NBD_EINVAL);
            c.request(0, NBD_CMD_BLOCK_STATUS, 6, 0, 512, null);
            assertThat(errorOf(c, 6)).isEqualTo(NBD_EINVAL);
            c.request(NBD_CMD_FLAG_FAST_ZERO, NBD_CMD_WRITE_ZEROES, 7, 0, 4096, null);
            assertThat(errorOf(c, 7)).isEqualTo(NBD_ENOTSUP);
            // FUA is accepted on any command
            c.request(NBD_CMD_FLAG_FUA, NBD_CMD_FLUSH, 8, 0, 0, null);
            assertThat(errorOf(c, 8)).isZero();
        }
        NbdStats.Snapshot s = server.stats().snapshot();
        assertThat(s.requests("unknown")).isEqualTo(1);
        assertThat(s.errors("EINVAL")).isEqualTo(6);
        assertThat(s.errors("ENOTSUP")).isEqualTo(1);
    }

    @Test
    void readOnlyExportRefusesWritesWithEperm() throws Exception {
        Path roSocket = dir.resolve("ro.sock");
        try (NbdServer ro = NbdServer.builder().device(device).readOnly(true).build()) {
            ro.listenUnix(roSocket);
            try (NbdTestClient c = NbdTestClient.open(roSocket, true, false)) {
                assertThat(c.transmissionFlags & NBD_FLAG_READ_ONLY).isEqualTo(NBD_FLAG_READ_ONLY);
                // issue 12: nothing that writes is advertised (a client that ignores it still gets EPERM)
                assertThat(c.transmissionFlags & (NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES
                        | NBD_FLAG_SEND_FAST_ZERO)).isZero();
                assertThat(c.transmissionFlags & NBD_FLAG_SEND_FLUSH).isEqualTo(NBD_FLAG_SEND_FLUSH);
                c.request(0, NBD_CMD_WRITE, 1, 0, 512, new byte[512]);
                assertThat(errorOf(c, 1)).isEqualTo(NBD_EPERM);
                c.request(0, NBD_CMD_TRIM, 2, 0, 512, null);
                assertThat(errorOf(c, 2)).isEqualTo(NBD_EPERM);
                c.request(0, NBD_CMD_WRITE_ZEROES, 3, 0, 512, null);
                assertThat(errorOf(c, 3)).isEqualTo(NBD_EPERM);
                assertThat(c.read(4, SIZE - 4096, 4096)).containsOnly(1);
            }
            assertThat(ro.stats().snapshot().errors("EPERM")).isEqualTo(3);
        }
    }

    @Test
    void deviceErrorsBecomeEio() throws Exception {
        device.failAt(4096);
        for (boolean structured : new boolean[] {false, true}) {
            try (NbdTestClient c = NbdTestClient.open(socket, structured, false)) {
                c.request(0, NBD_CMD_READ, 1, 0, 8192, null);
                NbdTestClient.Reply r = c.reply(8192);
                assertThat(r.error()).isEqualTo(NBD_EIO);
                if (structured) {
                    ByteBuffer b = ByteBuffer.wrap(r.payload());
                    b.getInt();
                    byte[] msg = new byte[b.getShort()];
                    b.get(msg);
                    assertThat(new String(msg, StandardCharsets.UTF_8)).contains("injected media error");
                } else {
                    assertThat(r.payload()).isEmpty();
                }
                assertThat(c.write(2, 4096, new byte[10])).isEqualTo(NBD_EIO);
                assertThat(c.read(3, 0, 4096)).hasSize(4096);
            }
        }
        device.failAt(-1);
        assertThat(server.stats().snapshot().errors("EIO")).isEqualTo(4);
    }

    @Test
    void deviceExceptionsMapToEshutdownOrEioOnEveryCommand() throws Exception {
        record Case(String name, java.util.function.Supplier<RuntimeOrIo> thrown, int error) {
        }
        List<Case> cases = List.of(
                new Case("closed", () -> new RuntimeOrIo(new DeviceClosedException("stopping")), NBD_ESHUTDOWN),
                new Case("interrupted", () -> new RuntimeOrIo(new InterruptedIOException("interrupted")), NBD_ESHUTDOWN),
                new Case("interrupt flag with an unchecked exception", () -> {
                    Thread.currentThread().interrupt();
                    return new RuntimeOrIo(new IllegalStateException("interrupted while waiting for space"));
                }, NBD_ESHUTDOWN),
                new Case("failed", () -> new RuntimeOrIo(new DeviceFailedException("failed state", null)), NBD_EIO),
                new Case("io", () -> new RuntimeOrIo(new IOException("media error")), NBD_EIO),
                new Case("timeout", () -> new RuntimeOrIo(new java.net.SocketTimeoutException("backing timed out")), NBD_EIO),
                new Case("bug", () -> new RuntimeOrIo(new IllegalStateException("bug")), NBD_EIO));
        int[] commands = {NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_FLUSH, NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES};
        for (Case k : cases) {
            for (boolean structured : new boolean[] {false, true}) {
                try (NbdTestClient c = NbdTestClient.open(socket, structured, false)) {
                    device.onCall((op, offset) -> {
                        if (offset == 0) {
                            k.thrown().get().raise();
                        }
                    });
                    long handle = 0;
                    for (int cmd : commands) {
                        handle++;
                        boolean flush = cmd == NBD_CMD_FLUSH;
                        byte[] payload = cmd == NBD_CMD_WRITE ? new byte[512] : null;
                        c.request(0, cmd, handle, 0, flush ? 0 : 512, payload);
                        NbdTestClient.Reply r = c.reply(512);
                        assertThat(r.handle()).isEqualTo(handle);
                        assertThat(r.error()).as("%s: %s", k.name(), commandName(cmd)).isEqualTo(k.error());
                    }
                    device.onCall(null);
                    assertThat(c.write(99, 0, new byte[] {1})).as("%s: the connection still works", k.name()).isZero();
                }
            }
        }
        NbdStats.Snapshot s = server.stats().snapshot();
        assertThat(s.errors("ESHUTDOWN")).isEqualTo(3 * 2 * commands.length);
        assertThat(s.errors("EIO")).isEqualTo(4 * 2 * commands.length);
    }

    /** Throws a checked or an unchecked exception from a hook. */
    private record RuntimeOrIo(Exception e) {
        void raise() throws IOException {
            if (e instanceof IOException io) {
                throw io;
            }
            throw (RuntimeException) e;
        }
    }

    @Test
    void structuredRepliesCarryDataAndBlockStatus() throws Exception {
        try (NbdTestClient c = NbdTestClient.open(socket, true, true)) {
            byte[] data = new byte[8192];
            Arrays.fill(data, (byte) 0x5a);
            assertThat(c.write(1, 4096, data)).isZero();
            assertThat(c.read(2, 4096, 8192)).isEqualTo(data);
            c.request(NBD_CMD_FLAG_REQ_ONE, NBD_CMD_BLOCK_STATUS, 3, 1024, 1 << 20, null);
            NbdTestClient.Reply r = c.reply(0);
            assertThat(r.type()).isEqualTo(NBD_REPLY_TYPE_BLOCK_STATUS);
            assertThat(r.flags() & NBD_REPLY_FLAG_DONE).isEqualTo(NBD_REPLY_FLAG_DONE);
            ByteBuffer b = ByteBuffer.wrap(r.payload());
            assertThat(new int[] {b.getInt(), b.getInt(), b.getInt()}).containsExactly(BASE_ALLOCATION_ID, 1 << 20, 0);
            c.request(0, NBD_CMD_BLOCK_STATUS, 4, SIZE - 512, 1024, null);
            assertThat(errorOf(c, 4)).isEqualTo(NBD_EINVAL);
            c.request(0, NBD_CMD_CACHE, 5, 0, 1 << 20, null);
            assertThat(errorOf(c, 5)).isZero();
            c.request(NBD_CMD_FLAG_FUA, NBD_CMD_TRIM, 6, 4096, 4096, null);
            assertThat(errorOf(c, 6)).isZero();
            c.request(NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE_ZEROES, 7, 8192, 4096, null);
            assertThat(errorOf(c, 7)).isZero();
            assertThat(c.read(8, 4096, 8192)).containsOnly(0);
            int before = device.flushes();
            c.request(0, NBD_CMD_FLUSH, 9, 0, 0, null);
            assertThat(errorOf(c, 9)).isZero();
            assertThat(device.flushes()).isGreaterThan(before);
        }
    }

    @Test
    void badMagicClosesOnlyThatConnection() throws Exception {
        try (NbdTestClient c = NbdTestClient.open(socket, false, false)) {
            c.out.write(new byte[28]);
            c.out.flush();
            assertThat(c.closedByServer()).isTrue();
        }
        healthyStillWorks();
        try (NbdTestClient c = NbdTestClient.open(socket, false, false)) {
            byte[] garbage = new byte[4096];
            new java.util.Random(7).nextBytes(garbage);
            c.out.write(garbage);
            c.out.flush();
            assertThat(c.closedByServer()).isTrue();
        }
        assertThat(server.stats().snapshot().protocolViolations()).isEqualTo(2);
    }

    @Test
    void disconnectMidRequestLeavesTheServerHealthy() throws Exception {
        for (int i = 0; i < 20; i++) {
            NbdTestClient c = NbdTestClient.open(socket, i % 2 == 0, false);
            c.request(0, NBD_CMD_WRITE, 1, 0, 1 << 20, new byte[1000]); // payload cut short
            c.close();
            NbdTestClient d = NbdTestClient.open(socket, false, false);
            d.out.write(new byte[] {0x25, 0x60, (byte) 0x95}); // header cut short
            d.close();
        }
        healthyStillWorks();
        NbdStats.Snapshot s = server.stats().snapshot();
        assertThat(s.connectionsAccepted()).isEqualTo(41);
        assertThat(s.bytesWritten()).as("no cut-short write reached the device").isEqualTo(4096L * round);
    }
}
