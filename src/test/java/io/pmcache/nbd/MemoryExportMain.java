package io.pmcache.nbd;

import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;

/**
 * Serves a RAM-backed device over NBD, to measure the server's transport alone against
 * {@code nbdkit memory} (see {@code bench/nbd-fio.sh}). Test scope: it is a measuring tool, not a
 * product command.
 *
 * <pre>
 * java -cp ... io.pmcache.nbd.MemoryExportMain SOCKET [SIZE_MIB]     (default 1024 MiB)
 * </pre>
 * Prints the NBD URI once ready; stops on SIGTERM/SIGINT.
 */
public final class MemoryExportMain {
    private MemoryExportMain() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1 || args.length > 2) {
            System.err.println("usage: MemoryExportMain SOCKET [SIZE_MIB]");
            System.exit(2);
        }
        long size = (args.length == 2 ? Long.parseLong(args[1]) : 1024) << 20;
        MemoryBlockDevice device = new MemoryBlockDevice(size);
        NbdServer server = NbdServer.builder().device(device).exportName("memory").build();
        server.listenUnix(Path.of(args[0]));
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.close();
            device.close();
            stopped.countDown();
        }));
        System.out.println(server.uri());
        System.out.flush();
        stopped.await();
    }
}
