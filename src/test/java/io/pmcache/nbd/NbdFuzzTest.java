package io.pmcache.nbd;

import static io.pmcache.nbd.NbdConstants.*;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.spi.ThrowableProxyUtil;
import ch.qos.logback.core.AppenderBase;
import com.code_intelligence.jazzer.junit.FuzzTest;
import io.pmcache.testing.FuzzInput;
import io.pmcache.testing.FuzzOutput;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.slf4j.LoggerFactory;

/**
 * Fuzz target: the NBD handshake and request parser, driven through the public server on a unix
 * socket. Each input is what one client sends (optionally after a valid handshake prefix, so the
 * fuzzer starts out in the transmission phase); the client then closes its sending side and reads
 * whatever the server answers until the server closes the connection.
 *
 * <p>The contract: the server answers or closes — the connection ends once the client has stopped
 * sending, within a watchdog's bound; nothing escapes a connection thread (no uncaught exception,
 * no "connection failed unexpectedly" or other ERROR log line from the NBD package); the connection
 * is released (no connection stays active); and a well-behaved client is served right after.
 *
 * <p>Input: mode u8, then the bytes the client sends.
 * <pre>
 *  mode bits 0-1  prefix: 0 none (the fuzzer's bytes start with the client flags), 1 a handshake
 *                 with NBD_OPT_GO, 2 the same after NBD_OPT_STRUCTURED_REPLY and
 *                 NBD_OPT_SET_META_CONTEXT base:allocation, 3 NBD_OPT_EXPORT_NAME
 *  mode bit 2     the device fails every read and write covering byte 8192
 *  mode bit 3     serve read-only
 * </pre>
 * Regression inputs: {@code src/test/resources/io/pmcache/nbd/NbdFuzzTestInputs/clientBytes/}.
 */
class NbdFuzzTest {
    private static final long SIZE = 1 << 20;
    private static final String EXPORT = "disk";
    /** Generous: an exchange takes milliseconds; only a server that neither answers nor closes comes near it. */
    private static final Duration WATCHDOG = Duration.ofSeconds(20);

    private static Path dir;
    private static final MemoryBlockDevice[] devices = new MemoryBlockDevice[2];
    private static final NbdServer[] servers = new NbdServer[2];
    private static final Path[] sockets = new Path[2];
    private static final Queue<String> escaped = new ConcurrentLinkedQueue<>();
    private static Thread.UncaughtExceptionHandler savedHandler;
    private static Logger nbdLog;
    private static AppenderBase<ILoggingEvent> errorLog;
    private static Level savedLevel;

    @BeforeAll
    static void start() throws IOException {
        dir = Files.createTempDirectory("nbd-fuzz");
        for (int i = 0; i < 2; i++) {
            devices[i] = new MemoryBlockDevice(SIZE);
            devices[i].streamWrites(40 << 10); // large WRITEs streamed into the device, as the cache does
            servers[i] = NbdServer.builder().device(devices[i]).exportName(EXPORT).description("fuzz")
                    .readOnly(i == 1).build();
            sockets[i] = dir.resolve("nbd" + i + ".sock");
            servers[i].listenUnix(sockets[i]);
        }
        savedHandler = Thread.getDefaultUncaughtExceptionHandler();
        Thread.setDefaultUncaughtExceptionHandler((t, e) ->
                escaped.add("uncaught in " + t.getName() + ": " + stack(e)));
        // Protocol violations are logged by design (millions while fuzzing); keep only ERRORs, as findings.
        nbdLog = (Logger) LoggerFactory.getLogger("io.pmcache.nbd");
        savedLevel = nbdLog.getLevel();
        errorLog = new AppenderBase<>() {
            @Override
            protected void append(ILoggingEvent e) {
                if (e.getLevel().isGreaterOrEqual(Level.ERROR)) {
                    escaped.add("ERROR logged by " + e.getLoggerName() + " on " + e.getThreadName() + ": "
                            + e.getFormattedMessage()
                            + (e.getThrowableProxy() == null ? "" : "\n" + ThrowableProxyUtil.asString(e.getThrowableProxy())));
                }
            }
        };
        errorLog.setContext(nbdLog.getLoggerContext());
        errorLog.start();
        nbdLog.addAppender(errorLog);
        nbdLog.setAdditive(false);
        nbdLog.setLevel(Level.WARN);
    }

    @AfterAll
    static void stop() throws IOException {
        for (NbdServer s : servers) {
            if (s != null) {
                s.close();
            }
        }
        Thread.setDefaultUncaughtExceptionHandler(savedHandler);
        if (nbdLog != null) {
            nbdLog.detachAppender(errorLog);
            nbdLog.setAdditive(true);
            nbdLog.setLevel(savedLevel);
        }
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }

    @FuzzTest
    void clientBytes(byte[] data) {
        FuzzInput in = new FuzzInput(data);
        int mode = in.u8();
        int which = (mode & 8) != 0 ? 1 : 0;
        byte[] send = concat(prefix(mode & 3), in.rest());
        devices[which].failAt((mode & 4) != 0 ? 8192 : -1);
        escaped.clear();
        assertTimeoutPreemptively(WATCHDOG, () -> session(sockets[which], send),
                "the server neither answered nor closed the connection");
        assertTimeoutPreemptively(WATCHDOG, () -> {
            while (servers[which].stats().snapshot().connectionsActive() > 0) {
                Thread.sleep(1); // the server closed its end: it is finishing the connection
            }
        }, "a connection stayed active after the server closed it");
        if (!escaped.isEmpty()) {
            throw new AssertionError(String.join("\n", escaped));
        }
        devices[which].failAt(-1);
        assertTimeoutPreemptively(WATCHDOG, () -> wellBehaved(sockets[which]),
                "a well-behaved client was not served after the fuzzed one");
    }

    /** Sends {@code send}, closes the sending side, reads until the server closes. */
    private static void session(Path socket, byte[] send) throws Exception {
        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.connect(UnixDomainSocketAddress.of(socket));
            Thread writer = Thread.ofVirtual().start(() -> {
                try {
                    ByteBuffer b = ByteBuffer.wrap(send);
                    while (b.hasRemaining()) {
                        ch.write(b);
                    }
                    ch.shutdownOutput();
                } catch (IOException closedByServer) {
                    // the server may close before reading everything: that is allowed
                }
            });
            ByteBuffer sink = ByteBuffer.allocate(64 << 10);
            try {
                while (ch.read(sink.clear()) >= 0) {
                    // replies are not checked here; the server's own tests do that
                }
            } catch (IOException reset) {
                // a close with unread data resets the connection: a close all the same
            }
            writer.join();
        }
    }

    /** A client that follows the protocol: handshake, one read, one write, disconnect. */
    private static void wellBehaved(Path socket) throws IOException {
        try (NbdTestClient c = NbdTestClient.connect(socket)) {
            c.greet(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
            c.option(NBD_OPT_GO, NbdTestClient.infoData(EXPORT, new int[0]));
            NbdTestClient.OptionReply r;
            while ((r = c.readOptionReply()).type() == NBD_REP_INFO) {
                // export size, flags, block sizes
            }
            if (r.type() != NBD_REP_ACK) {
                throw new AssertionError("NBD_OPT_GO answered " + r.type() + ": " + r.text());
            }
            c.read(1, 0, 4096);
            c.disconnect();
        }
    }

    // ------------------------------------------------------------------ inputs

    /** The bytes a valid client sends before the fuzzer's: see the class comment. */
    static byte[] prefix(int kind) {
        FuzzOutput o = new FuzzOutput();
        if (kind == 0) {
            return o.toByteArray();
        }
        beInt(o, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
        switch (kind) {
            case 1 -> option(o, NBD_OPT_GO, NbdTestClient.infoData(EXPORT, new int[] {NBD_INFO_BLOCK_SIZE}));
            case 2 -> {
                option(o, NBD_OPT_STRUCTURED_REPLY, new byte[0]);
                option(o, NBD_OPT_SET_META_CONTEXT, NbdTestClient.metaContextData(EXPORT, BASE_ALLOCATION));
                option(o, NBD_OPT_GO, NbdTestClient.infoData(EXPORT, new int[0]));
            }
            default -> option(o, NBD_OPT_EXPORT_NAME, EXPORT.getBytes(StandardCharsets.UTF_8));
        }
        return o.toByteArray();
    }

    /** NBD is big-endian; {@link FuzzOutput} little-endian: fields are written byte by byte here. */
    private static void beInt(FuzzOutput o, int v) {
        o.u8(v >>> 24).u8(v >>> 16).u8(v >>> 8).u8(v);
    }

    private static void beLong(FuzzOutput o, long v) {
        beInt(o, (int) (v >>> 32));
        beInt(o, (int) v);
    }

    private static void beShort(FuzzOutput o, int v) {
        o.u8(v >>> 8).u8(v);
    }

    static void option(FuzzOutput o, int option, byte[] data) {
        beLong(o, IHAVEOPT);
        beInt(o, option);
        beInt(o, data.length);
        o.bytes(data);
    }

    static void request(FuzzOutput o, int flags, int type, long handle, long offset, int length, byte[] payload) {
        beInt(o, NBD_REQUEST_MAGIC);
        beShort(o, flags);
        beShort(o, type);
        beLong(o, handle);
        beLong(o, offset);
        beInt(o, length);
        if (payload != null) {
            o.bytes(payload);
        }
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    private static String stack(Throwable e) {
        java.io.StringWriter w = new java.io.StringWriter();
        e.printStackTrace(new java.io.PrintWriter(w));
        return w.toString();
    }

    /** Writes the seed inputs into {@code args[0]} (the target's inputs directory). */
    public static void main(String[] args) throws IOException {
        Path out = Path.of(args[0]);
        Files.createDirectories(out);
        byte[] sector = new byte[512];
        Arrays.fill(sector, (byte) 0x5a);
        // Every command after a plain GO, then DISC.
        FuzzOutput all = new FuzzOutput().u8(1);
        request(all, 0, NBD_CMD_READ, 1, 0, 4096, null);
        request(all, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 2, 4096, 512, sector);
        request(all, 0, NBD_CMD_FLUSH, 3, 0, 0, null);
        request(all, 0, NBD_CMD_TRIM, 4, 8192, 4096, null);
        request(all, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE_ZEROES, 5, 16384, 8192, null);
        request(all, 0, NBD_CMD_CACHE, 6, 0, 65536, null);
        request(all, 0, NBD_CMD_READ, 7, SIZE - 512, 1024, null); // past the end: EINVAL
        request(all, 0, NBD_CMD_DISC, 8, 0, 0, null);
        Files.write(out.resolve("seed-go-every-command"), all.toByteArray());
        // Structured replies with base:allocation: a read (over a failing block), block status, DISC.
        FuzzOutput structured = new FuzzOutput().u8(2 | 4);
        request(structured, NBD_CMD_FLAG_DF, NBD_CMD_READ, 1, 0, 16384, null);
        request(structured, NBD_CMD_FLAG_REQ_ONE, NBD_CMD_BLOCK_STATUS, 2, 0, 65536, null);
        request(structured, 0, NBD_CMD_DISC, 3, 0, 0, null);
        Files.write(out.resolve("seed-structured-block-status"), structured.toByteArray());
        // NBD_OPT_EXPORT_NAME on the read-only server: a refused write, a read.
        FuzzOutput exportName = new FuzzOutput().u8(3 | 8);
        request(exportName, 0, NBD_CMD_WRITE, 1, 0, 512, sector);
        request(exportName, 0, NBD_CMD_READ, 2, 0, 512, null);
        Files.write(out.resolve("seed-export-name-read-only"), exportName.toByteArray());
        // The whole handshake by the fuzzer: every option, then ABORT.
        FuzzOutput options = new FuzzOutput().u8(0);
        beInt(options, NBD_FLAG_C_FIXED_NEWSTYLE);
        option(options, NBD_OPT_LIST, new byte[0]);
        option(options, NBD_OPT_INFO, NbdTestClient.infoData(EXPORT,
                new int[] {NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE}));
        option(options, NBD_OPT_INFO, NbdTestClient.infoData("nope", new int[0]));
        option(options, NBD_OPT_LIST_META_CONTEXT, NbdTestClient.metaContextData(EXPORT, "base:"));
        option(options, NBD_OPT_STRUCTURED_REPLY, new byte[0]);
        option(options, NBD_OPT_LIST_META_CONTEXT, NbdTestClient.metaContextData(EXPORT, "base:"));
        option(options, NBD_OPT_SET_META_CONTEXT, NbdTestClient.metaContextData(EXPORT, BASE_ALLOCATION, "x:y"));
        option(options, NBD_OPT_STARTTLS, new byte[0]);
        option(options, 0x7777, new byte[] {1, 2, 3});
        option(options, NBD_OPT_ABORT, new byte[0]);
        Files.write(out.resolve("seed-every-option"), options.toByteArray());
        // The whole handshake by the fuzzer, then GO and a pipelined burst of reads and writes.
        FuzzOutput go = new FuzzOutput().u8(0);
        beInt(go, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
        option(go, NBD_OPT_GO, NbdTestClient.infoData("", new int[] {NBD_INFO_EXPORT}));
        for (int i = 0; i < 8; i++) {
            request(go, 0, NBD_CMD_WRITE, 10 + i, i * 512L, 512, sector);
            request(go, 0, NBD_CMD_READ, 20 + i, i * 512L, 512, null);
        }
        Files.write(out.resolve("seed-handshake-and-pipeline"), go.toByteArray());
        // A request with a bad magic after GO: the server closes.
        FuzzOutput bad = new FuzzOutput().u8(1);
        beInt(bad, 0x12345678);
        Files.write(out.resolve("seed-bad-request-magic"), bad.toByteArray());
    }
}
