package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** One server, many exports: LIST, INFO by name, the empty name, and exports added and removed live. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class MultiExportTest {
    private static final long SIZE = 1 << 20;

    @TempDir
    Path dir;

    private final MemoryBlockDevice a = new MemoryBlockDevice(SIZE);
    private final MemoryBlockDevice b = new MemoryBlockDevice(2 * SIZE);

    private NbdServer twoExports(Path socket) throws IOException {
        NbdServer s = NbdServer.builder().export("vol-a", "volume a", a, false).export("vol-b", "volume b", b, false)
                .build();
        s.listenUnix(socket);
        return s;
    }

    /** Connects and GOes to export {@code name}; returns the client ready for requests. */
    private static NbdTestClient go(Path socket, String name) throws IOException {
        NbdTestClient c = NbdTestClient.connect(socket);
        c.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
        c.option(NBD_OPT_GO, NbdTestClient.infoData(name, new int[0]));
        while (true) {
            NbdTestClient.OptionReply r = c.readOptionReply();
            if (r.type() == NBD_REP_ACK) {
                return c;
            }
            assertThat(r.type()).as("GO %s: %s", name, r.text()).isEqualTo(NBD_REP_INFO);
            ByteBuffer buf = ByteBuffer.wrap(r.data());
            if (buf.getShort() == NBD_INFO_EXPORT) {
                c.size = buf.getLong();
            }
        }
    }

    @Test
    void listShowsEveryExportAndInfoAnswersByName() throws IOException {
        Path sock = dir.resolve("s");
        try (NbdServer s = twoExports(sock); NbdTestClient c = NbdTestClient.connect(sock)) {
            c.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
            c.option(NBD_OPT_LIST, new byte[0]);
            List<String> names = new ArrayList<>();
            for (NbdTestClient.OptionReply r = c.readOptionReply(); r.type() != NBD_REP_ACK; r = c.readOptionReply()) {
                assertThat(r.type()).isEqualTo(NBD_REP_SERVER);
                ByteBuffer buf = ByteBuffer.wrap(r.data());
                byte[] n = new byte[buf.getInt()];
                buf.get(n);
                names.add(new String(n, StandardCharsets.UTF_8));
            }
            assertThat(names).containsExactly("vol-a", "vol-b");
            c.option(NBD_OPT_INFO, NbdTestClient.infoData("vol-b", new int[] {NBD_INFO_NAME, NBD_INFO_DESCRIPTION}));
            List<String> infos = new ArrayList<>();
            long size = -1;
            for (NbdTestClient.OptionReply r = c.readOptionReply(); r.type() != NBD_REP_ACK; r = c.readOptionReply()) {
                ByteBuffer buf = ByteBuffer.wrap(r.data());
                int type = buf.getShort();
                if (type == NBD_INFO_EXPORT) {
                    size = buf.getLong();
                } else if (type == NBD_INFO_NAME || type == NBD_INFO_DESCRIPTION) {
                    byte[] t = new byte[buf.remaining()];
                    buf.get(t);
                    infos.add(new String(t, StandardCharsets.UTF_8));
                }
            }
            assertThat(size).isEqualTo(2 * SIZE);
            assertThat(infos).containsExactly("vol-b", "volume b");
            // two exports: the empty name is none of them
            c.option(NBD_OPT_INFO, NbdTestClient.infoData("", new int[0]));
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ERR_UNKNOWN);
            c.option(NBD_OPT_INFO, NbdTestClient.infoData("vol-c", new int[0]));
            assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ERR_UNKNOWN);
        }
    }

    @Test
    void eachExportServesItsOwnDevice() throws IOException {
        Path sock = dir.resolve("s");
        try (NbdServer s = twoExports(sock); NbdTestClient ca = go(sock, "vol-a"); NbdTestClient cb = go(sock, "vol-b")) {
            assertThat(ca.size).isEqualTo(SIZE);
            assertThat(cb.size).isEqualTo(2 * SIZE);
            assertThat(ca.write(1, 0, new byte[] {1, 2, 3, 4})).isZero();
            assertThat(cb.write(2, 0, new byte[] {9, 9, 9, 9})).isZero();
            assertThat(ca.read(3, 0, 4)).containsExactly(1, 2, 3, 4);
            assertThat(cb.read(4, 0, 4)).containsExactly(9, 9, 9, 9);
        }
    }

    @Test
    void addingAnExportDoesNotDisturbAConnectedClient() throws IOException {
        Path sock = dir.resolve("s");
        try (NbdServer s = NbdServer.builder().export("vol-a", "", a, false).build()) {
            s.listenUnix(sock);
            try (NbdTestClient ca = go(sock, "")) { // the only export answers to the empty name
                assertThat(ca.write(1, 0, new byte[] {5})).isZero();
                s.addExport("vol-b", "", b, false);
                assertThat(ca.write(2, 1, new byte[] {6})).isZero();
                assertThat(ca.read(3, 0, 2)).containsExactly(5, 6);
                try (NbdTestClient cb = go(sock, "vol-b")) {
                    assertThat(cb.size).isEqualTo(2 * SIZE);
                }
                assertThat(s.exportNames()).containsExactly("vol-a", "vol-b");
            }
        }
    }

    @Test
    void removingAnExportClosesOnlyItsConnections() throws IOException {
        Path sock = dir.resolve("s");
        try (NbdServer s = twoExports(sock); NbdTestClient ca = go(sock, "vol-a"); NbdTestClient cb = go(sock, "vol-b")) {
            assertThat(s.removeExport("vol-b")).isTrue();
            assertThat(cb.closedByServer()).isTrue();
            assertThat(ca.write(1, 0, new byte[] {7})).isZero();
            assertThat(ca.read(2, 0, 1)).containsExactly(7);
            try (NbdTestClient c = NbdTestClient.connect(sock)) {
                c.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
                c.option(NBD_OPT_GO, NbdTestClient.infoData("vol-b", new int[0]));
                assertThat(c.readOptionReply().type()).isEqualTo(NBD_REP_ERR_UNKNOWN);
            }
            assertThat(s.removeExport("vol-b")).isFalse();
        }
    }
}
