package io.pmcache.backing;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.device.BlockStatus;
import io.pmcache.device.BlockStatus.Kind;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The NBD backing device reports the remote's holes from {@code NBD_CMD_BLOCK_STATUS} on
 * {@code base:allocation}: against {@code nbdkit data} (a sparse image: 32 KiB pages of data at
 * 1 MiB and 4 MiB, holes elsewhere), exactly as the server maps it; clipped to unaligned ranges
 * and capped extents; writes still in flight are seen; a server without the context (simple
 * replies only) and a remote that is down report everything as data. ({@code [MIB + 5, ...)} of
 * the data page would be ZERO, rightly: nbdkit checks the rest of a page for zeros.)
 */
@Timeout(120)
class NbdBackingDeviceBlockStatusTest {
    private static final long KIB = 1 << 10;
    private static final long MIB = 1 << 20;
    private static final long SIZE = 8 * MIB;
    /** nbdkit data's image: a few bytes at 1 MiB and at 4 MiB, each in a 32 KiB page of its sparse array. */
    private static final String[] SPARSE = {"data", "@1048576 1 2 3 @4194304 9", "size=8M"};

    @TempDir
    Path dir;
    private final List<AutoCloseable> cleanups = new ArrayList<>();

    @BeforeEach
    void needNbdkit() {
        Nbdkit.require();
    }

    @AfterEach
    void tearDown() throws Exception {
        for (AutoCloseable c : cleanups.reversed()) {
            c.close();
        }
    }

    private Nbdkit server(String... args) throws Exception {
        Nbdkit k = Nbdkit.start(dir.resolve("r" + cleanups.size() + ".sock"), args);
        cleanups.add(k);
        return k;
    }

    private NbdBackingDevice open(Nbdkit k) throws IOException {
        NbdBackingDevice d = NbdBackingDevice.open(NbdUri.parse(k.uri("disk")),
                NbdClientOptions.defaults().withReconnect(Duration.ofMillis(20), Duration.ofMillis(200)));
        cleanups.add(d);
        return d;
    }

    private static String[] with(String[] before, String... args) {
        List<String> all = new ArrayList<>(List.of(before));
        all.addAll(List.of(args));
        return all.toArray(String[]::new);
    }

    @Test
    void theRemotesHolesAreHolesAndItsDataData() throws Exception {
        NbdBackingDevice d = open(server(SPARSE));
        assertThat(d.info().hasAllocation()).isTrue();
        assertThat(d.blockStatus(0, SIZE, 64)).containsExactly(
                new BlockStatus(0, MIB, Kind.HOLE),
                new BlockStatus(MIB, 32 * KIB, Kind.DATA),
                new BlockStatus(MIB + 32 * KIB, 3 * MIB - 32 * KIB, Kind.HOLE),
                new BlockStatus(4 * MIB, 32 * KIB, Kind.DATA),
                new BlockStatus(4 * MIB + 32 * KIB, 4 * MIB - 32 * KIB, Kind.HOLE));
        // an unaligned range in the middle, and a cap of two extents: a prefix, clipped to the range
        assertThat(d.blockStatus(MIB + 1, 4 * MIB, 2)).containsExactly(
                new BlockStatus(MIB + 1, 32 * KIB - 1, Kind.DATA),
                new BlockStatus(MIB + 32 * KIB, 3 * MIB - 32 * KIB, Kind.HOLE));
        assertThat(d.blockStatus(SIZE - 1, 1, 8)).containsExactly(new BlockStatus(SIZE - 1, 1, Kind.HOLE));
    }

    @Test
    void aServerWithAMinimumBlockSizeIsAskedAboutWholeBlocks() throws Exception {
        // blocksize-policy answers a misaligned request with EINVAL; the client widens it and clips the answer
        NbdBackingDevice d = open(server(with(new String[] {"--filter=blocksize-policy"}, with(SPARSE,
                "blocksize-minimum=4096", "blocksize-preferred=4096", "blocksize-maximum=65536",
                "blocksize-error-policy=error"))));
        assertThat(d.info().minBlock()).isEqualTo(4096);
        assertThat(d.blockStatus(MIB - 100, 200, 8)).containsExactly(
                new BlockStatus(MIB - 100, 100, Kind.HOLE), new BlockStatus(MIB, 100, Kind.DATA));
    }

    @Test
    void aWriteStillInFlightIsSeen() throws Exception {
        // Writes take 300 ms at the server; a plain write returns once sent (write-behind), so the
        // block status right after it must wait for it, or it would report the old hole.
        NbdBackingDevice d = open(server("--filter=delay", "memory", "8M", "delay-write=300ms"));
        d.write(2 * MIB, MemorySegment.ofArray(new byte[4096]).fill((byte) 7), false);
        List<BlockStatus> got = d.blockStatus(2 * MIB, 4096, 8);
        assertThat(got).containsExactly(new BlockStatus(2 * MIB, 4096, Kind.DATA));
    }

    @Test
    void zeroedRangesOfTheRemoteReadAsHoles() throws Exception {
        NbdBackingDevice d = open(server("memory", "8M"));
        d.write(0, MemorySegment.ofArray(new byte[(int) MIB]).fill((byte) 1), false);
        d.writeZeroes(256 * KIB, 256 * KIB, false); // nbdkit memory punches it out of its sparse array
        assertThat(d.blockStatus(0, MIB, 8)).containsExactly(
                new BlockStatus(0, 256 * KIB, Kind.DATA),
                new BlockStatus(256 * KIB, 256 * KIB, Kind.HOLE),
                new BlockStatus(512 * KIB, 512 * KIB, Kind.DATA));
    }

    @Test
    void withoutBaseAllocationEverythingIsData() throws Exception {
        // No structured replies, no meta contexts (nbdkit 1.32 has no --no-meta-contexts yet).
        NbdBackingDevice simple = open(server(with(new String[] {"--no-sr"}, SPARSE)));
        assertThat(simple.info().structuredReplies()).isFalse();
        assertThat(simple.info().hasAllocation()).isFalse();
        assertThat(simple.blockStatus(0, SIZE, 64)).containsExactly(new BlockStatus(0, SIZE, Kind.DATA));
    }

    @Test
    void whileTheRemoteIsDownEverythingIsData() throws Exception {
        Nbdkit k = server(SPARSE);
        NbdBackingDevice d = open(k);
        k.kill();
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (d.isUp()) { // the loss is noticed by the supervisor or by the next request
            assertThat(d.blockStatus(0, SIZE, 64)).isNotEmpty();
            assertThat(System.nanoTime()).as("the loss noticed within 60 s").isLessThan(deadline);
            Thread.sleep(10);
        }
        assertThat(d.blockStatus(0, SIZE, 64)).containsExactly(new BlockStatus(0, SIZE, Kind.DATA));
    }
}
