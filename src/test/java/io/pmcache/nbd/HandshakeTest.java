package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;
import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

@Timeout(60)
class HandshakeTest {
    private static final long SIZE = 1 << 20;

    @TempDir
    Path dir;
    MemoryBlockDevice device;
    NbdServer server;
    Path socket;

    @BeforeEach
    void start() throws Exception {
        device = new MemoryBlockDevice(SIZE);
        server = NbdServer.builder().device(device).exportName("disk").description("test disk").build();
        socket = dir.resolve("nbd.sock");
        server.listenUnix(socket);
    }

    @AfterEach
    void stop() {
        server.close();
    }

    @Test
    void greetingOffersFixedNewstyleAndNoZeroes() throws Exception {
        try (NbdTestClient c = NbdTestClient.connect(socket)) {
            assertThat(c.greet(NBD_FLAG_C_FIXED_NEWSTYLE)).isEqualTo(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
        }
    }

    @Test
    void listNamesTheExport() throws Exception {
        try (NbdTestClient c = NbdTestClient.connect(socket)) {
            c.greet(NBD_FLAG_C_FIXED_NEWSTYLE);
            c.option(NBD_OPT_LIST, new byte[0]);
            NbdTestClient.OptionReply server = c.readOptionReply();
            assertThat(server.type()).isEqualTo(NBD_REP_SERVER);
            ByteBuffer b = ByteBuffer.wrap(server.data());
            byte[] name = new byte[b.getInt()];
            b.get(name);
            assertThat(new String(name, StandardCharsets.UTF_8)).isEqualTo("disk");
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ACK);
            c.option(NBD_OPT_LIST, new byte[] {1});
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ERR_INVALID);
        }
    }

    @Test
    void infoDescribesExportNameDescriptionAndBlockSizes() throws Exception {
        try (NbdTestClient c = NbdTestClient.connect(socket)) {
            c.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
            c.option(NBD_OPT_INFO, NbdTestClient.infoData("disk",
                    new int[] {NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE}));
            List<ByteBuffer> infos = new ArrayList<>();
            NbdTestClient.OptionReply r;
            while ((r = c.readOptionReply()).type() == NBD_REP_INFO) {
                assertThat(r.option()).isEqualTo(NBD_OPT_INFO);
                infos.add(ByteBuffer.wrap(r.data()));
            }
            assertThat(r.type()).isEqualTo(NBD_REP_ACK);
            assertThat(infos).extracting(b -> (int) b.getShort(0))
                    .containsExactly(NBD_INFO_EXPORT, NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE);
            ByteBuffer export = infos.get(0).position(2);
            assertThat(export.getLong()).isEqualTo(SIZE);
            assertThat(export.getShort() & 0xffff).isEqualTo(Export.BASE_FLAGS);
            assertThat(text(infos.get(1))).isEqualTo("disk");
            assertThat(text(infos.get(2))).isEqualTo("test disk");
            ByteBuffer bs = infos.get(3).position(2);
            assertThat(new int[] {bs.getInt(), bs.getInt(), bs.getInt()}).containsExactly(1, 4096, 32 << 20);
            // INFO does not end the handshake: GO still works afterwards
            c.option(NBD_OPT_GO, NbdTestClient.infoData("", new int[0]));
            while ((r = c.readOptionReply()).type() == NBD_REP_INFO) {
                assertThat(r.data().length).isGreaterThanOrEqualTo(2);
            }
            assertThat(r.type()).isEqualTo(NBD_REP_ACK);
            c.size = SIZE;
            byte[] data = c.read(1, 0, 512);
            assertThat(data).hasSize(512);
        }
    }

    @Test
    void unknownExportAndUnknownOptionAreRefusedAndHagglingContinues() throws Exception {
        try (NbdTestClient c = NbdTestClient.connect(socket)) {
            c.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
            c.option(NBD_OPT_GO, NbdTestClient.infoData("other", new int[0]));
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ERR_UNKNOWN);
            c.option(NBD_OPT_STARTTLS, new byte[0]);
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ERR_UNSUP);
            c.option(4242, new byte[] {1, 2, 3});
            NbdTestClient.OptionReply unsup = c.readOptionReply();
            assertThat(unsup.option()).isEqualTo(4242);
            assertThat(unsup.type()).isEqualTo(NBD_REP_ERR_UNSUP);
            c.option(NBD_OPT_GO, new byte[] {0, 0, 0, 9});
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ERR_INVALID);
            c.option(NBD_OPT_GO, NbdTestClient.infoData("disk", new int[0]));
            NbdTestClient.OptionReply r;
            while ((r = c.readOptionReply()).type() == NBD_REP_INFO) {
                assertThat(r.option()).isEqualTo(NBD_OPT_GO);
            }
            assertThat(r.type()).isEqualTo(NBD_REP_ACK);
        }
    }

    @Test
    void exportNameEntersTransmissionWithOrWithoutZeroes() throws Exception {
        try (NbdTestClient c = NbdTestClient.connect(socket)) {
            c.greet(NBD_FLAG_C_FIXED_NEWSTYLE);
            c.option(NBD_OPT_EXPORT_NAME, "disk".getBytes(StandardCharsets.UTF_8));
            assertThat(c.in.readLong()).isEqualTo(SIZE);
            assertThat(c.in.readUnsignedShort()).isEqualTo(Export.BASE_FLAGS);
            byte[] zeroes = new byte[124];
            c.in.readFully(zeroes);
            assertThat(zeroes).containsOnly(0);
            assertThat(c.write(7, 0, new byte[] {9, 9})).isZero();
        }
        try (NbdTestClient c = NbdTestClient.connect(socket)) {
            c.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
            c.option(NBD_OPT_EXPORT_NAME, new byte[0]);
            assertThat(c.in.readLong()).isEqualTo(SIZE);
            assertThat(c.in.readUnsignedShort()).isEqualTo(Export.BASE_FLAGS);
            assertThat(c.read(8, 0, 2)).containsExactly(9, 9);
        }
    }

    @Test
    void exportNameForUnknownExportClosesTheConnection() throws Exception {
        try (NbdTestClient c = NbdTestClient.connect(socket)) {
            c.greet(NBD_FLAG_C_FIXED_NEWSTYLE);
            c.option(NBD_OPT_EXPORT_NAME, "nope".getBytes(StandardCharsets.UTF_8));
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void abortIsAcknowledgedThenClosed() throws Exception {
        try (NbdTestClient c = NbdTestClient.connect(socket)) {
            c.greet(NBD_FLAG_C_FIXED_NEWSTYLE);
            c.option(NBD_OPT_ABORT, new byte[0]);
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ACK);
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void unknownClientFlagsCloseTheConnection() throws Exception {
        try (NbdTestClient c = NbdTestClient.connect(socket)) {
            c.greet(0x80);
            assertThat(c.closedByServer()).isTrue();
        }
        assertThat(server.stats().snapshot().protocolViolations()).isEqualTo(1);
    }

    @Test
    void failedSetMetaContextClearsThePreviousSelection() throws Exception {
        // spec: SET_META_CONTEXT "replaces all previously-set metadata contexts (including when this
        // command fails)"; a BLOCK_STATUS after a failed SET has no context and gets EINVAL
        byte[][] failing = {
            NbdTestClient.metaContextData("missing", BASE_ALLOCATION), // unknown export
            new byte[] {0, 0, 0, 0, 0, 0, 0, 1},                       // truncated query list
        };
        for (byte[] bad : failing) {
            try (NbdTestClient c = NbdTestClient.connect(socket)) {
                c.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
                c.option(NBD_OPT_STRUCTURED_REPLY, new byte[0]);
                assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ACK);
                c.option(NBD_OPT_SET_META_CONTEXT, NbdTestClient.metaContextData("", BASE_ALLOCATION));
                assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_META_CONTEXT);
                assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ACK);
                c.option(NBD_OPT_SET_META_CONTEXT, bad);
                assertThat(c.readOptionReply().type() & NBD_REP_FLAG_ERROR).isEqualTo(NBD_REP_FLAG_ERROR);
                c.option(NBD_OPT_GO, NbdTestClient.infoData("", new int[0]));
                NbdTestClient.OptionReply r;
                while ((r = c.readOptionReply()).type() == NBD_REP_INFO) {
                    assertThat(r.option()).isEqualTo(NBD_OPT_GO);
                }
                assertThat(r.type()).isEqualTo(NBD_REP_ACK);
                c.structured = true;
                c.request(0, NBD_CMD_BLOCK_STATUS, 1, 0, 4096, null);
                NbdTestClient.Reply reply = c.reply(0);
                assertThat(reply.handle()).isEqualTo(1);
                assertThat(reply.error()).as("no metadata context is selected any more").isEqualTo(NBD_EINVAL);
            }
        }
    }

    @Test
    void unknownOptionsUpTo32MiBAreReadAndRefusedAndHagglingContinues() throws Exception {
        try (NbdTestClient c = NbdTestClient.connect(socket)) {
            c.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
            byte[] big = new byte[(1 << 20) + 3];
            java.util.Arrays.fill(big, (byte) 0x49); // 'I': no option magic hidden in it either way
            c.option(4242, big);
            NbdTestClient.OptionReply unsup = c.readOptionReply();
            assertThat(unsup.option()).isEqualTo(4242);
            assertThat(unsup.type()).isEqualTo(NBD_REP_ERR_UNSUP);
            // a known option too long to be legitimate: refused as invalid, payload dropped
            c.option(NBD_OPT_LIST, new byte[(64 << 10) + 1]);
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ERR_INVALID);
            c.option(NBD_OPT_GO, NbdTestClient.infoData("disk", new int[0]));
            NbdTestClient.OptionReply r;
            while ((r = c.readOptionReply()).type() == NBD_REP_INFO) {
                assertThat(r.option()).isEqualTo(NBD_OPT_GO);
            }
            assertThat(r.type()).isEqualTo(NBD_REP_ACK);
            c.size = SIZE;
            assertThat(c.read(1, 0, 512)).hasSize(512);
        }
        assertThat(server.stats().snapshot().protocolViolations()).isZero();
    }

    @Test
    void whatClientsSendIsLoggedEscaped() throws Exception {
        ch.qos.logback.classic.Logger nbdLog = (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger("io.pmcache.nbd");
        ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> events =
                new ch.qos.logback.core.read.ListAppender<>();
        events.start();
        ch.qos.logback.classic.Level level = nbdLog.getLevel();
        nbdLog.setLevel(ch.qos.logback.classic.Level.DEBUG);
        nbdLog.addAppender(events);
        String forged = "x\n2026-01-01T00:00:00.000Z ERROR Cache - FAKE\r\u2028\u001b[31m";
        try {
            try (NbdTestClient c = NbdTestClient.connect(socket)) {
                c.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
                c.option(NBD_OPT_INFO, NbdTestClient.infoData(forged, new int[0]));
                assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ERR_UNKNOWN);
                c.option(NBD_OPT_EXPORT_NAME, forged.getBytes(StandardCharsets.UTF_8));
                assertThat(c.closedByServer()).isTrue();
            }
            server.close(); // the connection's last log lines are written by now
        } finally {
            nbdLog.detachAppender(events);
            nbdLog.setLevel(level);
        }
        List<String> lines = events.list.stream().map(e -> e.getFormattedMessage()).toList();
        assertThat(lines).as("the name was logged").anyMatch(l -> l.contains("FAKE"));
        assertThat(lines).allSatisfy(l -> assertThat(l).doesNotContain("\n", "\r", "\u2028", "\u001b"));
        assertThat(lines).anyMatch(l -> l.contains("x\\n2026"));
    }

    @Test
    void badOptionMagicAndHugeOptionCloseTheConnection() throws Exception {
        try (NbdTestClient c = NbdTestClient.connect(socket)) {
            c.greet(NBD_FLAG_C_FIXED_NEWSTYLE);
            c.out.writeLong(0x1234);
            c.out.writeInt(NBD_OPT_LIST);
            c.out.writeInt(0);
            c.out.flush();
            assertThat(c.closedByServer()).isTrue();
        }
        try (NbdTestClient c = NbdTestClient.connect(socket)) {
            c.greet(NBD_FLAG_C_FIXED_NEWSTYLE);
            c.out.writeLong(IHAVEOPT);
            c.out.writeInt(NBD_OPT_GO);
            c.out.writeInt(Integer.MAX_VALUE);
            c.out.flush();
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void metaContextNeedsStructuredRepliesAndOffersBaseAllocation() throws Exception {
        try (NbdTestClient c = NbdTestClient.connect(socket)) {
            c.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
            c.option(NBD_OPT_SET_META_CONTEXT, NbdTestClient.metaContextData("", BASE_ALLOCATION));
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ERR_INVALID);
            c.option(NBD_OPT_STRUCTURED_REPLY, new byte[0]);
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ACK);

            c.option(NBD_OPT_LIST_META_CONTEXT, NbdTestClient.metaContextData("disk"));
            NbdTestClient.OptionReply listed = c.readOptionReply();
            assertThat(listed.type()).isEqualTo(NBD_REP_META_CONTEXT);
            assertThat(new String(listed.data(), 4, listed.data().length - 4, StandardCharsets.UTF_8))
                    .isEqualTo(BASE_ALLOCATION);
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ACK);

            c.option(NBD_OPT_LIST_META_CONTEXT, NbdTestClient.metaContextData("", "x-other:thing"));
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ACK);

            c.option(NBD_OPT_SET_META_CONTEXT, NbdTestClient.metaContextData("missing", BASE_ALLOCATION));
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ERR_UNKNOWN);

            c.option(NBD_OPT_SET_META_CONTEXT, new byte[] {0, 0, 0, 0, 0, 0, 0, 1});
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ERR_INVALID);

            c.option(NBD_OPT_SET_META_CONTEXT, NbdTestClient.metaContextData("", BASE_ALLOCATION));
            NbdTestClient.OptionReply set = c.readOptionReply();
            assertThat(set.type()).isEqualTo(NBD_REP_META_CONTEXT);
            assertThat(ByteBuffer.wrap(set.data()).getInt()).isEqualTo(BASE_ALLOCATION_ID);
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ACK);
        }
    }

    private static String text(ByteBuffer info) {
        byte[] b = new byte[info.remaining() - 2];
        info.position(2).get(b);
        return new String(b, StandardCharsets.UTF_8);
    }
}
