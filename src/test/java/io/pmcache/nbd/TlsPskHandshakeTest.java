package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link PskTransport} with Bouncy Castle's own TLS client on the test client's socket: the paths
 * the real clients ({@code TlsPskClientsTest}) do not steer, namely TLS 1.2 and 1.3 chosen at will,
 * pipelined requests larger than a record in both directions at once, and a client that goes
 * silent after STARTTLS.
 */
@Timeout(120)
class TlsPskHandshakeTest {
    private static final byte[] KEY = HexFormat.of().parseHex(TlsPskClientsTest.key(1));

    @TempDir
    Path dir;
    MemoryBlockDevice device = new MemoryBlockDevice(32 << 20);
    NbdServer server;
    InetSocketAddress address;

    private void start(java.time.Duration handshakeTimeout) throws IOException {
        Path keys = Files.writeString(dir.resolve("keys.psk"), "alice:" + HexFormat.of().formatHex(KEY) + "\n");
        server = NbdServer.builder().device(device).exportName("disk").handshakeTimeout(handshakeTimeout)
                .tls(TlsConfig.psk(TlsMode.REQUIRE, keys)).build();
        address = server.listenTcp("127.0.0.1", 0);
    }

    @AfterEach
    void stop() {
        if (server != null) {
            server.close();
        }
    }

    private NbdTestClient afterStartTls() throws IOException {
        NbdTestClient c = NbdTestClient.connect(address);
        c.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
        c.option(NBD_OPT_STARTTLS, new byte[0]);
        assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ACK);
        return c;
    }

    @Test
    void pipelinedReadsAndWritesOverTls13() throws Exception {
        pipelined(false);
    }

    @Test
    void pipelinedReadsAndWritesOverTls12() throws Exception {
        pipelined(true);
    }

    private void pipelined(boolean tls12) throws Exception {
        start(java.time.Duration.ofSeconds(30));
        long seed = new Random().nextLong();
        Random random = new Random(seed);
        try (NbdTestClient c = afterStartTls()) {
            c.startTlsPsk("alice", KEY, tls12);
            c.handshakeAfterGreeting(true, false);
            byte[][] blocks = new byte[16][];
            for (int i = 0; i < blocks.length; i++) { // 512 B .. 1 MiB: one record to many
                blocks[i] = new byte[512 << random.nextInt(12)];
                random.nextBytes(blocks[i]);
                c.request(0, NBD_CMD_WRITE, i, (long) i << 20, blocks[i].length, blocks[i]);
            }
            for (int i = 0; i < blocks.length; i++) {
                assertThat(c.reply(0).error()).as("seed %d", seed).isZero();
            }
            // Both directions at once: reads of what was written, interleaved with writes elsewhere.
            byte[][] more = new byte[16][];
            for (int i = 0; i < blocks.length; i++) {
                c.request(0, NBD_CMD_READ, 100 + i, (long) i << 20, blocks[i].length, null);
                more[i] = new byte[512 << random.nextInt(12)];
                random.nextBytes(more[i]);
                c.request(0, NBD_CMD_WRITE, 200 + i, (16L + i) << 20, more[i].length, more[i]);
            }
            byte[][] got = new byte[16][];
            int done = 0;
            while (done < 2 * blocks.length) {
                NbdTestClient.Reply r = c.reply(0); // structured: chunks, the last one flagged DONE
                assertThat(r.error()).as("seed %d handle %d", seed, r.handle()).isZero();
                if (r.type() == NBD_REPLY_TYPE_OFFSET_DATA) {
                    int i = (int) r.handle() - 100;
                    got[i] = got[i] != null ? got[i] : new byte[blocks[i].length];
                    long at = java.nio.ByteBuffer.wrap(r.payload()).getLong() - ((long) i << 20);
                    System.arraycopy(r.payload(), 8, got[i], (int) at, r.payload().length - 8);
                }
                if (!r.structured() || (r.flags() & NBD_REPLY_FLAG_DONE) != 0) {
                    done++;
                }
            }
            for (int i = 0; i < blocks.length; i++) {
                assertThat(got[i]).as("seed %d block %d", seed, i).isEqualTo(blocks[i]);
                byte[] stored = new byte[more[i].length];
                device.read((16L + i) << 20, java.lang.foreign.MemorySegment.ofArray(stored));
                assertThat(stored).as("seed %d block %d", seed, i).isEqualTo(more[i]);
            }
            c.request(0, NBD_CMD_DISC, 0, 0, 0, null);
            assertThat(c.closedByServer()).isTrue();
        }
    }

    @Test
    void aWrongKeyFailsTheHandshakeAndTheServerGoesOn() throws Exception {
        start(java.time.Duration.ofSeconds(30));
        for (boolean tls12 : new boolean[] {false, true}) {
            try (NbdTestClient c = afterStartTls()) {
                byte[] wrong = KEY.clone();
                wrong[0] ^= 1;
                assertThatThrownBy(() -> c.startTlsPsk("alice", wrong, tls12)).isInstanceOf(IOException.class);
            }
            try (NbdTestClient c = afterStartTls()) {
                assertThatThrownBy(() -> c.startTlsPsk("mallory", KEY, tls12)).isInstanceOf(IOException.class);
            }
        }
        try (NbdTestClient c = afterStartTls()) {
            c.startTlsPsk("alice", KEY, false);
            c.handshakeAfterGreeting(true, false);
            assertThat(c.write(1, 0, new byte[4096])).isZero();
        }
    }

    @Test
    void aClientSilentAfterStartTlsIsClosedAtTheHandshakeDeadline() throws Exception {
        start(java.time.Duration.ofMillis(300));
        try (NbdTestClient c = afterStartTls()) {
            assertThat(c.closedByServer()).isTrue(); // no ClientHello: the deadline closes it
        }
    }

    @Test
    void plaintextWhereTheClientHelloBelongsClosesTheConnection() throws Exception {
        start(java.time.Duration.ofSeconds(30));
        try (NbdTestClient c = afterStartTls()) {
            try {
                c.option(NBD_OPT_GO, new byte[6]); // an NBD option, not a TLS record
            } catch (IOException e) {
                // The option goes out in several writes: the server may have read the first bytes,
                // seen no TLS record and closed the socket before the last one (EPIPE or reset).
                assertThat(e.getMessage()).as("sending after the server closed").containsAnyOf("Broken pipe", "reset");
                return;
            }
            assertThat(c.closedByServer()).isTrue();
        }
    }
}
