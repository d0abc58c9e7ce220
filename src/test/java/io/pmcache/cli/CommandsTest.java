package io.pmcache.cli;

import static io.pmcache.cli.CliRun.pm;

import io.pmcache.cli.CliRun.Result;

import static org.assertj.core.api.Assertions.assertThat;

import io.pmcache.admin.AdminServer;
import io.pmcache.admin.Json;
import io.pmcache.admin.StatusSource;
import io.pmcache.backing.FileBackingDevice;
import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheOptions;
import io.pmcache.format.Layout;
import io.pmcache.format.Superblock;
import io.pmcache.media.MappedFileMedium;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every command in-process through {@link Main#commandLine()}: help, the error paths, and check findings. */
class CommandsTest {
    @TempDir
    Path dir;

    private Path cache() {
        return dir.resolve("cache.img");
    }

    private Path backing() {
        return dir.resolve("backing.img");
    }

    private Result formatSmall() {
        return pm("format", "--cache", cache().toString(), "--cache-size", "16M", "--backing", backing().toString(),
                "--backing-size", "8M", "--segment-size", "1M");
    }

    @Test
    void versionAndHelpOfEveryCommand() {
        Result v = pm("--version");
        assertThat(v.exit()).isZero();
        assertThat(v.out()).contains("pmcache");
        for (String[] cmd : new String[][] {{"format"}, {"serve"}, {"status"}, {"check"}, {"detach"}, {"set"},
                {"set", "gc-percent"}}) {
            String[] args = java.util.Arrays.copyOf(cmd, cmd.length + 1);
            args[cmd.length] = "--help";
            Result h = pm(args);
            assertThat(h.exit()).as(String.join(" ", cmd)).isZero();
            assertThat(h.out()).contains("Usage: pmcache " + String.join(" ", cmd));
        }
    }

    @Test
    void formatCreatesTheFileAndRefusesToOverwriteACache() throws Exception {
        Result f = formatSmall();
        assertThat(f.exit()).as(f.err()).isZero();
        assertThat(f.out()).contains("formatted").contains("segments of 1 MiB");
        Result again = formatSmall();
        assertThat(again.exit()).isEqualTo(1);
        assertThat(again.err()).contains("already a pmcache cache").contains("--force");
        Result forced = pm("format", "--cache", cache().toString(), "--backing", backing().toString(),
                "--segment-size", "1M", "--force");
        assertThat(forced.exit()).as(forced.err()).isZero();
    }

    @Test
    void formatRefusesAForeignFileWithoutForce() throws Exception {
        Files.writeString(cache(), "my precious thesis");
        Files.write(backing(), new byte[1 << 20]);
        Result r = pm("format", "--cache", cache().toString(), "--backing", backing().toString());
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).contains("not a pmcache cache").contains("refusing").contains("--force");
        assertThat(Files.readString(cache())).isEqualTo("my precious thesis");
        Result forced = pm("format", "--cache", cache().toString(), "--cache-size", "8M", "--backing",
                backing().toString(), "--segment-size", "1M", "--force");
        assertThat(forced.exit()).as(forced.err()).isZero();
    }

    @Test
    void formatOfAMissingFileNeedsASize() {
        Result r = pm("format", "--cache", cache().toString(), "--backing", backing().toString(),
                "--backing-size", "8M");
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).contains("--cache-size");
        assertThat(cache()).doesNotExist();
    }

    @Test
    void formatOfACacheTooSmallForItsSegmentsIsRefusedAndLeavesNoFile() {
        Result r = pm("format", "--cache", cache().toString(), "--cache-size", "2M", "--backing",
                backing().toString(), "--backing-size", "8M", "--segment-size", "1M");
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).contains("needs at least");
        assertThat(cache()).doesNotExist();
        assertThat(backing()).as("the backing file it created is removed too").doesNotExist();
    }

    @Test
    void badSizeSyntaxIsAUsageError() {
        Result r = pm("format", "--cache", cache().toString(), "--cache-size", "12X", "--backing",
                backing().toString());
        assertThat(r.exit()).isEqualTo(2);
        assertThat(r.err()).contains("'12X' is not a size");
        Result s = pm("format", "--cache", cache().toString(), "--cache-size", "1G", "--backing", backing().toString(),
                "--backing-size", "1G", "--segment-size", "3M");
        assertThat(s.exit()).as("a value out of range is bad usage").isEqualTo(2);
        assertThat(s.err()).contains("power of two").contains("Usage:");
        assertThat(backing()).as("nothing created").doesNotExist();
    }

    @Test
    void missingFilesAreNamed() {
        Result status = pm("status", "--cache", dir.resolve("nope.img").toString());
        assertThat(status.exit()).isEqualTo(1);
        assertThat(status.err()).contains("nope.img").contains("does not exist");
        Result check = pm("check", "--cache", dir.resolve("nope.img").toString());
        assertThat(check.exit()).isEqualTo(1);
        assertThat(check.err()).contains("does not exist");
        assertThat(formatSmall().exit()).isZero();
        Result detach = pm("detach", "--cache", cache().toString(), "--backing", dir.resolve("gone.img").toString());
        assertThat(detach.exit()).isEqualTo(1);
        assertThat(detach.err()).contains("gone.img").contains("does not exist");
    }

    @Test
    void wrongBackingDeviceIsRefusedByDetachAndServeAndFoundByCheck() throws Exception {
        assertThat(formatSmall().exit()).isZero();
        Path other = dir.resolve("other.img");
        Files.write(other, new byte[8 << 20]);
        Result detach = pm("detach", "--cache", cache().toString(), "--backing", other.toString());
        assertThat(detach.exit()).isEqualTo(1);
        assertThat(detach.err()).contains("refusing to mix");
        Result serve = pm("serve", "--cache", cache().toString(), "--backing", other.toString(), "--socket",
                dir.resolve("s.sock").toString());
        assertThat(serve.exit()).isEqualTo(1);
        assertThat(serve.err()).contains("refusing to mix");
        assertThat(serve.err()).contains("wrong backing device").contains("Next:").contains("pmcache detach");
        Result check = pm("check", "--cache", cache().toString(), "--backing", other.toString());
        assertThat(check.exit()).as("the cache is fine: not corruption").isEqualTo(CheckCommand.EXIT_WRONG_BACKING);
        assertThat(check.out()).contains("clean").doesNotContain("CORRUPT").contains("wrong backing device")
                .contains("next: give the backing file");
        Result own = pm("check", "--cache", cache().toString(), "--backing", backing().toString());
        assertThat(own.exit()).as(own.out()).isZero();
    }

    /** The one shell command between backticks in {@code message} that starts with {@code start}. */
    private static String command(String message, String start) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("`(" + java.util.regex.Pattern.quote(start)
                + "[^`]*)`").matcher(message);
        assertThat(m.find()).as("a `%s ...` command in: %s", start, message).isTrue();
        return m.group(1);
    }

    /** Runs {@code command} in a shell, as an operator pastes it. */
    private static void sh(String command) throws Exception {
        Process p = new ProcessBuilder("sh", "-c", command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor()).as("%s: %s", command, out).isZero();
    }

    @Test
    void aBackingFileShrunkWhileStoppedIsRefusedForItsSizeAndTheAdviceGivenWorks() throws Exception {
        assertThat(formatSmall().exit()).isZero();
        byte[] old = new byte[8 << 20];
        java.util.Arrays.fill(old, (byte) 0x11);
        Files.write(backing(), old); // the same file (inode): its content before the cache wrote anything
        try (FileBackingDevice disk = FileBackingDevice.open(backing(), false);
             MappedFileMedium m = MappedFileMedium.open(cache());
             Cache c = Cache.open(CliRun.cacheIn(m), disk, CacheOptions.defaults().withParallel(1).withWriteback(false));
             Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(4096);
            buf.fill((byte) 0x5a);
            c.write(6 << 20, buf, false); // dirty, in the part the shrink cuts off
            c.write(1 << 20, buf, false); // dirty, in the part it keeps
            c.flush();
        }
        try (RandomAccessFile f = new RandomAccessFile(backing().toFile(), "rw")) {
            f.setLength(4 << 20);
        }

        Result serve = pm("serve", "--cache", cache().toString(), "--backing", backing().toString(), "--socket",
                dir.resolve("s.sock").toString());
        assertThat(serve.exit()).as(serve.err()).isEqualTo(1);
        assertThat(serve.err()).as("the real cause: the size, with both sizes")
                .contains(backing() + " is 4194304 bytes, but the cache was formatted for it "
                        + "at 8388608 bytes: it was shrunk since")
                .doesNotContain("new fingerprint").doesNotContain("copied or restored")
                .contains("truncate -s 8388608 " + backing().toAbsolutePath())
                .contains("4194304 bytes past byte 4194304 that the shrink cut off are lost and read as zeros, "
                        + "except what this cache holds of them: its dirty data, which writeback puts back");
        String advice = command(serve.err(), "truncate");
        Result detach = pm("detach", "--cache", cache().toString(), "--backing", backing().toString());
        assertThat(detach.exit()).as("detach opens the cache as serve does: refused alike").isEqualTo(1);
        assertThat(detach.err()).contains("it was shrunk since").contains(advice);
        Result check = pm("check", "--cache", cache().toString(), "--backing", backing().toString());
        assertThat(check.exit()).as(check.out()).isEqualTo(CheckCommand.EXIT_WRONG_BACKING);
        assertThat(check.out()).contains("clean").contains("it was shrunk since")
                .contains("next: give the file its size back: `" + advice + "`");

        sh(advice); // what the message says, as given
        Result again = pm("detach", "--cache", cache().toString(), "--backing", backing().toString());
        assertThat(again.exit()).as(again.err()).isZero();
        byte[] after = Files.readAllBytes(backing());
        assertThat(after).hasSize(8 << 20);
        byte[] dirty = new byte[4096];
        java.util.Arrays.fill(dirty, (byte) 0x5a);
        assertThat(java.util.Arrays.copyOfRange(after, 1 << 20, (1 << 20) + 4096)).as("dirty data written back")
                .isEqualTo(dirty);
        assertThat(java.util.Arrays.copyOfRange(after, 6 << 20, (6 << 20) + 4096))
                .as("the dirty data of the part cut off is put back").isEqualTo(dirty);
        assertThat(java.util.Arrays.copyOfRange(after, 0, 4096)).as("the part kept keeps its data")
                .isEqualTo(java.util.Arrays.copyOf(old, 4096));
        assertThat(java.util.Arrays.copyOfRange(after, 5 << 20, (5 << 20) + 4096))
                .as("the rest of the part cut off is lost: zeros, as the message says").isEqualTo(new byte[4096]);
    }

    @Test
    void aBackingFileGrownWhileStoppedIsRefusedForItsSizeAndTheAdviceGivenWorks() throws Exception {
        assertThat(formatSmall().exit()).isZero();
        try (RandomAccessFile f = new RandomAccessFile(backing().toFile(), "rw")) {
            f.setLength(12 << 20);
        }
        Result serve = pm("serve", "--cache", cache().toString(), "--backing", backing().toString(), "--socket",
                dir.resolve("s.sock").toString());
        assertThat(serve.exit()).as(serve.err()).isEqualTo(1);
        assertThat(serve.err()).contains("is 12582912 bytes, but the cache was formatted for it at 8388608 bytes: "
                        + "it was grown since").doesNotContain("copied or restored")
                .contains("To use the new size: `pmcache detach`");
        sh(command(serve.err(), "truncate -s 8388608 "));
        Result check = pm("check", "--cache", cache().toString(), "--backing", backing().toString());
        assertThat(check.exit()).as(check.out()).isZero();
    }

    @Test
    void serveRefusesAParallelTheCacheIsTooSmallFor() {
        assertThat(formatSmall().exit()).isZero();
        Result r = pm("serve", "--cache", cache().toString(), "--backing", backing().toString(), "--socket",
                dir.resolve("s.sock").toString(), "--parallel", "8");
        assertThat(r.exit()).isEqualTo(1);
        assertThat(r.err()).contains("parallel 8 needs at least 32 segments");
    }

    @Test
    void serveRejectsABadAdminAddressAndGcPercent() {
        assertThat(formatSmall().exit()).isZero();
        Result r = pm("serve", "--cache", cache().toString(), "--backing", backing().toString(), "--socket",
                dir.resolve("s.sock").toString(), "--admin", "localhost:http");
        assertThat(r.exit()).as("bad usage").isEqualTo(2);
        assertThat(r.err()).contains("HOST:PORT");
        Result g = pm("serve", "--cache", cache().toString(), "--backing", backing().toString(), "--socket",
                dir.resolve("s.sock").toString(), "--gc-percent", "91");
        assertThat(g.exit()).as("bad usage").isEqualTo(2);
        assertThat(g.err()).contains("0..90");
    }

    @Test
    void statusNeedsExactlyOneSource() {
        assertThat(pm("status").exit()).isEqualTo(2);
        Result both = pm("status", "--cache", "a", "--admin", "1");
        assertThat(both.exit()).isEqualTo(2);
        assertThat(both.err()).contains("mutually exclusive");
    }

    @Test
    void setGcPercentIsValidatedAndNeedsAServer() throws Exception {
        Result bad = pm("set", "gc-percent", "95", "--admin", "1");
        assertThat(bad.exit()).as("bad usage").isEqualTo(2);
        assertThat(bad.err()).contains("0..90");
        int port;
        try (var s = new java.net.ServerSocket(0)) {
            port = s.getLocalPort();
        }
        Result none = pm("set", "gc-percent", "50", "--admin", "127.0.0.1:" + port);
        assertThat(none.exit()).isEqualTo(1);
        assertThat(none.err()).contains("cannot reach the admin endpoint");
        assertThat(pm("set").exit()).isEqualTo(2);
    }

    @Test
    void checkFindsCorruptKeysAndCacheInfoAndSuperblock() throws Exception {
        assertThat(formatSmall().exit()).isZero();
        try (FileBackingDevice disk = FileBackingDevice.open(backing(), false);
             MappedFileMedium m = MappedFileMedium.open(cache());
             Cache c = Cache.open(CliRun.cacheIn(m), disk, CacheOptions.defaults().withParallel(1).withWriteback(false))) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment buf = a.allocate(8192);
                buf.fill((byte) 7);
                c.write(0, buf, false);
                c.write(1 << 20, buf, false);
                c.flush();
            }
            c.setGcPercent(50); // writes the second cache-info slot
        }
        Result clean = pm("check", "--cache", cache().toString(), "--backing", backing().toString(),
                "--verify-data");
        assertThat(clean.exit()).as(clean.out() + clean.err()).isZero();
        assertThat(clean.out()).contains("clean").contains("2 data CRCs verified");

        Result status = pm("status", "--cache", cache().toString(), "--json");
        Map<?, ?> volumes = (Map<?, ?>) ((Map<?, ?>) Json.parse(status.out())).get("volumes");
        Map<?, ?> log = (Map<?, ?>) ((Map<?, ?>) volumes.get("default")).get("key_log");
        assertThat(log.get("dirty_bytes_upper_bound")).isEqualTo(16384L);

        long area;
        try (MappedFileMedium m = MappedFileMedium.open(cache())) {
            area = Cache.superblock(CliRun.cacheIn(m)).segmentAreaOffset();
        }
        // The key log starts at segment 0: kset header (64 bytes), then key slot 0.
        flipByte(area + 64 + 1);
        Result bad = pm("check", "--cache", cache().toString());
        assertThat(bad.exit()).isEqualTo(CheckCommand.EXIT_CORRUPT);
        assertThat(bad.out()).contains("slot 0: key fails its CRC").contains("CORRUPT");
        flipByte(area + 64 + 1);

        // Data corruption is found with --verify-data.
        try (MappedFileMedium m = MappedFileMedium.open(cache())) {
            assertThat(CliRun.cacheIn(m).segment().get(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED,
                    area + 64 + 16)).isNotZero();
        }

        // One damaged cache-info slot is a warning, both an error.
        flipByte(Layout.CACHE_INFO_SLOT0 + 3);
        Result one = pm("check", "--cache", cache().toString());
        assertThat(one.exit()).as(one.out()).isZero();
        assertThat(one.out()).contains("warning: cache info slot 0");
        flipByte(Layout.CACHE_INFO_SLOT1 + 3);
        Result two = pm("check", "--cache", cache().toString());
        assertThat(two.exit()).isEqualTo(CheckCommand.EXIT_CORRUPT);
        assertThat(two.out()).contains("both cache-info slots");

        flipByte(20); // inside the superblock
        Result sb = pm("check", "--cache", cache().toString());
        assertThat(sb.exit()).isEqualTo(CheckCommand.EXIT_CORRUPT);
        assertThat(sb.out()).contains("superblock CRC mismatch");
    }

    @Test
    void checkFindsDataCorruptionWhenAskedToVerifyData() throws Exception {
        assertThat(formatSmall().exit()).isZero();
        long dataAt;
        try (FileBackingDevice disk = FileBackingDevice.open(backing(), false);
             MappedFileMedium m = MappedFileMedium.open(cache());
             Cache c = Cache.open(CliRun.cacheIn(m), disk, CacheOptions.defaults().withParallel(1).withWriteback(false))) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment buf = a.allocate(4096);
                buf.fill((byte) 9);
                c.write(4096, buf, false);
                c.flush();
            }
            Superblock sb = Cache.superblock(CliRun.cacheIn(m));
            long keyAt = sb.segmentAreaOffset() + 64;
            int seg = CliRun.cacheIn(m).segment().get(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, keyAt + 16);
            int off = CliRun.cacheIn(m).segment().get(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, keyAt + 20);
            dataAt = sb.segmentAreaOffset() + seg * sb.segmentSize() + off;
        }
        flipByte(dataAt + 100);
        assertThat(pm("check", "--cache", cache().toString()).exit()).as("data CRCs not verified by default").isZero();
        Result r = pm("check", "--cache", cache().toString(), "--verify-data");
        assertThat(r.exit()).isEqualTo(CheckCommand.EXIT_CORRUPT);
        assertThat(r.out()).contains("data CRC mismatch");
    }

    @Test
    void checkAndStatusNeverModifyTheFile() throws Exception {
        assertThat(formatSmall().exit()).isZero();
        byte[] before = Files.readAllBytes(cache());
        long mtime = Files.getLastModifiedTime(cache()).toMillis();
        assertThat(pm("check", "--cache", cache().toString(), "--verify-data").exit()).isZero();
        assertThat(pm("status", "--cache", cache().toString()).exit()).isZero();
        assertThat(Files.readAllBytes(cache())).isEqualTo(before);
        assertThat(Files.getLastModifiedTime(cache()).toMillis()).isEqualTo(mtime);
    }

    @Test
    void adminEndpointServesMetricsStatusAndTheKnob() throws Exception {
        assertThat(formatSmall().exit()).isZero();
        try (FileBackingDevice disk = FileBackingDevice.open(backing(), false);
             MappedFileMedium m = MappedFileMedium.open(cache());
             Cache c = Cache.open(CliRun.cacheIn(m), disk, CacheOptions.defaults().withParallel(1).withWriteback(false));
             AdminServer admin = AdminServer.start(new InetSocketAddress("127.0.0.1", 0), StatusSource.of(c, null),
                     c::gcPercent, c::setGcPercent)) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment buf = a.allocate(4096);
                c.write(0, buf, false);
                c.read(0, buf);
            }
            HttpClient http = HttpClient.newHttpClient();
            String base = admin.url();
            HttpResponse<String> metrics = http.send(HttpRequest.newBuilder(URI.create(base + "/metrics")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(metrics.statusCode()).isEqualTo(200);
            assertThat(metrics.body()).contains("pmcache_writes_total 1.0").contains("pmcache_dirty_bytes 4096.0")
                    .contains("pmcache_read_hits_total 1.0").contains("# TYPE pmcache_reads_total counter");

            HttpResponse<String> bad = http.send(HttpRequest.newBuilder(URI.create(base + "/gc-percent"))
                    .POST(HttpRequest.BodyPublishers.ofString("91")).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(bad.statusCode()).isEqualTo(400);
            assertThat(bad.body()).contains("0..90");
            HttpResponse<String> garbage = http.send(HttpRequest.newBuilder(URI.create(base + "/gc-percent"))
                    .PUT(HttpRequest.BodyPublishers.ofString("lots")).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(garbage.statusCode()).isEqualTo(400);

            Result set = pm("set", "gc-percent", "25", "--admin", admin.address().getHostString() + ":"
                    + admin.address().getPort());
            assertThat(set.exit()).as(set.err()).isZero();
            assertThat(c.gcPercent()).isEqualTo(25);
            HttpResponse<String> json = http.send(HttpRequest.newBuilder(URI.create(base + "/gc-percent"))
                    .PUT(HttpRequest.BodyPublishers.ofString("{\"gc_percent\": 60}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(json.statusCode()).isEqualTo(200);
            assertThat(c.gcPercent()).isEqualTo(60);

            Result live = pm("status", "--admin", String.valueOf(admin.address().getPort()), "--json");
            assertThat(live.exit()).as(live.err()).isZero();
            Map<?, ?> cache = (Map<?, ?>) ((Map<?, ?>) Json.parse(live.out())).get("cache");
            assertThat(cache.get("gc_percent")).isEqualTo(60L);
            assertThat(cache.get("writes")).isEqualTo(1L);
            Map<String, Object> replay = (Map<String, Object>) ((Map<?, ?>) Json.parse(live.out())).get("replay");
            assertThat(replay).containsKeys("seconds", "keys_per_second");

            HttpResponse<String> missing = http.send(HttpRequest.newBuilder(URI.create(base + "/nope")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(missing.statusCode()).isEqualTo(404);
            HttpResponse<String> wrong = http.send(HttpRequest.newBuilder(URI.create(base + "/metrics"))
                    .POST(HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(wrong.statusCode()).isEqualTo(405);
        }
    }

    @Test
    void writebackPacingKnobsThroughTheAdminEndpointAndSet() throws Exception {
        assertThat(formatSmall().exit()).isZero();
        try (FileBackingDevice disk = FileBackingDevice.open(backing(), false);
             MappedFileMedium m = MappedFileMedium.open(cache());
             Cache c = Cache.open(CliRun.cacheIn(m), disk, CacheOptions.defaults().withParallel(1));
             AdminServer admin = AdminServer.start(new InetSocketAddress("127.0.0.1", 0), StatusSource.of(c, null),
                     c::gcPercent, c::setGcPercent, c::writebackSettings, c::setWritebackSettings)) {
            String at = String.valueOf(admin.address().getPort());
            HttpClient http = HttpClient.newHttpClient();
            String base = admin.url();
            HttpResponse<String> get = http.send(HttpRequest.newBuilder(URI.create(base + "/writeback")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(get.statusCode()).isEqualTo(200);
            assertThat(Json.parse(get.body())).isEqualTo(Json.parse(
                    "{\"target_percent\": 10, \"min_rate\": 4096, \"max_rate\": 0, \"idle_delay_ms\": 2000, "
                            + "\"full_speed\": false}"));

            Result target = pm("set", "writeback-target", "20", "--admin", at);
            assertThat(target.exit()).as(target.err()).isZero();
            assertThat(target.out()).containsPattern("\"target_percent\"\\s*:\\s*20");
            assertThat(c.writebackSettings().targetPercent()).isEqualTo(20);
            Result tooHigh = pm("set", "writeback-target", "95", "--admin", at);
            assertThat(tooHigh.exit()).isNotZero();
            assertThat(tooHigh.err()).contains("0..90");
            Result belowMin = pm("set", "writeback-max-rate", "1K", "--admin", at);
            assertThat(belowMin.exit()).isNotZero();
            assertThat(belowMin.err()).contains("below the minimum rate");
            assertThat(pm("set", "writeback-min-rate", "1M", "--admin", at).exit()).isZero();
            assertThat(pm("set", "writeback-max-rate", "64M", "--admin", at).exit()).isZero();
            assertThat(pm("set", "writeback-idle-delay", "500", "--admin", at).exit()).isZero();
            assertThat(pm("set", "writeback-full-speed", "on", "--admin", at).exit()).isZero();
            assertThat(pm("set", "writeback-full-speed", "maybe", "--admin", at).exit()).isNotZero();
            assertThat(c.writebackSettings()).isEqualTo(new io.pmcache.cache.WritebackSettings(20, 1 << 20, 64 << 20,
                    500, true));

            HttpResponse<String> unknown = http.send(HttpRequest.newBuilder(URI.create(base + "/writeback"))
                    .POST(HttpRequest.BodyPublishers.ofString("{\"nope\": 1}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(unknown.statusCode()).isEqualTo(400);
            assertThat(unknown.body()).contains("unknown writeback knob");
            HttpResponse<String> notJson = http.send(HttpRequest.newBuilder(URI.create(base + "/writeback"))
                    .PUT(HttpRequest.BodyPublishers.ofString("fast")).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(notJson.statusCode()).isEqualTo(400);

            HttpResponse<String> metrics = http.send(HttpRequest.newBuilder(URI.create(base + "/metrics")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(metrics.body()).contains("pmcache_writeback_target_ratio 0.2")
                    .contains("pmcache_dirty_ratio").contains("pmcache_writeback_rate_limit_bytes_per_second")
                    .contains("pmcache_writeback_reason{reason=\"drain\"}");
            Result live = pm("status", "--admin", at, "--json");
            assertThat(live.exit()).as(live.err()).isZero();
            Map<?, ?> cache = (Map<?, ?>) ((Map<?, ?>) Json.parse(live.out())).get("cache");
            assertThat(cache.get("writeback_target_percent")).isEqualTo(20L);
            assertThat(cache.get("writeback_reason")).isIn("controller", "idle", "pressure", "drain");
            assertThat(cache.get("dirty_percent")).isNotNull();
            assertThat(cache.get("writeback_rate_limit")).isNotNull();
        }
    }

    @Test
    void jsonRoundTrip() {
        Map<String, Object> doc = new java.util.LinkedHashMap<>();
        doc.put("a", 1L);
        doc.put("s", "x\"y\\z\n");
        doc.put("l", java.util.List.of(1L, "two", true));
        doc.put("m", Map.of("k", 2.5));
        doc.put("n", null);
        assertThat(Json.parse(Json.write(doc))).isEqualTo(doc);
    }

    /** Flips a byte at {@code at} of the cache (of its default volume, on a volume medium). */
    private void flipByte(long at) throws Exception {
        long base = CliRun.cacheOffset(cache());
        try (RandomAccessFile f = new RandomAccessFile(cache().toFile(), "rw")) {
            f.seek(base + at);
            int b = f.read();
            f.seek(base + at);
            f.write(b ^ 0x5a);
        }
    }
}
