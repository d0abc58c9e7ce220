package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Random;
import javax.net.ssl.SSLContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * NBD_OPT_STARTTLS negotiation (the spec's TLS section) and transmission over TLS, with the JDK's
 * TLS client on the test client's socket: FORCEDTLS refuses options before STARTTLS, a second
 * STARTTLS is refused, state from before TLS is forgotten, peer verification refuses strangers,
 * and pipelined reads and writes larger than a TLS record come back intact.
 */
@Timeout(60)
class TlsHandshakeTest extends X509ServerTest {
    private NbdTestClient greeted() throws IOException {
        NbdTestClient c = NbdTestClient.connect(address);
        c.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
        return c;
    }

    private static int answer(NbdTestClient c, int option, byte[] data) throws IOException {
        c.option(option, data);
        NbdTestClient.OptionReply r = c.readOptionReply();
        assertThat(r.option()).isEqualTo(option);
        return r.type();
    }

    private SSLContext client() throws Exception {
        return certs.javaClient(certs.client());
    }

    @Test
    void requireRefusesEveryOptionButStartTlsAndAbortUntilTlsIsUp() throws Exception {
        start(TlsMode.REQUIRE, false);
        assertThat(server.uri()).startsWith("nbds://127.0.0.1:");
        try (NbdTestClient c = greeted()) {
            assertThat(answer(c, NBD_OPT_LIST, new byte[0])).isEqualTo(NBD_REP_ERR_TLS_REQD);
            assertThat(answer(c, NBD_OPT_INFO, NbdTestClient.infoData("disk", new int[0])))
                    .isEqualTo(NBD_REP_ERR_TLS_REQD);
            assertThat(answer(c, NBD_OPT_GO, NbdTestClient.infoData("", new int[0]))).isEqualTo(NBD_REP_ERR_TLS_REQD);
            assertThat(answer(c, NBD_OPT_STRUCTURED_REPLY, new byte[0])).isEqualTo(NBD_REP_ERR_TLS_REQD);
            assertThat(answer(c, 4242, new byte[0])).isEqualTo(NBD_REP_ERR_TLS_REQD);
            assertThat(answer(c, NBD_OPT_STARTTLS, new byte[] {1})).isEqualTo(NBD_REP_ERR_INVALID);
            assertThat(answer(c, NBD_OPT_STARTTLS, new byte[0])).isEqualTo(NBD_REP_ACK);
            c.startTls(client());
            assertThat(answer(c, NBD_OPT_STARTTLS, new byte[0])).as("a second STARTTLS").isEqualTo(NBD_REP_ERR_INVALID);
            c.option(NBD_OPT_LIST, new byte[0]);
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_SERVER);
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ACK);
            assertThat(answer(c, NBD_OPT_ABORT, new byte[0])).isEqualTo(NBD_REP_ACK);
        }
    }

    @Test
    void requireAnswersAbortWithoutTls() throws Exception {
        start(TlsMode.REQUIRE, false);
        try (NbdTestClient c = greeted()) {
            assertThat(answer(c, NBD_OPT_ABORT, new byte[0])).isEqualTo(NBD_REP_ACK);
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void requireEndsAPlainExportNameWhichHasNoErrorReply() throws Exception {
        start(TlsMode.REQUIRE, false);
        try (NbdTestClient c = greeted()) {
            c.option(NBD_OPT_EXPORT_NAME, "disk".getBytes());
            assertThat(c.closedByServer()).isTrue();
        }
        assertThat(server.stats().snapshot().protocolViolations()).isEqualTo(1);
    }

    @Test
    void offAnswersStartTlsUnsupported() throws Exception {
        start(TlsMode.OFF, false);
        try (NbdTestClient c = greeted()) {
            assertThat(answer(c, NBD_OPT_STARTTLS, new byte[0])).isEqualTo(NBD_REP_ERR_UNSUP);
            assertThat(answer(c, NBD_OPT_STRUCTURED_REPLY, new byte[0])).isEqualTo(NBD_REP_ACK);
        }
    }

    @Test
    void onServesPlainClientsAndForgetsPreTlsStateOnUpgrade() throws Exception {
        start(TlsMode.ON, false);
        try (NbdTestClient plain = NbdTestClient.connect(address)) {
            plain.handshake(true, false);
            assertThat(plain.read(1, 0, 4096)).containsOnly(0);
        }
        try (NbdTestClient c = greeted()) {
            assertThat(answer(c, NBD_OPT_STRUCTURED_REPLY, new byte[0])).isEqualTo(NBD_REP_ACK);
            assertThat(answer(c, NBD_OPT_STARTTLS, new byte[0])).isEqualTo(NBD_REP_ACK);
            c.startTls(client());
            // structured replies were negotiated in plain text: forgotten, so meta contexts need them again
            assertThat(answer(c, NBD_OPT_SET_META_CONTEXT, NbdTestClient.metaContextData("", BASE_ALLOCATION)))
                    .isEqualTo(NBD_REP_ERR_INVALID);
        }
    }

    @Test
    void pipelinedReadsAndWritesLargerThanARecordRoundTripOverTls() throws Exception {
        start(TlsMode.REQUIRE, false);
        long seed = new Random().nextLong();
        Random random = new Random(seed);
        try (NbdTestClient c = greeted()) {
            assertThat(answer(c, NBD_OPT_STARTTLS, new byte[0])).isEqualTo(NBD_REP_ACK);
            c.startTls(client());
            c.handshakeAfterGreeting(true, false);
            byte[][] blocks = new byte[16][];
            for (int i = 0; i < blocks.length; i++) { // 512 B .. 1 MiB: one record to many
                blocks[i] = new byte[512 << random.nextInt(12)];
                random.nextBytes(blocks[i]);
                c.request(0, NBD_CMD_WRITE, i, (long) i << 20, blocks[i].length, blocks[i]);
            }
            for (int i = 0; i < blocks.length; i++) {
                NbdTestClient.Reply r = c.reply(0);
                assertThat(r.error()).as("seed %d", seed).isZero();
            }
            for (int i = 0; i < blocks.length; i++) {
                assertThat(c.read(100 + i, (long) i << 20, blocks[i].length)).as("seed %d block %d", seed, i)
                        .isEqualTo(blocks[i]);
            }
            byte[] stored = new byte[blocks[3].length];
            device.read(3L << 20, java.lang.foreign.MemorySegment.ofArray(stored));
            assertThat(stored).isEqualTo(blocks[3]);
            c.request(0, NBD_CMD_DISC, 0, 0, 0, null);
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void aKeyUpdateInTheMiddleOfTransmissionIsAnswered() throws Exception {
        start(TlsMode.REQUIRE, false);
        try (NbdTestClient c = greeted()) {
            assertThat(answer(c, NBD_OPT_STARTTLS, new byte[0])).isEqualTo(NBD_REP_ACK);
            c.startTls(client());
            c.handshakeAfterGreeting(true, false);
            byte[] data = new byte[65536];
            java.util.Arrays.fill(data, (byte) 7);
            assertThat(c.write(1, 0, data)).isZero();
            for (int i = 0; i < 3; i++) {
                c.keyUpdate(); // the server must answer with its own KeyUpdate, then go on
                assertThat(c.read(10 + i, 0, data.length)).isEqualTo(data);
                assertThat(c.write(20 + i, 65536L * (i + 1), data)).isZero();
            }
            assertThat(c.read(30, 65536L * 3, data.length)).isEqualTo(data);
        }
    }

    @Test
    void aClientSilentAfterStartTlsIsClosedAtTheHandshakeDeadline() throws Exception {
        server = NbdServer.builder().device(device).exportName("disk").handshakeTimeout(java.time.Duration.ofMillis(300))
                .tls(TlsConfig.x509(TlsMode.REQUIRE, certs.server(), false)).build();
        address = server.listenTcp("127.0.0.1", 0);
        try (NbdTestClient c = greeted()) {
            assertThat(answer(c, NBD_OPT_STARTTLS, new byte[0])).isEqualTo(NBD_REP_ACK);
            assertThat(c.closedByServer()).isTrue(); // no ClientHello: the deadline closes it
        }
    }

    @Test
    void verifyPeerAcceptsTheCasClientsAndRefusesOthers() throws Exception {
        start(TlsMode.REQUIRE, true);
        try (NbdTestClient c = greeted()) {
            assertThat(answer(c, NBD_OPT_STARTTLS, new byte[0])).isEqualTo(NBD_REP_ACK);
            c.startTls(client());
            c.handshakeAfterGreeting(false, false);
            assertThat(c.read(1, 0, 512)).containsOnly(0);
        }
        for (Path who : new Path[] {certs.anonymous(), certs.stranger()}) {
            try (NbdTestClient c = greeted()) {
                assertThat(answer(c, NBD_OPT_STARTTLS, new byte[0])).isEqualTo(NBD_REP_ACK);
                assertThatThrownBy(() -> {
                    c.startTls(certs.javaClient(who));
                    // TLS 1.3: the client may finish its side before the server refuses its certificate
                    c.option(NBD_OPT_LIST, new byte[0]);
                    c.readOptionReply();
                }).as("client %s", who.getFileName()).isInstanceOf(IOException.class);
            }
        }
    }

    @Test
    void aClientThatIsNotTlsAfterStartTlsIsDisconnected() throws Exception {
        start(TlsMode.REQUIRE, false);
        try (NbdTestClient c = greeted()) {
            assertThat(answer(c, NBD_OPT_STARTTLS, new byte[0])).isEqualTo(NBD_REP_ACK);
            // plain text where a ClientHello belongs, in one write: the server may close as soon
            // as it has seen the first bytes, and a second write would then fail (EPIPE)
            c.out.write(java.nio.ByteBuffer.allocate(16).putLong(IHAVEOPT).putInt(NBD_OPT_LIST).putInt(0).array());
            c.out.flush();
            assertThat(c.closedByServer()).isTrue();
        }
        assertThat(server.stats().snapshot().protocolViolations()).isEqualTo(1);
    }
}
