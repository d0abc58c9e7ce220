package io.pmcache.backing;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the NBD backing-device tests share: an nbdkit {@link #server} on a unix socket in a temp
 * dir, the devices a test opens (closed after it, then the server), and small helpers.
 */
abstract class RemoteDeviceTest {
    @TempDir
    Path dir;
    final List<AutoCloseable> cleanups = new ArrayList<>();
    Nbdkit server;

    @AfterEach
    void closeDevicesThenServer() throws Exception {
        for (AutoCloseable c : cleanups.reversed()) {
            c.close();
        }
        if (server != null) {
            server.close();
        }
    }

    /** Opens {@code uri} with quick reconnection attempts; closed after the test. */
    NbdBackingDevice open(String uri, NbdClientOptions options) throws IOException {
        NbdBackingDevice d = NbdBackingDevice.open(NbdUri.parse(uri), options);
        cleanups.add(d);
        return d;
    }

    /** Reconnection every 20 ms up to 200 ms apart: outages in tests end quickly. */
    static NbdClientOptions fast() {
        return NbdClientOptions.defaults().withReconnect(Duration.ofMillis(20), Duration.ofMillis(200));
    }

    /** A sparse image file of {@code size} bytes for nbdkit's file plugin. */
    Path image(long size) throws IOException {
        Path img = dir.resolve("remote.img");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(size);
        }
        return img;
    }

    /** Waits (bounded) for a state of the device: not a sleep standing in for synchronisation. */
    static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("not " + what + " within 60 s");
            }
            Thread.sleep(10);
        }
    }

    static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }
}
