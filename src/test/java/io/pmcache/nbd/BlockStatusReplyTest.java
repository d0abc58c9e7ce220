package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;
import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.device.BlockDevice;
import io.pmcache.device.BlockStatus;
import io.pmcache.device.BlockStatus.Kind;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * BLOCK_STATUS on the wire: the device's extents become descriptors with the {@code base:allocation}
 * flags, REQ_ONE asks the device for one extent and a plain request for at most
 * {@link NbdConstants#MAX_BLOCK_STATUS_EXTENTS}; device errors become error chunks. Also
 * SEND_DF and reads with DF.
 */
@Timeout(60)
class BlockStatusReplyTest {
    private static final long SIZE = 1 << 20;

    @TempDir
    Path dir;
    /** A device whose status is a repeating pattern DATA, ZERO, HOLE of 512 bytes each. */
    PatternDevice device;
    NbdServer server;
    Path socket;

    @BeforeEach
    void start() throws IOException {
        device = new PatternDevice(new MemoryBlockDevice(SIZE));
        server = NbdServer.builder().device(device).build();
        socket = dir.resolve("nbd.sock");
        server.listenUnix(socket);
    }

    @AfterEach
    void stop() {
        server.close();
    }

    @Test
    void severalDescriptorsWithTheirFlags() throws Exception {
        try (NbdTestClient c = NbdTestClient.open(socket, true, true)) {
            c.request(0, NBD_CMD_BLOCK_STATUS, 1, 256, 2048, null);
            List<int[]> d = descriptors(c.reply(0), 1);
            assertThat(device.lastMax).isEqualTo(MAX_BLOCK_STATUS_EXTENTS);
            assertThat(d).extracting(x -> x[0]).containsExactly(256, 512, 512, 512, 256);
            assertThat(d).extracting(x -> x[1]).containsExactly(0, NBD_STATE_ZERO, NBD_STATE_HOLE | NBD_STATE_ZERO,
                    0, NBD_STATE_ZERO);
        }
    }

    @Test
    void reqOneAsksForOneExtent() throws Exception {
        try (NbdTestClient c = NbdTestClient.open(socket, true, true)) {
            c.request(NBD_CMD_FLAG_REQ_ONE, NBD_CMD_BLOCK_STATUS, 2, 512, 4096, null);
            List<int[]> d = descriptors(c.reply(0), 2);
            assertThat(device.lastMax).isEqualTo(1);
            assertThat(d).hasSize(1);
            assertThat(d.get(0)).containsExactly(512, NBD_STATE_ZERO);
        }
    }

    @Test
    void manyExtentsAreCappedAndStayWithinTheRequest() throws Exception {
        try (NbdTestClient c = NbdTestClient.open(socket, true, true)) {
            c.request(0, NBD_CMD_BLOCK_STATUS, 3, 0, SIZE, null);
            List<int[]> d = descriptors(c.reply(0), 3);
            assertThat(d).hasSize(MAX_BLOCK_STATUS_EXTENTS);
            assertThat(d.stream().mapToLong(x -> x[0]).sum()).isEqualTo(512L * MAX_BLOCK_STATUS_EXTENTS);
        }
    }

    @Test
    void aDeviceErrorIsAnErrorChunkAndTheConnectionGoesOn() throws Exception {
        try (NbdTestClient c = NbdTestClient.open(socket, true, true)) {
            device.fail = true;
            c.request(0, NBD_CMD_BLOCK_STATUS, 4, 0, 4096, null);
            NbdTestClient.Reply r = c.reply(0);
            assertThat(r.handle()).isEqualTo(4);
            assertThat(r.error()).isEqualTo(NBD_EIO);
            device.fail = false;
            c.request(0, NBD_CMD_BLOCK_STATUS, 5, 0, 512, null);
            assertThat(descriptors(c.reply(0), 5)).hasSize(1);
        }
    }

    @Test
    void dfIsAdvertisedWithStructuredRepliesAndAReadWithDfIsOneChunk() throws Exception {
        try (NbdTestClient c = NbdTestClient.open(socket, true, false)) {
            assertThat(c.transmissionFlags & NBD_FLAG_SEND_DF).isEqualTo(NBD_FLAG_SEND_DF);
            byte[] data = new byte[3];
            data[0] = 7;
            data[2] = 9;
            assertThat(c.write(1, 5, data)).isZero();
            c.request(NBD_CMD_FLAG_DF, NBD_CMD_READ, 2, 4, 5, null);
            NbdTestClient.Reply r = c.reply(0);
            assertThat(r.type()).isEqualTo(NBD_REPLY_TYPE_OFFSET_DATA);
            assertThat(r.flags() & NBD_REPLY_FLAG_DONE).isEqualTo(NBD_REPLY_FLAG_DONE);
            ByteBuffer b = ByteBuffer.wrap(r.payload());
            assertThat(b.getLong()).isEqualTo(4);
            byte[] got = new byte[b.remaining()];
            b.get(got);
            assertThat(got).containsExactly(0, 7, 0, 9, 0);
        }
        try (NbdTestClient c = NbdTestClient.open(socket, false, false)) {
            assertThat(c.transmissionFlags & NBD_FLAG_SEND_DF).isZero();
        }
    }

    /** The descriptors of a successful BLOCK_STATUS reply: {length, flags} each. */
    private static List<int[]> descriptors(NbdTestClient.Reply r, long handle) {
        assertThat(r.handle()).isEqualTo(handle);
        assertThat(r.error()).isZero();
        assertThat(r.type()).isEqualTo(NBD_REPLY_TYPE_BLOCK_STATUS);
        assertThat(r.flags() & NBD_REPLY_FLAG_DONE).isEqualTo(NBD_REPLY_FLAG_DONE);
        ByteBuffer b = ByteBuffer.wrap(r.payload());
        assertThat(b.getInt()).isEqualTo(BASE_ALLOCATION_ID);
        assertThat(b.remaining() % 8).isZero();
        List<int[]> out = new ArrayList<>();
        while (b.hasRemaining()) {
            out.add(new int[] {b.getInt(), b.getInt()});
        }
        return out;
    }

    /** Delegates I/O; block status is DATA, ZERO, HOLE repeating every 512 bytes (not what the data is). */
    static final class PatternDevice implements BlockDevice {
        private static final Kind[] PATTERN = {Kind.DATA, Kind.ZERO, Kind.HOLE};
        private final BlockDevice d;
        volatile int lastMax;
        volatile boolean fail;

        PatternDevice(BlockDevice d) {
            this.d = d;
        }

        @Override
        public List<BlockStatus> blockStatus(long offset, long length, int maxExtents) throws IOException {
            lastMax = maxExtents;
            if (fail) {
                throw new IOException("injected");
            }
            var out = new BlockStatus.Builder(offset, length, maxExtents);
            while (!out.full()) {
                long pos = out.cursor();
                out.add(512 - pos % 512, PATTERN[(int) (pos / 512 % 3)]);
            }
            return out.build();
        }

        @Override
        public long size() {
            return d.size();
        }

        @Override
        public void read(long offset, MemorySegment dst) throws IOException {
            d.read(offset, dst);
        }

        @Override
        public void write(long offset, MemorySegment src, boolean fua) throws IOException {
            d.write(offset, src, fua);
        }

        @Override
        public void flush() throws IOException {
            d.flush();
        }

        @Override
        public void trim(long offset, long length) throws IOException {
            d.trim(offset, length);
        }

        @Override
        public void close() throws IOException {
            d.close();
        }
    }
}
