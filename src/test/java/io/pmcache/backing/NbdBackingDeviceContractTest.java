package io.pmcache.backing;

import io.pmcache.device.BlockDevice;
import io.pmcache.device.BlockDeviceContractTest;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

/**
 * The NBD client backing device behaves like a disk: against {@code nbdkit memory} on a unix
 * socket (structured replies, multi-conn, write-zeroes, minimum block size 1). Subclasses run the
 * same suite against servers with other properties.
 */
class NbdBackingDeviceContractTest extends BlockDeviceContractTest {
    private final AtomicInteger servers = new AtomicInteger();
    private final List<Nbdkit> started = new ArrayList<>();
    private final List<NbdBackingDevice> clients = new ArrayList<>();
    @TempDir
    Path dir;

    @BeforeEach
    void needNbdkit() {
        Nbdkit.require();
    }

    /** The nbdkit arguments for a device of {@code size} bytes. */
    protected String[] server(long size) {
        return new String[] {"memory", String.valueOf(size)};
    }

    /** The URI the client opens for server {@code k}. */
    protected String uri(Nbdkit k) {
        return k.uri("disk");
    }

    protected NbdClientOptions options() {
        return NbdClientOptions.defaults();
    }

    @Override
    protected BlockDevice newDevice(long size) throws IOException {
        try {
            Nbdkit k = Nbdkit.start(dir.resolve("nbd-" + servers.incrementAndGet() + ".sock"), server(size));
            started.add(k);
            return track(NbdBackingDevice.open(NbdUri.parse(uri(k)), options()));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
    }

    @Override
    protected BlockDevice reopen(BlockDevice device) throws IOException {
        NbdBackingDevice d = (NbdBackingDevice) device;
        d.close();
        return track(NbdBackingDevice.open(d.uri(), options()));
    }

    private NbdBackingDevice track(NbdBackingDevice d) {
        clients.add(d);
        return d;
    }

    @AfterEach
    void stopServers() throws Exception {
        for (NbdBackingDevice d : clients) {
            d.close(); // before the server: nbdkit waits for its clients on SIGTERM
        }
        clients.clear();
        for (Nbdkit k : started) {
            k.close();
        }
        started.clear();
    }
}
