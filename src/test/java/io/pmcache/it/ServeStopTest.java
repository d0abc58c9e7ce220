package io.pmcache.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 9 item 10 as a user meets it: a client pipelines 32 reads of 1 MiB, then {@code pmcache
 * serve} gets SIGTERM. Every request must be answered (with its data, or ESHUTDOWN) before the
 * connection closes, and the server must exit 0. Before the fix, 1 to 7 of the 32 were answered.
 * The wire is spoken here by hand, independent of the server's code.
 */
@Timeout(180)
class ServeStopTest {
    private static final int REQUEST_MAGIC = 0x25609513;
    private static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    private static final int ESHUTDOWN = 108;
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;
    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void cleanUp() throws Exception {
        for (AutoCloseable c : open.reversed()) {
            c.close();
        }
    }

    @Test
    void sigtermAnswersEveryPipelinedRequest() throws Exception {
        Path socket = dir.resolve("pmcache.sock");
        ServeProcess serve = ServeProcess.start(dir, List.of("--cache", dir.resolve("cache.img").toString(),
                "--cache-size", "64M", "--segment-size", "1M", "--parallel", "2",
                "--backing", dir.resolve("backing.img").toString(), "--backing-size", "256M",
                "--socket", socket.toString()));
        open.add(serve);
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        open.add(ch);
        ch.connect(UnixDomainSocketAddress.of(socket));
        DataInputStream in = new DataInputStream(Channels.newInputStream(ch));
        DataOutputStream out = new DataOutputStream(Channels.newOutputStream(ch));
        in.readLong(); // NBDMAGIC
        in.readLong(); // IHAVEOPT
        in.readUnsignedShort();
        out.writeInt(1 | 2); // FIXED_NEWSTYLE | NO_ZEROES
        out.writeLong(0x49484156454F5054L);
        out.writeInt(1); // NBD_OPT_EXPORT_NAME, the default export
        out.writeInt(0);
        out.flush();
        assertThat(in.readLong()).as("export size").isEqualTo(256L * MIB);
        in.readUnsignedShort();

        // Replies are read on another thread while this one sends: a client that reads no reply
        // while it sends can stall any server.
        List<long[]> replies = java.util.Collections.synchronizedList(new ArrayList<>());
        Thread reader = Thread.ofVirtual().start(() -> {
            byte[] data = new byte[MIB];
            try {
                while (true) {
                    int magic = in.readInt();
                    assertThat(magic).isEqualTo(SIMPLE_REPLY_MAGIC);
                    int error = in.readInt();
                    long handle = in.readLong();
                    if (error == 0) {
                        in.readFully(data);
                    }
                    replies.add(new long[] {handle, error});
                }
            } catch (EOFException closed) {
                // the server closed the connection: done
            } catch (IOException e) {
                replies.add(new long[] {-1, -1}); // reset instead of an orderly close
            }
        });
        for (int i = 0; i < 32; i++) {
            out.writeInt(REQUEST_MAGIC);
            out.writeShort(0);
            out.writeShort(0); // NBD_CMD_READ
            out.writeLong(i);
            out.writeLong((long) i * MIB);
            out.writeInt(MIB);
        }
        out.flush();
        int exit = serve.stop(); // SIGTERM right after the requests went out
        reader.join();
        assertThat(exit).as("exit status after SIGTERM; log:%n%s", serve.log()).isZero();
        assertThat(replies).extracting(r -> r[0]).as("one reply per request, then an orderly close; log:%n%s",
                serve.log()).containsExactlyInAnyOrderElementsOf(java.util.stream.LongStream.range(0, 32).boxed().toList());
        assertThat(replies).extracting(r -> r[1]).allMatch(e -> e == 0 || e == ESHUTDOWN);
    }
}
