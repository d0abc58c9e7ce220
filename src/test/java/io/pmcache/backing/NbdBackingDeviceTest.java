package io.pmcache.backing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.pmcache.cache.Cache;
import io.pmcache.cache.CacheOptions;
import io.pmcache.cache.FormatOptions;
import io.pmcache.cache.WrongBackingDeviceException;
import io.pmcache.media.MappedFileMedium;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The NBD client's failure handling and identity, against nbdkit on a unix socket. */
@Timeout(120)
class NbdBackingDeviceTest extends RemoteDeviceTest {
    private NbdBackingDevice client(String export, NbdClientOptions options) throws IOException {
        return open(server.uri(export), options);
    }

    @Test
    void aReadWhileTheRemoteIsDownFailsAndSucceedsAfterReconnection() throws Exception {
        server = Nbdkit.start(dir.resolve("r.sock"), "file", image(4 << 20).toString());
        NbdBackingDevice d = client("disk", fast());
        byte[] data = random(1 << 20, 1);
        d.write(1 << 20, MemorySegment.ofArray(data), false);
        d.flush();

        server.kill();
        byte[] got = new byte[data.length];
        assertThatThrownBy(() -> d.read(1 << 20, MemorySegment.ofArray(got))).isInstanceOf(IOException.class)
                .hasMessageContaining(server.socket().toString());
        assertThat(d.isUp()).isFalse();
        assertThat(d.state()).containsEntry("state", "down");
        assertThatThrownBy(() -> d.read(0, MemorySegment.ofArray(new byte[512])))
                .isInstanceOf(IOException.class).hasMessageContaining("unreachable");

        server = server.restart();
        await("reconnected", d::isUp);
        d.read(1 << 20, MemorySegment.ofArray(got));
        assertThat(got).isEqualTo(data);
        assertThat(d.state()).containsEntry("state", "up").containsEntry("reconnects", 1L);
    }

    @Test
    void aFlushAfterALostLinkFailsOnceSoThatUnflushedWritesAreRepeated() throws Exception {
        server = Nbdkit.start(dir.resolve("r.sock"), "file", image(4 << 20).toString());
        NbdBackingDevice d = client("disk", fast());
        io.pmcache.device.BlockDevice.Flusher direct = d.newFlusher();
        d.write(0, MemorySegment.ofArray(random(4096, 2)), false);
        server.kill();
        server = server.restart();
        // The loss is noticed by the watchdog or the next call; either way the device reconnects.
        await("the loss noticed", () -> d.state().get("links_lost").equals(1L));
        await("reconnected", d::isUp);
        assertThatThrownBy(d::flush).isInstanceOf(IOException.class).hasMessageContaining("written again");
        assertThatThrownBy(direct::flush).as("every flusher").isInstanceOf(IOException.class)
                .hasMessageContaining("written again");
        d.write(0, MemorySegment.ofArray(random(4096, 2)), false);
        d.flush();
        direct.flush();
    }

    /**
     * Each cache opened on the device takes a flusher and gives it back when it closes: a device
     * reopened by many caches keeps no cursor per open, and a closed flusher does not flush.
     */
    @Test
    void cachesOpenedInTurnGiveTheirFlushersBack() throws Exception {
        server = Nbdkit.start(dir.resolve("r.sock"), "memory", "8M");
        try (MappedFileMedium m = MappedFileMedium.create(dir.resolve("cache.img"), 8 << 20);
             NbdBackingDevice d = client("disk", fast())) {
            Cache.format(m, d, new FormatOptions(1 << 20, false));
            int own = d.flusherCursors();
            for (int i = 0; i < 10; i++) {
                try (Cache c = Cache.open(m, d, CacheOptions.defaults().withParallel(1))) {
                    assertThat(d.flusherCursors()).isEqualTo(own + 1);
                    c.write(0, MemorySegment.ofArray(random(4096, i)), false);
                }
                assertThat(d.flusherCursors()).as("after cache %d closed", i).isEqualTo(own);
            }
            io.pmcache.device.BlockDevice.Flusher f = d.newFlusher();
            f.flush();
            f.close();
            assertThatThrownBy(f::flush).isInstanceOf(IOException.class).hasMessageContaining("flusher is closed");
            d.flush();
        }
    }

    @Test
    void aFlushedLinkLossDoesNotFailTheNextFlush() throws Exception {
        server = Nbdkit.start(dir.resolve("r.sock"), "file", image(4 << 20).toString());
        NbdBackingDevice d = client("disk", fast());
        d.write(0, MemorySegment.ofArray(random(4096, 3)), false);
        d.flush();
        d.write(8192, MemorySegment.ofArray(random(4096, 4)), true); // FUA: durable on its own
        server.kill();
        server = server.restart();
        await("the loss noticed", () -> d.state().get("links_lost").equals(1L));
        await("reconnected", d::isUp);
        d.flush();
    }

    /**
     * A server shutting down answers ESHUTDOWN; the spec says the client MUST then disconnect. The
     * device gives the link up at once (so the server can exit) and reconnects with backoff.
     * (nbdkit itself answers ESHUTDOWN after SIGTERM while clients stay; its error filter does here.)
     */
    @Test
    void aServerAnsweringEshutdownIsLeftAndReconnectedTo() throws Exception {
        Path shutting = dir.resolve("shutting-down");
        server = Nbdkit.start(dir.resolve("r.sock"), "--filter=error", "memory", "4M", "error-pread=ESHUTDOWN",
                "error-pread-rate=100%", "error-pread-file=" + shutting);
        NbdBackingDevice d = client("disk", fast());
        byte[] data = random(4096, 10);
        d.write(0, MemorySegment.ofArray(data), true);
        java.nio.file.Files.createFile(shutting);
        assertThatThrownBy(() -> d.read(0, MemorySegment.ofArray(new byte[4096]))).isInstanceOf(IOException.class)
                .hasMessageContaining("shutting down");
        assertThat(d.isUp()).as("the link given up").isFalse();
        java.nio.file.Files.delete(shutting);
        await("reconnected", d::isUp);
        byte[] got = new byte[4096];
        d.read(0, MemorySegment.ofArray(got));
        assertThat(got).isEqualTo(data);
        assertThat(d.state()).containsEntry("links_lost", 1L);
    }

    @Test
    void aStalledServerIsDroppedWithinTheTimeoutAndTheDeviceReconnects() throws Exception {
        // Reads take 5 s at the server; the client gives up on a connection after 200 ms without a
        // reply, lets the server finish (fence up to 20 s) and reconnects. Writes are not delayed.
        server = Nbdkit.start(dir.resolve("r.sock"), "--filter=delay", "memory", "4M", "delay-read=5");
        NbdClientOptions o = fast().withRequestTimeout(Duration.ofMillis(200)).withFenceTimeout(Duration.ofSeconds(20));
        NbdBackingDevice d = client("disk", o);
        assertThatThrownBy(() -> d.read(0, MemorySegment.ofArray(new byte[4096]))).isInstanceOf(IOException.class)
                .hasMessageContaining("no reply for");
        await("reconnected", d::isUp);
        byte[] data = random(4096, 5);
        d.write(4096, MemorySegment.ofArray(data), true);
        assertThat(d.state()).containsEntry("links_lost", 1L);
    }

    @Test
    void aWriteTheServerStillHoldsAfterTheFenceCannotLandAfterANewerOne() throws Exception {
        // A write takes 3 s at the server while the file "slow" exists (a shell script that sleeps:
        // nbdkit's delay filter would give up its sleep when the client goes). The client gives up
        // on the link after 200 ms and fences it for 500 ms, but the server still holds the write
        // then: the device must stay down until the server has carried it out, or the write would
        // land after the zeroing that follows on the next link (stale data).
        Path img = image(4 << 20);
        Path slow = java.nio.file.Files.createFile(dir.resolve("slow"));
        server = Nbdkit.start(dir.resolve("r.sock"), "eval",
                "get_size=stat -c %s " + img, "thread_model=echo parallel",
                "pread=dd if=" + img + " iflag=skip_bytes,count_bytes skip=$4 count=$3 status=none",
                "pwrite=if [ -e " + slow + " ]; then sleep 3; fi; dd of=" + img
                        + " oflag=seek_bytes seek=$4 conv=notrunc status=none");
        NbdClientOptions o = fast().withRequestTimeout(Duration.ofMillis(200)).withFenceTimeout(Duration.ofMillis(500));
        NbdBackingDevice d = client("disk", o);
        byte[] old = random(4096, 7);
        long start = System.nanoTime();
        var held = java.util.concurrent.CompletableFuture.runAsync(() -> {
            try {
                d.write(0, MemorySegment.ofArray(old), false);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        await("given up", () -> !d.isUp());
        java.nio.file.Files.delete(slow); // later writes are fast
        await("reconnected", d::isUp);
        long upAfterMillis = (System.nanoTime() - start) / 1_000_000;
        held.join(); // the server carried it out and answered: the write succeeded
        assertThat(upAfterMillis).as("up again only after the server's 3 s write").isGreaterThanOrEqualTo(2_900);
        d.writeZeroes(0, 4096, false); // nbdkit emulates it with a write
        Thread.sleep(Math.max(0, 3_500 - (System.nanoTime() - start) / 1_000_000)); // the old write's time is up
        byte[] got = new byte[4096];
        d.read(0, MemorySegment.ofArray(got));
        assertThat(MemorySegment.ofArray(got).mismatch(MemorySegment.ofArray(new byte[4096])))
                .as("the zeroing made after the lost write reads back (up again after %d ms)", upAfterMillis)
                .isEqualTo(-1L);
        assertThat(d.state()).containsEntry("links_lost", 1L);
    }

    @Test
    void closingIsBoundedWhileTheServerHoldsAWritePastTheFence() throws Exception {
        // The server holds every write for 20 s: the fence waits for it, but a stop must not.
        Path img = image(4 << 20);
        server = Nbdkit.start(dir.resolve("r.sock"), "eval",
                "get_size=stat -c %s " + img, "thread_model=echo parallel",
                "pread=dd if=" + img + " iflag=skip_bytes,count_bytes skip=$4 count=$3 status=none",
                "pwrite=sleep 20; dd of=" + img + " oflag=seek_bytes seek=$4 conv=notrunc status=none");
        NbdClientOptions o = fast().withRequestTimeout(Duration.ofMillis(200)).withFenceTimeout(Duration.ofMillis(500));
        NbdBackingDevice d = client("disk", o);
        var held = java.util.concurrent.CompletableFuture.runAsync(() -> {
            try {
                d.write(0, MemorySegment.ofArray(random(4096, 8)), false);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        await("given up", () -> !d.isUp());
        Thread.sleep(1_000); // past the fence: waiting for the server
        assertThat(d.isUp()).isFalse();
        long start = System.nanoTime();
        d.close();
        assertThat((System.nanoTime() - start) / 1_000_000).as("close, ms").isLessThan(10_000);
        assertThatThrownBy(held::join).hasCauseInstanceOf(java.io.UncheckedIOException.class);
    }

    @Test
    void theServersErrorFailsTheCallButKeepsTheLink() throws Exception {
        server = Nbdkit.start(dir.resolve("r.sock"), "--filter=error", "memory", "4M", "error-pread=EIO",
                "error-pread-rate=100%");
        NbdBackingDevice d = client("disk", fast());
        assertThatThrownBy(() -> d.read(0, MemorySegment.ofArray(new byte[4096]))).isInstanceOf(IOException.class)
                .hasMessageContaining("EIO");
        assertThat(d.isUp()).isTrue();
        d.write(0, MemorySegment.ofArray(new byte[4096]), true);
    }

    @Test
    void aWriteThatFailsAfterReturningFailsTheNextFlushOnce() throws Exception {
        // Plain writes return once sent; the server's EIO can only be reported by the next flush.
        server = Nbdkit.start(dir.resolve("r.sock"), "--filter=error", "memory", "4M", "error-pwrite=EIO",
                "error-pwrite-rate=100%");
        NbdBackingDevice d = client("disk", fast());
        d.writeBehind(0, MemorySegment.ofArray(random(8192, 6)));
        byte[] got = new byte[8192];
        d.read(0, MemorySegment.ofArray(got)); // waits for the write's reply: never reads around it
        assertThat(got).isEqualTo(new byte[8192]);
        assertThatThrownBy(d::flush).isInstanceOf(IOException.class).hasMessageContaining("EIO")
                .hasMessageContaining("written again");
        d.flush(); // reported once
        assertThatThrownBy(() -> d.write(0, MemorySegment.ofArray(new byte[4096]), true))
                .isInstanceOf(IOException.class).hasMessageContaining("EIO"); // FUA: waits, so fails itself
        assertThat(d.isUp()).isTrue();
    }

    /**
     * A write behind that fails is reported to the device's own flush (writeback's), once, and to
     * no other flusher: the others flush for writes that wait for their reply, whose failure
     * their write reported itself; nor does the flush standing in for FUA (the server offers
     * none) consume it.
     */
    @Test
    void aWriteBehindThatFailsIsReportedToTheDevicesOwnFlushOnly() throws Exception {
        Path failing = dir.resolve("fail-writes");
        server = Nbdkit.start(dir.resolve("r.sock"), "--filter=error", "--filter=fua", "memory", "4M",
                "error-pwrite=EIO", "error-pwrite-rate=100%", "error-pwrite-file=" + failing); // fua: default fuamode=none (nbdkit 1.32 refuses it spelt out)
        NbdBackingDevice d = client("disk", fast());
        io.pmcache.device.BlockDevice.Flusher direct = d.newFlusher();
        java.nio.file.Files.createFile(failing);
        assertThatThrownBy(() -> d.write(65536, MemorySegment.ofArray(random(4096, 5)), false))
                .as("a write that waits reports its own failure").isInstanceOf(IOException.class)
                .hasMessageContaining("EIO");
        d.writeBehind(0, MemorySegment.ofArray(random(8192, 6)));
        d.read(0, MemorySegment.ofArray(new byte[4096])); // waits for the write's reply
        java.nio.file.Files.delete(failing);
        d.write(65536, MemorySegment.ofArray(random(4096, 7)), true); // FUA: write, then a flush of its own
        direct.flush();
        assertThatThrownBy(d::flush).isInstanceOf(IOException.class).hasMessageContaining("EIO")
                .hasMessageContaining("written again");
        d.flush(); // reported once
    }

    /**
     * A write the cache sends around itself (write-around mode; so too write-through and the
     * sequential cutoff) waits for the remote's reply: one the remote fails fails the client's
     * write, and nothing of it is cached or later reported as written (it was acknowledged, then
     * lost, when it was sent behind).
     */
    @Test
    void aWriteAroundTheCacheThatTheRemoteFailsFailsTheWrite() throws Exception {
        Path failing = dir.resolve("fail-writes");
        server = Nbdkit.start(dir.resolve("r.sock"), "--filter=error", "memory", "8M", "error-pwrite=EIO",
                "error-pwrite-rate=100%", "error-pwrite-file=" + failing);
        try (MappedFileMedium m = MappedFileMedium.create(dir.resolve("cache.img"), 8 << 20);
             NbdBackingDevice backing = client("disk", fast())) {
            Cache.format(m, backing, new FormatOptions(1 << 20, false));
            try (Cache c = Cache.open(m, backing, CacheOptions.defaults().withParallel(1))) {
                for (var mode : new io.pmcache.cache.CacheMode[] {io.pmcache.cache.CacheMode.WRITEAROUND,
                        io.pmcache.cache.CacheMode.WRITETHROUGH}) {
                    c.setCacheMode(mode, left -> { });
                    java.nio.file.Files.createFile(failing);
                    assertThatThrownBy(() -> c.write(1 << 20, MemorySegment.ofArray(random(65536, 9)), false))
                            .as(mode.toString()).isInstanceOf(IOException.class).hasMessageContaining("EIO");
                    java.nio.file.Files.delete(failing);
                    c.flush();
                    byte[] got = new byte[65536];
                    c.read(1 << 20, MemorySegment.ofArray(got));
                    assertThat(got).as("%s: nothing of the failed write is read", mode).isEqualTo(new byte[65536]);
                }
            }
        }
    }

    /**
     * Writes that fail only after returning make every other writeback step look fine (it only
     * wrote); the retries must still back off and a drain (flush-all, detach) must give up, not
     * retry at full speed forever.
     */
    @Test
    void aDrainOverARemoteWhoseWritesFailAfterReturningGivesUp() throws Exception {
        server = Nbdkit.start(dir.resolve("r.sock"), "--filter=error", "memory", "8M", "error-pwrite=EIO",
                "error-pwrite-rate=100%");
        try (MappedFileMedium m = MappedFileMedium.create(dir.resolve("cache.img"), 8 << 20);
             NbdBackingDevice backing = client("disk", fast())) {
            Cache.format(m, backing, new FormatOptions(1 << 20, false));
            try (Cache c = Cache.open(m, backing, CacheOptions.defaults().withParallel(1))) {
                c.write(0, MemorySegment.ofArray(random(65536, 11)), false);
                assertThatThrownBy(() -> c.flushAll(left -> { })).isInstanceOf(IOException.class)
                        .hasMessageContaining("keeps failing").hasMessageContaining("EIO");
                assertThat(c.status().dirtyBytes()).isEqualTo(65536);
            }
        }
    }

    @Test
    void manyWritesInFlightLandInOrderAndAreReadBack() throws Exception {
        // Overlapping writes sent without waiting must land in the order they were made.
        server = Nbdkit.start(dir.resolve("r.sock"), "--filter=delay", "memory", "4M", "delay-write=1ms");
        NbdBackingDevice d = client("disk", fast());
        Random r = new Random(7);
        byte[] model = new byte[4 << 20];
        for (int i = 0; i < 400; i++) {
            int block = r.nextInt(64);
            int blocks = 1 + r.nextInt(8);
            int at = block * 4096;
            int len = Math.min(blocks * 4096, model.length - at);
            byte[] b = random(len, i);
            d.writeBehind(at, MemorySegment.ofArray(b));
            System.arraycopy(b, 0, model, at, len);
        }
        d.flush();
        byte[] got = new byte[model.length];
        d.read(0, MemorySegment.ofArray(got));
        assertThat(MemorySegment.ofArray(got).mismatch(MemorySegment.ofArray(model))).isEqualTo(-1L);
    }

    @Test
    void multiConnIsUsedOnlyWhenOffered() throws Exception {
        server = Nbdkit.start(dir.resolve("r.sock"), "memory", "4M");
        NbdBackingDevice multi = client("a", fast().withConnections(3));
        assertThat(multi.state()).containsEntry("connections", 3);
        multi.close(); // nbdkit waits for its clients when stopped
        server.close();
        server = Nbdkit.start(dir.resolve("r2.sock"), "--filter=multi-conn", "memory", "4M",
                "multi-conn-mode=disable");
        assertThat(client("a", fast().withConnections(3)).state()).containsEntry("connections", 1);
    }

    @Test
    void aReadOnlyExportRefusesWrites() throws Exception {
        server = Nbdkit.start(dir.resolve("r.sock"), "-r", "memory", "4M");
        NbdBackingDevice d = client("disk", fast());
        assertThatThrownBy(() -> d.write(0, MemorySegment.ofArray(new byte[512]), false))
                .isInstanceOf(IOException.class).hasMessageContaining("read-only");
        d.read(0, MemorySegment.ofArray(new byte[512]));
    }

    @Test
    void theCacheRefusesAnotherExportNameOrSize() throws Exception {
        server = Nbdkit.start(dir.resolve("r.sock"), "memory", "8M");
        Path cacheFile = dir.resolve("cache.img");
        try (MappedFileMedium m = MappedFileMedium.create(cacheFile, 8 << 20);
             NbdBackingDevice a = NbdBackingDevice.open(NbdUri.parse(server.uri("volume-a")), fast())) {
            Cache.format(m, a, new FormatOptions(1 << 20, false));
            try (Cache c = Cache.open(m, a, CacheOptions.defaults().withParallel(1))) {
                assertThat(c.size()).isEqualTo(8 << 20);
            }
            try (NbdBackingDevice b = NbdBackingDevice.open(NbdUri.parse(server.uri("volume-b")), fast())) {
                assertThatThrownBy(() -> Cache.open(m, b, CacheOptions.defaults().withParallel(1)))
                        .isInstanceOf(WrongBackingDeviceException.class).hasMessageContaining("volume-b");
            }
        }
        Nbdkit bigger = Nbdkit.start(dir.resolve("r2.sock"), "memory", "16M");
        try (MappedFileMedium m = MappedFileMedium.open(cacheFile);
             NbdBackingDevice sameName = NbdBackingDevice.open(NbdUri.parse(bigger.uri("volume-a")), fast())) {
            assertThatThrownBy(() -> Cache.open(m, sameName, CacheOptions.defaults().withParallel(1)))
                    .isInstanceOf(WrongBackingDeviceException.class);
        } finally {
            bigger.close();
        }
        assertThat(NbdBackingDevice.fingerprintOf("volume-a")).isNotEqualTo(NbdBackingDevice.fingerprintOf("volume-b"))
                .isNotEqualTo(NbdBackingDevice.fingerprintOf(""));
    }

    @Test
    void anUnreachableRemoteFailsTheOpenNamingTheUri() {
        Path missing = dir.resolve("nobody.sock");
        assertThatThrownBy(() -> NbdBackingDevice.open(NbdUri.parse("nbd+unix:///x?socket=" + missing), fast()))
                .isInstanceOf(IOException.class).hasMessageContaining(missing.toString());
    }

    @Test
    void urisMeanWhatLibnbdMakesOfThem() {
        NbdUri tcp = NbdUri.parse("nbd://example.com/disk%20one");
        assertThat(tcp.host()).isEqualTo("example.com");
        assertThat(tcp.port()).isEqualTo(10809);
        assertThat(tcp.exportName()).isEqualTo("disk one");
        assertThat(NbdUri.parse("nbd://[::1]:10810").exportName()).isEmpty();
        assertThat(NbdUri.parse("nbd://[::1]:10810").host()).isEqualTo("::1");
        assertThat(NbdUri.parse("nbd://h/").exportName()).isEmpty();
        assertThat(NbdUri.parse("nbd://h:1234/a/b").exportName()).isEqualTo("a/b");
        NbdUri unix = NbdUri.parse("nbd+unix:///vol?socket=/run/x.sock");
        assertThat(unix.socket()).isEqualTo(Path.of("/run/x.sock"));
        assertThat(unix.exportName()).isEqualTo("vol");
        assertThat(NbdUri.parse("nbd+unix://?socket=/s").exportName()).isEmpty();
        assertThat(NbdUri.isUri("nbd://h/x")).isTrue();
        assertThat(NbdUri.isUri("/var/lib/disk.img")).isFalse();
        assertThat(NbdUri.isUri("relative/nbd:thing")).isFalse();
        assertThat(tcp.tls()).isFalse();
        NbdUri tls = NbdUri.parse("nbds://example.com/vol?tls-certificates=/etc/pki/x&tls-hostname=nbd.example");
        assertThat(tls.tls()).isTrue();
        assertThat(tls.tlsCertificates()).isEqualTo(Path.of("/etc/pki/x"));
        assertThat(tls.tlsVerifyPeer()).isTrue();
        assertThat(tls.certificateHost()).isEqualTo("nbd.example");
        NbdUri tlsUnix = NbdUri.parse("nbds+unix:///vol?socket=/s&tls-verify-peer=false");
        assertThat(tlsUnix.tls()).isTrue();
        assertThat(tlsUnix.tlsVerifyPeer()).isFalse();
        assertThat(tlsUnix.tlsCertificates()).isNull();
        assertThat(tlsUnix.certificateHost()).as("a unix socket has no host name to check").isNull();
        assertThat(NbdUri.parse("nbds://h/x").certificateHost()).isEqualTo("h");

        for (String[] bad : new String[][] {
            {"nbds://h/x?tls-psk-file=/k", "pre-shared keys"}, {"nbds://alice@h/x", "pre-shared key"},
            {"nbds://h/x?tls-verify-peer=maybe", "true or false"}, {"nbds+unix:///x", "socket=PATH"},
            {"nbd://h/x?tls-verify-peer=false", "does not use TLS"}, {"nbd+vsock://1:2/x", "vsock"},
            {"nbd+unix://host/x?socket=/s", "no host"}, {"nbd+unix:///x", "socket=PATH"},
            {"nbd://h/x?socket=/s", "only meaningful"}, {"nbd://h/x?tls-certificates=/d", "nbds://"},
            {"nbd://h/x?foo=1", "unsupported parameter"}, {"nbd:///x", "needs a host"},
            {"http://h/x", "unknown scheme"}, {"nbd://user@h/x", "user name"}}) {
            assertThatThrownBy(() -> NbdUri.parse(bad[0])).as(bad[0]).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining(bad[0]).hasMessageContaining(bad[1]);
        }
    }
}
