package io.pmcache.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.pmcache.backing.FileBackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheOptions;
import io.pmcache.cache.FormatOptions;
import io.pmcache.device.BlockStatus;
import io.pmcache.media.MappedFileMedium;
import io.pmcache.nbd.NbdServer;
import io.pmcache.nbd.NbdStats;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Block status and block sizes with real clients, against a cache (mapped file medium, sparse
 * backing file) served in process on a unix socket:
 * <ul>
 *   <li>{@code nbdinfo --map} and {@code qemu-img map} show holes for unwritten, trimmed and zeroed
 *       ranges and data for written ones, while the cache holds them and after a detach (then the
 *       backing file's own holes answer);</li>
 *   <li>{@code nbdcopy} (and {@code qemu-img convert}) of a mostly empty 8 GiB export reads only
 *       the written data (counted by the server's statistics) and copies the content right;</li>
 *   <li>unaligned writes work from every client, now that the minimum block size is 1 (each of
 *       these failed, or became a 512-byte read-modify-write, with the former minimum of 512):
 *       {@code dd bs=1 conv=notrunc} through {@code nbdfuse} (skipped where FUSE cannot mount),
 *       libnbd's {@code nbdsh} (python3-libnbd; it enforces the advertised minimum on the client
 *       side), and a 3-byte {@code qemu-io} write that arrives as 3 bytes.</li>
 * </ul>
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class BlockStatusClientsTest {
    private static final long MIB = 1L << 20;
    private static final long GIB = 1L << 30;

    @TempDir
    Path dir;
    private FileBackingDevice backing;
    private MappedFileMedium medium;
    private Cache cache;
    private NbdServer server;
    private String uri;

    private void serve(long size) throws IOException {
        backing = FileBackingDevice.createSparse(dir.resolve("backing.img"), size);
        medium = MappedFileMedium.create(dir.resolve("cache.img"), 64 * MIB);
        Cache.format(medium, backing, new FormatOptions(MIB, false));
        cache = Cache.open(medium, backing, CacheOptions.defaults().withParallel(2));
        server = NbdServer.builder().device(cache).exportName("pmcache").build();
        server.listenUnix(dir.resolve("nbd.sock"));
        uri = server.uri();
    }

    @AfterEach
    void stop() throws IOException {
        if (server != null) {
            server.close();
        }
        if (cache != null) {
            cache.close();
        }
        if (medium != null) {
            medium.close();
        }
        if (backing != null) {
            backing.close();
        }
    }

    @Test
    void mapsShowHolesForUnwrittenTrimmedAndZeroedRanges() throws Exception {
        Tools.require("nbdinfo", "qemu-img", "qemu-io");
        serve(64 * MIB);
        Tools.run("qemu-io", "-f", "raw",
                "-c", "write -P 0xab 1M 1M", "-c", "write -z 1M 512k",
                "-c", "write -P 0xcd 8M 1M", "-c", "discard 8M 512k",
                "-c", "write -P 0x11 20971523 3",
                uri).expectSuccess();
        long[][] holes = {{0, MIB}, {MIB, MIB + MIB / 2}, {2 * MIB, 8 * MIB}, {8 * MIB, 8 * MIB + MIB / 2},
                {9 * MIB, 20 * MIB}, {20 * MIB + 4096, 64 * MIB}};
        long[][] data = {{MIB + MIB / 2, 2 * MIB}, {8 * MIB + MIB / 2, 9 * MIB}, {20 * MIB + 3, 20 * MIB + 6}};
        checkMaps(holes, data, "in the cache (or being written back)");

        cache.detach(left -> { }); // everything written back, the cache empty: the backing file answers
        checkMaps(holes, data, "after detach");
        // the content is right too
        Tools.run("qemu-io", "-f", "raw", "-r", "-c", "read -P 0 1M 512k", "-c", "read -P 0xab 1536k 512k",
                "-c", "read -P 0 8M 512k", "-c", "read -P 0xcd 8704k 512k", "-c", "read -P 0x11 20971523 3",
                uri).expectSuccess();
    }

    @Test
    void nbdcopyOfAMostlyEmptyExportReadsOnlyTheWrittenData() throws Exception {
        Tools.require("nbdcopy");
        long size = 8 * GIB;
        serve(size);
        long[] written = {0, 3 * GIB + 123, size - MIB};
        for (int i = 0; i < written.length; i++) {
            cache.write(written[i], MemorySegment.ofArray(pattern(i)), false);
        }
        cache.write(5 * GIB, MemorySegment.ofArray(pattern(7)), false);
        cache.trim(5 * GIB, MIB);
        cache.write(6 * GIB, MemorySegment.ofArray(pattern(8)), false);
        cache.writeZeroes(6 * GIB, MIB, false);

        // nbdcopy reads data in requests of 256 KiB (pinned), aligned: the unaligned MiB costs 1.25 MiB
        long read = copyAndCheck(size, written, "nbdcopy from the cache", NBDCOPY, uri, OUT);
        assertThat(read).as("bytes nbdcopy read from the cache").isBetween(3 * MIB, 3 * MIB + MIB / 2);
        if (Tools.onPath("qemu-img")) {
            read = copyAndCheck(size, written, "qemu-img convert from the cache",
                    "qemu-img", "convert", "-f", "raw", "-O", "raw", uri, OUT);
            // qemu-img's chunking differs between versions: allow 2 MiB of alignment slack (of 8 GiB)
            assertThat(read).as("bytes qemu-img convert read from the cache").isBetween(3 * MIB, 5 * MIB);
        }

        cache.detach(left -> { });
        read = copyAndCheck(size, written, "nbdcopy from the backing file after detach", NBDCOPY, uri, OUT);
        assertThat(read).as("bytes nbdcopy read after detach").isBetween(3 * MIB, 3 * MIB + MIB / 2);
    }

    @Test
    void aThreeByteQemuIoWriteArrivesAsThreeBytes() throws Exception {
        Tools.require("qemu-io");
        serve(64 * MIB);
        long before = server.stats().snapshot().bytesWritten();
        Tools.run("qemu-io", "-f", "raw", "-c", "write -P 0x61 1000003 3", uri).expectSuccess();
        assertThat(server.stats().snapshot().bytesWritten() - before)
                .as("a 3-byte qemu-io write arrives as 3 bytes (no read-modify-write)").isEqualTo(3);
        assertThat(bytesAt(1000002, 5)).containsExactly(0, 0x61, 0x61, 0x61, 0);
    }

    /** libnbd refuses I/O below the advertised minimum block size on the client side (strict mode). */
    @Test
    void libnbdWritesThreeUnalignedBytes() throws Exception {
        // nbdsh is python3-libnbd's shell: the Debian module is /usr/bin/python3's (not a pyenv's)
        assumeTrue(Files.isExecutable(Path.of("/usr/bin/python3"))
                && Tools.run("/usr/bin/python3", "-c", "import nbd").exit() == 0, "python3-libnbd is not installed");
        serve(64 * MIB);
        Tools.run("/usr/bin/python3", "-m", "nbd", "-u", uri, "-c", "h.pwrite(b'xyz', 2000001)",
                "-c", "assert h.pread(5, 2000000) == b'\\0xyz\\0'").expectSuccess();
        assertThat(bytesAt(2000000, 5)).containsExactly(0, 'x', 'y', 'z', 0);
    }

    @Test
    void ddWithOneByteBlocksThroughNbdfuse() throws Exception {
        Tools.require("nbdfuse", "fusermount3", "dd");
        assumeTrue(Files.exists(Path.of("/dev/fuse")), "no /dev/fuse");
        serve(64 * MIB);
        ddThroughNbdfuse();
    }

    /** {@code dd bs=1 seek=N conv=notrunc} into the file nbdfuse shows; skipped if FUSE cannot mount here. */
    private void ddThroughNbdfuse() throws Exception {
        Path mnt = Files.createDirectory(dir.resolve("mnt"));
        Path pidFile = dir.resolve("nbdfuse.pid");
        Path log = dir.resolve("nbdfuse.log");
        Process fuse = new ProcessBuilder("nbdfuse", "-P", pidFile.toString(), mnt.toString(), uri)
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (!Files.exists(pidFile) && fuse.isAlive() && System.nanoTime() < deadline) {
                fuse.waitFor(20, TimeUnit.MILLISECONDS); // bounded poll for the mount to be ready
            }
            assumeTrue(Files.exists(pidFile), "nbdfuse did not mount (FUSE unavailable?): " + Files.readString(log));
            Path file = mnt.resolve("nbd");
            Path input = Files.write(dir.resolve("abc"), "abc".getBytes());
            Tools.run(input, "dd", "of=" + file, "bs=1", "seek=3000005", "conv=notrunc").expectSuccess();
            byte[] back = new byte[5];
            try (FileChannel ch = FileChannel.open(file)) {
                ch.read(ByteBuffer.wrap(back), 3000004);
            }
            assertThat(back).as("read back through nbdfuse").containsExactly(0, 'a', 'b', 'c', 0);
        } finally {
            Tools.run("fusermount3", "-u", mnt.toString());
            if (!fuse.waitFor(30, TimeUnit.SECONDS)) {
                fuse.destroyForcibly().waitFor();
            }
        }
        assertThat(bytesAt(3000004, 5)).as("in the cache").containsExactly(0, 'a', 'b', 'c', 0);
    }

    /** nbdcopy with its request size pinned (the read counts depend on it). */
    private static final String[] NBDCOPY_ARGS = {"nbdcopy", "--request-size=262144"};
    private static final String NBDCOPY = "@nbdcopy";

    /** Where {@link #copyAndCheck} copies to. */
    private static final String OUT = "@out";

    /**
     * Runs {@code command} (with {@link #OUT} for a new, empty file) to copy the export; checks the
     * copy's content; returns the bytes the server sent.
     */
    private long copyAndCheck(long size, long[] written, String when, String... command) throws Exception {
        Path out = dir.resolve("copy.img");
        Files.deleteIfExists(out);
        Files.createFile(out);
        NbdStats.Snapshot before = server.stats().snapshot();
        Tools.run(Arrays.stream(command)
                .flatMap(a -> a.equals(NBDCOPY) ? Arrays.stream(NBDCOPY_ARGS) : java.util.stream.Stream.of(a))
                .map(a -> a.equals(OUT) ? out.toString() : a).toArray(String[]::new)).expectSuccess();
        NbdStats.Snapshot after = server.stats().snapshot();
        assertThat(Files.size(out)).isEqualTo(size);
        // A hole in the copy reads as zeros (the file system's promise); every other byte is read
        // and compared: the written ranges hold their pattern, the rest zeros.
        try (FileBackingDevice copy = FileBackingDevice.open(out, true)) {
            long at = 0;
            while (at < size) {
                List<BlockStatus> extents = copy.blockStatus(at, size - at, 1024);
                for (BlockStatus x : extents) {
                    if (x.kind() == BlockStatus.Kind.DATA) {
                        checkCopied(copy, x.offset(), x.end(), written, when);
                    }
                }
                at = extents.getLast().end();
            }
        }
        for (int i = 0; i < written.length; i++) {
            checkCopied(out, written[i], pattern(i), when);
        }
        return after.bytesRead() - before.bytesRead();
    }

    /** Reads {@code [from, to)} of the copy, in pieces, and compares it with the written ranges over zeros. */
    private static void checkCopied(FileBackingDevice copy, long from, long to, long[] written, String when)
            throws IOException {
        for (long at = from; at < to; at += 16 * MIB) {
            int n = (int) Math.min(16 * MIB, to - at);
            byte[] got = new byte[n];
            copy.read(at, MemorySegment.ofArray(got));
            byte[] expect = new byte[n];
            for (int i = 0; i < written.length; i++) {
                overlay(expect, at, written[i], pattern(i));
            }
            int bad = Arrays.mismatch(got, expect);
            assertThat(bad).as("%s: first wrong byte of the copy from %d", when, at + bad).isEqualTo(-1);
        }
    }

    /** The written range {@code data} at {@code offset} is in the copy (whether the file holds it as data or not). */
    private static void checkCopied(Path out, long offset, byte[] data, String when) throws IOException {
        ByteBuffer got = ByteBuffer.allocate(data.length);
        try (FileChannel ch = FileChannel.open(out)) {
            while (got.hasRemaining() && ch.read(got, offset + got.position()) > 0) {
                // read it whole
            }
        }
        assertThat(Arrays.mismatch(got.array(), data)).as("%s: the range written at %d", when, offset).isEqualTo(-1);
    }

    private static void overlay(byte[] chunk, long chunkAt, long dataAt, byte[] data) {
        long from = Math.max(chunkAt, dataAt);
        long to = Math.min(chunkAt + chunk.length, dataAt + data.length);
        if (from < to) {
            System.arraycopy(data, (int) (from - dataAt), chunk, (int) (from - chunkAt), (int) (to - from));
        }
    }

    private static byte[] pattern(int i) {
        byte[] b = new byte[(int) MIB];
        new java.util.Random(i).nextBytes(b);
        return b;
    }

    private byte[] bytesAt(long offset, int length) throws IOException {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(length);
            cache.read(offset, s);
            return s.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        }
    }

    /** A reported extent: [start, end) and whether it is a hole that reads as zeros. */
    record Mapped(long start, long end, boolean holeZero) {
    }

    private void checkMaps(long[][] holes, long[][] data, String when) throws Exception {
        List<Mapped> nbdinfo = new ArrayList<>();
        for (String line : Tools.run("nbdinfo", "--map", uri).expectSuccess().split("\n")) {
            String[] f = line.trim().split("\\s+");
            if (f.length >= 3 && f[0].matches("\\d+")) {
                long start = Long.parseLong(f[0]);
                nbdinfo.add(new Mapped(start, start + Long.parseLong(f[1]), Integer.parseInt(f[2]) == 3));
            }
        }
        check("nbdinfo --map " + when, nbdinfo, holes, data);
        List<Mapped> qemu = new ArrayList<>();
        String json = Tools.run("qemu-img", "map", "-f", "raw", "--output=json", uri).expectSuccess();
        Matcher m = Pattern.compile("\\{[^}]*}").matcher(json);
        while (m.find()) {
            String o = m.group();
            long start = field(o, "start");
            qemu.add(new Mapped(start, start + field(o, "length"),
                    o.matches("(?s).*\"zero\":\\s*true.*") && o.matches("(?s).*\"data\":\\s*false.*")));
        }
        check("qemu-img map " + when, qemu, holes, data);
    }

    private static long field(String object, String name) {
        Matcher m = Pattern.compile("\"" + name + "\":\\s*(\\d+)").matcher(object);
        assertThat(m.find()).as("%s in %s", name, object).isTrue();
        return Long.parseLong(m.group(1));
    }

    /** Every byte of each {@code holes} range is reported as a zero hole, every byte of each {@code data} range not. */
    private static void check(String what, List<Mapped> map, long[][] holes, long[][] data) {
        for (long[] h : holes) {
            for (Mapped x : map) {
                if (x.start() < h[1] && x.end() > h[0]) {
                    assertThat(x.holeZero()).as("%s: %s overlaps the hole [%d, %d); map %s", what, x, h[0], h[1], map)
                            .isTrue();
                }
            }
            assertThat(covered(map, h[0], h[1])).as("%s: [%d, %d) covered; map %s", what, h[0], h[1], map).isTrue();
        }
        for (long[] d : data) {
            for (Mapped x : map) {
                if (x.start() < d[1] && x.end() > d[0]) {
                    assertThat(x.holeZero()).as("%s: %s overlaps the data [%d, %d); map %s", what, x, d[0], d[1], map)
                            .isFalse();
                }
            }
            assertThat(covered(map, d[0], d[1])).as("%s: [%d, %d) covered; map %s", what, d[0], d[1], map).isTrue();
        }
    }

    private static boolean covered(List<Mapped> map, long from, long to) {
        long c = from;
        for (Mapped x : map.stream().sorted((a, b) -> Long.compare(a.start(), b.start())).toList()) {
            if (x.start() <= c && x.end() > c) {
                c = x.end();
            }
        }
        return c >= to;
    }
}
