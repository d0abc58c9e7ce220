package io.pmcache.cli;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * Checks a command makes before it creates, opens or replays anything: that each file it will
 * use can be used as asked, so that a mistake costs a second, not a replay, and leaves nothing
 * behind. Each failure is one line naming the file, its role and the reason. The checks are
 * {@code access(2)}-style and so advisory: the real open still reports what changed meanwhile.
 */
final class Preflight {
    private Preflight() {
    }

    /**
     * A file the command reads ({@code write} false) or reads and writes; when it does not exist
     * and {@code createIfMissing}, its directory must allow creating it.
     */
    static void file(Path file, String role, boolean write, boolean createIfMissing) throws IOException {
        if (!Files.exists(file)) {
            if (createIfMissing) {
                directoryFor(file, role);
            }
            return; // else the open says it is missing, and how to create it
        }
        if (!Files.isReadable(file)) {
            throw new AccessDeniedException(file.toString(), null, role + ": permission denied (cannot read it)");
        }
        if (write && !Files.isWritable(file)) {
            throw new AccessDeniedException(file.toString(), null, role
                    + " is read-only for this process (permission denied); pmcache writes to it: make it writable"
                    + " or run as a user who may write it");
        }
    }

    /** As {@link #file(Path, String, boolean, boolean)} for {@code --backing}; an NBD URI has no file to check. */
    static void file(String backing, String role, boolean write, boolean createIfMissing) throws IOException {
        if (!io.pmcache.backing.NbdUri.isUri(backing)) {
            file(Path.of(backing), role, write, createIfMissing);
        }
    }

    /** A unix socket path: its directory must exist and allow creating the socket. */
    static void socket(Path socket) throws IOException {
        directoryFor(socket.toAbsolutePath(), "socket (--socket)");
        if (Files.isDirectory(socket, LinkOption.NOFOLLOW_LINKS)) {
            throw new IOException("socket path " + socket + " is a directory; give the path of the socket file "
                    + "to create, e.g. " + socket.resolve("pmcache.sock"));
        }
    }

    /**
     * A TCP address the command will listen on is free now (bound and released at once; a
     * server that takes it meanwhile still makes the real bind fail).
     */
    static void tcpAddress(java.net.InetSocketAddress address, String option) throws IOException {
        try (java.net.ServerSocket probe = new java.net.ServerSocket()) {
            probe.setReuseAddress(true);
            probe.bind(address);
        } catch (IOException e) {
            throw new IOException("cannot listen on " + address.getHostString() + ":" + address.getPort() + " ("
                    + option + "): " + e.getMessage() + (e instanceof java.net.BindException
                    ? "; is another pmcache or program using that port?" : ""), e);
        }
    }

    private static void directoryFor(Path file, String role) throws IOException {
        Path dir = file.toAbsolutePath().getParent();
        if (dir == null) {
            return;
        }
        if (!Files.exists(dir)) {
            throw new NoSuchFileException(dir.toString(), null, "directory of the " + role + " " + file
                    + " does not exist; create it first (mkdir -p " + dir + ")");
        }
        if (!Files.isDirectory(dir)) {
            throw new IOException(dir + ", the parent of the " + role + " " + file + ", is not a directory");
        }
        if (!Files.isWritable(dir) || !Files.isExecutable(dir)) {
            throw new AccessDeniedException(dir.toString(), null, "cannot create the " + role + " " + file
                    + " here: permission denied");
        }
    }
}
