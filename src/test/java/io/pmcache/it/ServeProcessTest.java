package io.pmcache.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The real {@code pmcache serve} process with real NBD clients: a 64 MiB cache of 1 MiB segments
 * (on /dev/shm when present) in front of a 256 MiB sparse backing file, two data heads, a unix
 * socket. Each test starts its own server, restarts it (SIGTERM, exit 0) or kills it (-9) where it
 * says so. Tools are looked up on PATH; a test whose tool is missing is skipped. The filesystem test
 * also needs root, /dev/fuse and a free loop device, and is skipped with the reason otherwise.
 * On failure the servers' stderr is printed.
 */
@Timeout(180)
class ServeProcessTest {
    static final long BACKING_SIZE = 256L << 20;
    static final long CACHE_SIZE = 64L << 20;

    @TempDir
    Path dir;

    @RegisterExtension
    final ServeFixture fixture = new ServeFixture(() -> dir);

    ServeProcess startServer(String... extra) throws IOException, InterruptedException {
        List<String> args = new ArrayList<>(List.of(
                "--cache", fixture.scratch().resolve("cache.img").toString(), "--cache-size", "64M",
                "--segment-size", "1M", "--parallel", "2",
                "--backing", dir.resolve("backing.img").toString(), "--backing-size", "256M",
                "--socket", dir.resolve("pmcache.sock").toString()));
        args.addAll(List.of(extra));
        return fixture.serve(args);
    }

    /** SIGTERM, expect exit status 0 and a clean stop in the log. */
    static void stopCleanly(ServeProcess s) throws Exception {
        assertThat(s.stop()).as("exit status after SIGTERM; log:%n%s", s.log()).isZero();
        assertThat(s.log()).contains("stopped cleanly");
    }

    @Test
    void nbdinfoShowsTheExportAndItsFlags() throws Exception {
        Tools.require("nbdinfo");
        ServeProcess s = startServer("--export", "disk0");
        assertThat(s.uri()).isEqualTo("nbd+unix:///?socket=" + dir.resolve("pmcache.sock"));
        String json = Tools.run("nbdinfo", "--json", s.uri()).expectSuccess().replaceAll("\\s", "");
        assertThat(json).contains("\"export-size\":" + BACKING_SIZE, "\"is_read_only\":false",
                "\"can_flush\":true", "\"can_fua\":true", "\"can_trim\":true", "\"can_zero\":true",
                "\"can_multi_conn\":true", "\"can_cache\":true", "\"structured\":true",
                "\"block_size_preferred\":4096", "pmcache:");
        assertThat(Tools.run("nbdinfo", "--list", s.uri()).expectSuccess()).contains("disk0");
        // the export also answers to its name
        assertThat(Tools.run("nbdinfo", "--size", "nbd+unix:///disk0?socket=" + dir.resolve("pmcache.sock"))
                .expectSuccess().trim()).isEqualTo(String.valueOf(BACKING_SIZE));
        stopCleanly(s);

        ServeProcess ro = startServer("--read-only");
        assertThat(Tools.run("nbdinfo", "--json", ro.uri()).expectSuccess().replaceAll("\\s", ""))
                .contains("\"is_read_only\":true");
        stopCleanly(ro);
    }

    @Test
    void qemuIoPatternsSurviveARestart() throws Exception {
        Tools.require("qemu-io");
        String[] writes = {
            "write -P 0x5a 0 1M",
            "write -P 0xa5 1M 64k",
            "write -P 0x3c 3040k 64k",          // crosses a 1 MiB segment boundary of a data head
            "write -P 0x77 8M 3M",               // longer than a segment: split into several keys
            "write -f -P 0x99 20M 4k",           // FUA
            "aio_write -P 0x11 32M 64k", "aio_write -P 0x22 33M 64k", "aio_write -P 0x33 34M 64k",
            "aio_flush",
            "write -P 0x44 40M 128k", "write -P 0x45 40M 64k",   // an overwrite of the first half
            "write -z 40M 4k",                   // WRITE_ZEROES over cached data
            "discard 1M 16k",                    // TRIM over cached data
            "flush",
        };
        String[] reads = {
            "read -P 0x5a 0 1M",
            "read -P 0 1M 16k", "read -P 0xa5 1040k 48k",
            "read -P 0x3c 3040k 64k",
            "read -P 0x77 8M 3M",
            "read -P 0x99 20M 4k",
            "read -P 0x11 32M 64k", "read -P 0x22 33M 64k", "read -P 0x33 34M 64k",
            "read -P 0 40M 4k", "read -P 0x45 40964k 60k", "read -P 0x44 41024k 64k",
            "read -P 0 100M 1M",                 // never written: the sparse backing file
        };
        ServeProcess s = startServer();
        qemuIo(s.uri(), writes);
        qemuIo(s.uri(), reads);
        stopCleanly(s);

        ServeProcess again = startServer();
        assertThat(again.log()).contains("opened");
        qemuIo(again.uri(), reads);
        stopCleanly(again);
    }

    @Test
    void qemuImgConvertRoundTripsAnImage() throws Exception {
        Tools.require("qemu-img");
        ServeProcess s = startServer();
        Path src = randomImage(96L << 20, 1);      // larger than the cache: writeback runs during the copy
        Tools.run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src.toString(), s.uri()).expectSuccess();
        Path back = dir.resolve("back.img");
        Tools.run("qemu-img", "convert", "-f", "raw", "-O", "raw", s.uri(), back.toString()).expectSuccess();
        assertThat(Files.size(back)).isEqualTo(BACKING_SIZE);
        Tools.run("qemu-img", "compare", "-f", "raw", "-F", "raw", src.toString(), s.uri()).expectSuccess();
        try (var a = Files.newInputStream(src); var b = Files.newInputStream(back)) {
            assertThat(Arrays.equals(a.readAllBytes(), b.readNBytes((int) Files.size(src)))).isTrue();
        }
        stopCleanly(s);
    }

    @Test
    void nbdcopyBothWays() throws Exception {
        Tools.require("nbdcopy");
        ServeProcess s = startServer();
        Path src = randomImage(BACKING_SIZE, 2);
        Tools.run("nbdcopy", "--connections=4", src.toString(), s.uri()).expectSuccess();
        Path back = dir.resolve("back.img");
        Files.createFile(back);
        Tools.run("nbdcopy", "--connections=4", s.uri(), back.toString()).expectSuccess();
        assertThat(Files.mismatch(src, back)).isEqualTo(-1);
        stopCleanly(s);
    }

    /**
     * fio random read/write over 192 MiB (about 96 MiB written into a 64 MiB cache, so writeback
     * and gc run during the job), verified by crc32c; then a restart and fio's verify-only pass
     * over the same blocks.
     */
    @Test
    void fioVerifiesAWorkingSetLargerThanTheCache() throws Exception {
        Tools.require("fio");
        ServeProcess s = startServer();
        List<String> job = List.of("fio", "--name=verify", "--ioengine=nbd", "--rw=randrw", "--bs=4k",
                "--size=192M", "--iodepth=32", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1",
                "--randseed=4242", "--verify_state_save=0", "--output-format=normal");
        String out = fio(job, s.uri());
        assertThat(out).contains("err= 0").doesNotContain("verify: bad");
        stopCleanly(s);
        assertThat(s.log()).containsPattern("closed .*: \\d+ dirty bytes not yet written back");
        long written = nonZeroBlocks(dir.resolve("backing.img"));
        assertThat(written).as("4 KiB blocks written back to the backing file").isGreaterThan((32L << 20) / 4096);

        ServeProcess again = startServer();
        List<String> verifyOnly = new ArrayList<>(job);
        verifyOnly.add("--verify_only");
        assertThat(fio(verifyOnly, again.uri())).contains("err= 0").doesNotContain("verify: bad");
        stopCleanly(again);
    }

    /**
     * kill -9 in the middle of a stream of acknowledged writes: after a restart every write that
     * qemu-io saw acknowledged reads back (at most the one write in flight at the kill may hold
     * either its old or its new value).
     */
    @Test
    void killMinus9LosesNoAcknowledgedWrite() throws Exception {
        Tools.require("qemu-io", "nbdcopy");
        int regions = 2048;                 // 8 MiB of 4 KiB regions, overwritten pass after pass
        int commands = 60_000;
        StringBuilder script = new StringBuilder();
        for (int i = 0; i < commands; i++) {
            script.append("write -P ").append(pattern(i, regions)).append(' ').append((long) (i % regions) * 4096)
                    .append(" 4k\n");
        }
        Path cmds = Files.writeString(dir.resolve("writes.qio"), script);
        Path out = dir.resolve("writes.out");
        ServeProcess s = startServer();
        Process qio = new ProcessBuilder("qemu-io", "-f", "raw", s.uri()).redirectInput(cmds.toFile())
                .redirectErrorStream(true).redirectOutput(out.toFile()).start();
        try {
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (count(Files.readString(out), "wrote 4096/4096") < 3 * regions / 2
                    && qio.isAlive() && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            assertThat(qio.isAlive()).as("qemu-io still writing at the kill:%n%s", tail(out)).isTrue();
            s.kill9();
            assertThat(qio.waitFor(60, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
        } finally {
            qio.destroyForcibly();
        }
        List<Long> acked = new ArrayList<>();
        Matcher m = Pattern.compile("wrote 4096/4096 bytes at offset (\\d+)").matcher(Files.readString(out));
        while (m.find()) {
            acked.add(Long.parseLong(m.group(1)));
        }
        int n = acked.size();
        assertThat(n).isBetween(3 * regions / 2, commands - 1);
        for (int i = 0; i < n; i++) {
            assertThat(acked.get(i)).as("write #%d", i).isEqualTo((long) (i % regions) * 4096);
        }

        ServeProcess again = startServer();
        Path image = dir.resolve("after-kill.img");
        Files.createFile(image);
        Tools.run("nbdcopy", again.uri(), image.toString()).expectSuccess();
        byte[] data;
        try (var in = Files.newInputStream(image)) {
            data = in.readNBytes(regions * 4096);
        }
        int inFlight = n % regions;             // the write after the last acknowledged one
        for (int r = 0; r < regions; r++) {
            int last = lastWriteTo(r, n, regions);
            byte[] got = Arrays.copyOfRange(data, r * 4096, (r + 1) * 4096);
            byte expected = (byte) pattern(last, regions);
            if (r == inFlight && got[0] == (byte) pattern(n, regions)) {
                expected = (byte) pattern(n, regions);
            }
            byte e = expected;
            assertThat(got).as("region %d (last acknowledged write #%d of %d)", r, last, n).containsOnly(e);
        }
        stopCleanly(again);
    }

    /** ext4 on the export through nbdfuse and a loop device, across a clean restart. */
    @Test
    void ext4OnTheExportSurvivesARestart() throws Exception {
        Tools.require("nbdfuse", "fusermount3", "losetup", "mkfs.ext4", "e2fsck", "mount", "umount");
        assumeTrue("root".equals(System.getProperty("user.name")), "mounting needs root");
        assumeTrue(Files.exists(Path.of("/dev/fuse")), "no /dev/fuse in this sandbox");
        assumeTrue(Tools.run("losetup", "-f").exit() == 0, "no free loop device (losetup -f failed)");

        ServeProcess s = startServer();
        Path fuse = Files.createDirectory(dir.resolve("fuse"));
        Path mnt = Files.createDirectory(dir.resolve("mnt"));
        Process nbdfuse = mountFuse(fuse, s.uri());
        String loop = attachLoop(fuse.resolve("nbd"));
        Tools.run("mkfs.ext4", "-q", "-F", loop).expectSuccess();
        mount(loop, mnt);
        Map<String, String> sums = new LinkedHashMap<>();
        Random rnd = new Random(7);
        Files.createDirectory(mnt.resolve("dir"));
        for (int i = 0; i < 40; i++) {
            byte[] data = new byte[1 + rnd.nextInt(3 << 20)];
            rnd.nextBytes(data);
            String name = (i % 2 == 0 ? "dir/" : "") + "file-" + i;
            Files.write(mnt.resolve(name), data);
            sums.put(name, sha256(data));
        }
        Tools.run("sync").expectSuccess();
        unmount(mnt, loop, fuse, nbdfuse);
        stopCleanly(s);

        ServeProcess again = startServer();
        nbdfuse = mountFuse(fuse, again.uri());
        String fsck = Tools.run("e2fsck", "-fn", fuse.resolve("nbd").toString()).expectSuccess();
        assertThat(fsck).contains("Pass 5").doesNotContainIgnoringCase("error");
        loop = attachLoop(fuse.resolve("nbd"));
        mount(loop, mnt, "-o", "ro");
        for (Map.Entry<String, String> e : sums.entrySet()) {
            assertThat(sha256(Files.readAllBytes(mnt.resolve(e.getKey())))).as(e.getKey()).isEqualTo(e.getValue());
        }
        unmount(mnt, loop, fuse, nbdfuse);
        stopCleanly(again);
    }

    // ---- helpers

    private void qemuIo(String uri, String... commands) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", "raw"));
        for (String c : commands) {
            cmd.add("-c");
            cmd.add(c);
        }
        cmd.add(uri);
        String out = Tools.run(cmd.toArray(String[]::new)).expectSuccess();
        assertThat(out).as("qemu-io output").doesNotContainIgnoringCase("fail").doesNotContainIgnoringCase("error");
        long done = out.lines().filter(l -> l.matches("(wrote|read|discard) \\d+/\\d+ bytes at offset \\d+")).count();
        long expected = Arrays.stream(commands).filter(c -> !c.contains("flush")).count();
        assertThat(done).as("completed qemu-io commands:%n%s", out).isEqualTo(expected);
    }

    private String fio(List<String> job, String uri) throws Exception {
        List<String> cmd = new ArrayList<>(job);
        cmd.add("--uri=" + uri);
        return Tools.run(cmd.toArray(String[]::new)).expectSuccess();
    }

    private Process mountFuse(Path mountpoint, String uri) throws Exception {
        Process p = new ProcessBuilder("nbdfuse", mountpoint.toString(), uri).redirectErrorStream(true)
                .redirectOutput(dir.resolve("nbdfuse.log").toFile()).start();
        fixture.closeLater(() -> {
            quietly("fusermount3", "-u", mountpoint.toString());
            p.destroyForcibly();
        });
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (!(Files.exists(mountpoint.resolve("nbd")) && Files.size(mountpoint.resolve("nbd")) == BACKING_SIZE)) {
            assertThat(p.isAlive()).as("nbdfuse exited: %s", Files.readString(dir.resolve("nbdfuse.log"))).isTrue();
            assertThat(System.nanoTime()).as("nbdfuse mount did not appear").isLessThan(deadline);
            Thread.sleep(20);
        }
        return p;
    }

    private String attachLoop(Path file) throws Exception {
        String loop = Tools.run("losetup", "-f", "--show", file.toString()).expectSuccess().trim();
        // only if it still backs this file: by cleanup time the test detached it, and another test
        // run on the machine may have attached the same loop device since
        fixture.closeLater(() -> quietly("sh", "-c", "losetup -j '" + file + "' | grep -q '^" + loop + ":' && losetup -d " + loop));
        return loop;
    }

    private void mount(String loop, Path mnt, String... options) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("mount"));
        cmd.addAll(List.of(options));
        cmd.addAll(List.of(loop, mnt.toString()));
        Tools.run(cmd.toArray(String[]::new)).expectSuccess();
        fixture.closeLater(() -> quietly("umount", mnt.toString()));
    }

    private static void unmount(Path mnt, String loop, Path fuse, Process nbdfuse) throws Exception {
        Tools.run("umount", mnt.toString()).expectSuccess();
        Tools.run("losetup", "-d", loop).expectSuccess();
        Tools.run("fusermount3", "-u", fuse.toString()).expectSuccess();
        assertThat(nbdfuse.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)).as("nbdfuse exits").isTrue();
    }

    private static void quietly(String... cmd) {
        try {
            Tools.run(cmd);
        } catch (Exception e) {
            System.err.println(String.join(" ", cmd) + ": " + e);
        }
    }

    private Path randomImage(long size, long seed) throws IOException {
        Path p = dir.resolve("src-" + seed + ".img");
        Random rnd = new Random(seed);
        byte[] chunk = new byte[1 << 20];
        try (var out = Files.newOutputStream(p)) {
            for (long done = 0; done < size; done += chunk.length) {
                rnd.nextBytes(chunk);
                if (done == 0) {
                    Arrays.fill(chunk, 4096, 65536, (byte) 0); // a zero run for the clients' sparse paths
                }
                out.write(chunk);
            }
        }
        return p;
    }

    private static long nonZeroBlocks(Path file) throws IOException {
        long n = 0;
        byte[] block = new byte[4096];
        try (var in = Files.newInputStream(file)) {
            while (in.readNBytes(block, 0, block.length) == block.length) {
                for (byte b : block) {
                    if (b != 0) {
                        n++;
                        break;
                    }
                }
            }
        }
        return n;
    }

    private static int pattern(int write, int regions) {
        return 1 + (write / regions) % 255;
    }

    private static int lastWriteTo(int region, int acked, int regions) {
        int last = region;
        while (last + regions < acked) {
            last += regions;
        }
        return last;
    }

    private static int count(String text, String what) {
        int n = 0;
        for (int i = text.indexOf(what); i >= 0; i = text.indexOf(what, i + 1)) {
            n++;
        }
        return n;
    }

    private static String tail(Path p) throws IOException {
        String s = Files.readString(p);
        return s.substring(Math.max(0, s.length() - 2000));
    }

    private static String sha256(byte[] data) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    }
}
