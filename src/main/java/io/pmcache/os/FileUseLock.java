package io.pmcache.os;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * An advisory lock that says "a pmcache process uses this file": {@link Mode#EXCLUSIVE} for a
 * writer (a served or detached cache, a cache being formatted, the backing file a cache writes
 * back into), {@link Mode#SHARED} for a reader that must not run while a writer does (offline
 * {@code check} and {@code status}). Readers exclude writers and writers exclude everyone; readers
 * do not exclude each other. Taking a lock never waits: a conflict is a {@link FileInUseException}.
 *
 * <p>It is a {@code flock(2)} on a file descriptor opened only for the lock and kept open until
 * {@link #close()}. flock belongs to the open file description, not to the process, so unlike the
 * POSIX record locks behind {@link FileChannel#tryLock()} it is not dropped when this process
 * happens to open and close the same file through another descriptor (a {@code Files.size}, a
 * {@code RandomAccessFile} resize, a FileChannel reopened after an interrupt), and two openers in
 * one process conflict like two processes do. The kernel drops it when the process dies, so a
 * {@code kill -9} leaves no stale lock. It works on tmpfs ({@code /dev/shm}), ext4, xfs, DAX
 * filesystems and device nodes; on NFS the kernel emulates flock with POSIX locks. Locking the
 * mapped file itself is fine: advisory locks do not affect the mapping. Without flock (a non-Linux
 * OS) it falls back to {@link FileChannel#tryLock}, with the POSIX caveat above.
 *
 * <p>After locking, the lock checks that the path still names the locked file (someone may have
 * replaced it between the open and the lock) and retries on the new file if not.
 */
public final class FileUseLock implements AutoCloseable {

    /** Shared for read-only tools, exclusive for writers. */
    public enum Mode { SHARED, EXCLUSIVE }

    private static final int ATTEMPTS = 5;

    private final Path path;
    private final Mode mode;
    private final int fd;
    private final FileChannel channel;
    private final FileLock channelLock;
    private final AtomicBoolean released = new AtomicBoolean();

    private FileUseLock(Path path, Mode mode, int fd, FileChannel channel, FileLock channelLock) {
        this.path = path;
        this.mode = mode;
        this.fd = fd;
        this.channel = channel;
        this.channelLock = channelLock;
    }

    /**
     * Takes the lock on {@code file}, which must exist, without waiting.
     *
     * @param what names the file in messages, e.g. "cache file"
     * @throws FileInUseException when another holder's lock conflicts with {@code mode}
     */
    public static FileUseLock acquire(Path file, Mode mode, String what) throws IOException {
        Objects.requireNonNull(mode, "mode");
        if (!Files.exists(file)) {
            throw new NoSuchFileException(file.toString(), null, what + " does not exist");
        }
        for (int attempt = 1; ; attempt++) {
            FileUseLock lock = LinuxFiles.FLOCK_AVAILABLE ? flock(file, mode, what) : channelLock(file, mode, what);
            if (lock.stillNamesTheLockedFile()) {
                return lock;
            }
            lock.close(); // the path was replaced between our open and our lock: lock the new file
            if (attempt == ATTEMPTS) {
                throw new FileInUseException(what + " " + file + " keeps being replaced while pmcache locks it; "
                        + "is another program recreating it?");
            }
        }
    }

    private static FileUseLock flock(Path file, Mode mode, String what) throws IOException {
        int fd = LinuxFiles.openReadOnly(file);
        boolean ok = false;
        try {
            if (!LinuxFiles.tryFlock(fd, mode == Mode.EXCLUSIVE ? LinuxFiles.LOCK_EX : LinuxFiles.LOCK_SH, file)) {
                throw FileInUseException.of(file, mode, what);
            }
            ok = true;
            return new FileUseLock(file, mode, fd, null, null);
        } finally {
            if (!ok) {
                LinuxFiles.close(fd, file);
            }
        }
    }

    private static FileUseLock channelLock(Path file, Mode mode, String what) throws IOException {
        FileChannel ch = mode == Mode.SHARED ? FileChannel.open(file, StandardOpenOption.READ)
                : FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
        boolean ok = false;
        try {
            FileLock l;
            try {
                l = ch.tryLock(0, Long.MAX_VALUE, mode == Mode.SHARED);
            } catch (OverlappingFileLockException sameProcess) {
                l = null;
            }
            if (l == null) {
                throw FileInUseException.of(file, mode, what);
            }
            ok = true;
            return new FileUseLock(file, mode, -1, ch, l);
        } finally {
            if (!ok) {
                ch.close();
            }
        }
    }

    /** True unless the path now names another file than the one locked (or /proc cannot tell). */
    private boolean stillNamesTheLockedFile() {
        if (fd < 0) {
            return true;
        }
        try {
            Map<String, Object> locked = Files.readAttributes(Path.of("/proc/self/fd/" + fd), "unix:dev,ino");
            Map<String, Object> named = Files.readAttributes(path, "unix:dev,ino");
            return locked.equals(named);
        } catch (NoSuchFileException gone) {
            return false;
        } catch (IOException | UnsupportedOperationException cannotTell) {
            return true;
        }
    }

    public Path path() {
        return path;
    }

    public Mode mode() {
        return mode;
    }

    /** True until {@link #close()}. */
    public boolean isHeld() {
        return !released.get();
    }

    /** Releases the lock (idempotent). */
    @Override
    public void close() throws IOException {
        if (!released.compareAndSet(false, true)) {
            return;
        }
        if (fd >= 0) {
            LinuxFiles.close(fd, path); // closing the only descriptor of the description drops the flock
        } else {
            try {
                channelLock.release();
            } finally {
                channel.close();
            }
        }
    }

    @Override
    public String toString() {
        return "FileUseLock[" + path + ", " + mode + (isHeld() ? "" : ", released") + "]";
    }
}
