package io.pmcache.nbd;

import java.io.IOException;
import java.net.ConnectException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Creates a listening unix socket file with mode 0600.
 *
 * <p>An existing file at the path is replaced only if it is a socket nobody answers on (left by a
 * crashed server); a live socket or any other kind of file is refused with an error that says so.
 * To have no moment where the socket is reachable with wider permissions, it is bound under a
 * temporary name in the same directory, chmod-ed, then renamed into place.
 */
final class UnixSocketFile {
    private static final Logger log = LoggerFactory.getLogger(UnixSocketFile.class);
    private static final int S_IFMT = 0170000;
    private static final int S_IFSOCK = 0140000;
    private static final AtomicInteger sequence = new AtomicInteger();

    private UnixSocketFile() {
    }

    static ServerSocketChannel bind(Path path) throws IOException {
        Path socket = path.toAbsolutePath();
        if (Files.exists(socket, LinkOption.NOFOLLOW_LINKS)) {
            if (!isSocket(socket)) {
                throw new FileAlreadyExistsException(socket.toString(), null,
                        "exists and is not a socket; refusing to replace it");
            }
            if (answers(socket)) {
                throw new IOException("another server is already listening on " + socket);
            }
            Files.delete(socket);
            log.info("replaced stale socket {}", socket);
        }
        Path tmp = socket.resolveSibling(".nbd-" + ProcessHandle.current().pid() + "-" + sequence.incrementAndGet());
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            try {
                server.bind(UnixDomainSocketAddress.of(tmp));
            } catch (java.net.SocketException e) {
                // The JDK's message is the C library's alone ("No such file or directory"): name the socket.
                throw new IOException("cannot create the unix socket " + socket + ": " + e.getMessage(), e);
            }
            Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rw-------"));
            Files.move(tmp, socket, StandardCopyOption.ATOMIC_MOVE);
            return server;
        } catch (IOException | RuntimeException e) {
            server.close();
            Files.deleteIfExists(tmp);
            throw e;
        }
    }

    private static boolean isSocket(Path p) throws IOException {
        Object mode = Files.getAttribute(p, "unix:mode", LinkOption.NOFOLLOW_LINKS);
        return mode instanceof Integer m && (m & S_IFMT) == S_IFSOCK;
    }

    private static boolean answers(Path p) throws IOException {
        try (SocketChannel probe = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            probe.connect(UnixDomainSocketAddress.of(p));
            return true;
        } catch (ConnectException e) {
            return false;
        }
    }
}
