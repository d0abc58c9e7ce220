package io.pmcache.media;

import io.pmcache.os.FileInUseException;
import io.pmcache.os.FileUseLock;
import io.pmcache.os.LinuxFiles;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A {@link Medium} backed by a memory-mapped file: a file on a DAX (pmem) filesystem, a
 * {@code /dev/dax} character device, a file in {@code /dev/shm}, or a plain file on any disk.
 *
 * <p>Mapping mode: {@code ExtendedMapMode.READ_WRITE_SYNC} ({@code MAP_SYNC}) is tried first. It
 * only succeeds on DAX, where {@link #persist} writes back CPU cache lines and no msync is needed.
 * Anywhere else the kernel refuses it and the file is mapped {@code READ_WRITE}; {@link #persist}
 * is then an msync of the pages covering the range — except on tmpfs, where the mapped pages are
 * the file and there is nothing to write back (msync returns having done nothing, after a system
 * call of a few microseconds; a power loss loses the whole file either way, and a process crash
 * nothing), so {@link #persist} only checks its range.
 *
 * <p>Invariants: the mapping covers exactly {@code [0, size)} of the file (size need not be a
 * multiple of the page size) and is never remapped or resized; the file must not be truncated by
 * anyone while mapped (access past the new end would fault). The mapping lives in a shared arena,
 * so {@link #segment()} may be used from any thread until {@link #close()}.
 *
 * <p>Exclusive use: while mapped, the file is locked with a {@link FileUseLock}: exclusively when
 * mapped read-write, shared when mapped read-only. So a cache file is never mapped for writing by
 * two openers at once (two processes, or two openers in one process), and read-only tools never
 * read it while a writer runs; a conflicting open fails with {@link FileInUseException}. The lock
 * is released by {@link #close()}, after the unmap. The overloads taking a {@code FileUseLock} map
 * under a lock the caller already holds (and keeps; the medium neither takes nor releases one).
 */
public final class MappedFileMedium implements Medium {

    private final Path path;
    private final long size;
    private final boolean sync;
    /** On tmpfs: {@link #persist} has nothing to write back. */
    private final boolean tmpfs;
    private final boolean readOnly;
    private final Arena arena;
    private final MemorySegment segment;
    private volatile boolean locked;
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(MappedFileMedium.class);
    /** The file-use lock this medium took and releases at close; null when the caller holds one. */
    private final FileUseLock ownLock;
    private final AtomicBoolean closed = new AtomicBoolean();

    /**
     * On tmpfs only, and best effort: keeps the mapping resident with {@code mlock}, so a cache on
     * tmpfs (already held in RAM) is never swapped out. Not elsewhere: on a disk file system it
     * would pin the whole file in the page cache (more than the RAM for a large cache), and on
     * DAX there is nothing to keep. Without the privilege or memlock limit it stays unlocked.
     */
    private void lockResident() {
        if (!LinuxFiles.AVAILABLE || !tmpfs) {
            return;
        }
        int errno = LinuxFiles.mlock(segment);
        locked = errno == 0;
        if (!locked) {
            LOG.info("{}: not locked in memory (mlock: {}); raise the memlock limit (ulimit -l) to keep "
                    + "its pages from being swapped out", path, LinuxFiles.errnoName(errno));
        }
    }

    private static boolean onTmpfs(Path file) {
        try {
            return "tmpfs".equals(Files.getFileStore(file).type());
        } catch (IOException e) {
            return false;
        }
    }

    private MappedFileMedium(Path path, long size, boolean sync, boolean readOnly, Arena arena,
                             MemorySegment segment, FileUseLock ownLock) {
        this.path = path;
        this.size = size;
        this.sync = sync;
        this.tmpfs = onTmpfs(path);
        this.readOnly = readOnly;
        this.arena = arena;
        this.segment = segment;
        this.ownLock = ownLock;
    }

    private static final String WHAT = "cache file";

    /** The caller's lock when it holds a fitting one, else a new lock (owned by the medium). */
    private static FileUseLock lockFor(Path file, FileUseLock held, boolean write) throws IOException {
        if (held == null) {
            return FileUseLock.acquire(file, write ? FileUseLock.Mode.EXCLUSIVE : FileUseLock.Mode.SHARED, WHAT);
        }
        if (!held.isHeld() || (write && held.mode() != FileUseLock.Mode.EXCLUSIVE)
                || !Files.isSameFile(held.path(), file)) {
            throw new IllegalArgumentException(held + " does not allow mapping " + file
                    + (write ? " read-write" : " read-only"));
        }
        return null;
    }

    private static void release(FileUseLock own, Throwable failure) {
        if (own != null) {
            try {
                own.close();
            } catch (IOException e) {
                failure.addSuppressed(e);
            }
        }
    }

    /**
     * Creates a new zero-filled file of {@code size} bytes, allocates all of it, and maps it.
     *
     * @throws FileAlreadyExistsException if {@code file} exists: an existing file is never truncated
     */
    public static MappedFileMedium create(Path file, long size) throws IOException {
        checkSize(file, size);
        FileChannel ch;
        try {
            ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.READ, StandardOpenOption.WRITE);
        } catch (FileAlreadyExistsException e) {
            throw new FileAlreadyExistsException(file.toString(), null,
                    "refusing to create a cache medium over an existing file");
        }
        FileUseLock own;
        try {
            own = FileUseLock.acquire(file, FileUseLock.Mode.EXCLUSIVE, WHAT);
        } catch (IOException | RuntimeException e) {
            ch.close(); // someone else holds the file we created: it is theirs now, leave it
            throw e;
        }
        try (ch) {
            try (var raf = new RandomAccessFile(file.toFile(), "rw")) {
                raf.setLength(size);
            }
            allocate(file, ch, size);
            return map(file, ch, size, own);
        } catch (IOException | RuntimeException e) {
            try {
                Files.deleteIfExists(file);
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            release(own, e);
            throw e;
        }
    }

    /**
     * Allocates every block of a new file now ({@code fallocate}, else by writing zeros). A store
     * into an unallocated page of a shared mapping on a full file system or tmpfs kills the
     * process with SIGBUS; and on tmpfs, first-touch page faults would slow the first pass over
     * the cache. Fails with a clear message when the space is not there.
     */
    private static void allocate(Path file, FileChannel ch, long size) throws IOException {
        try {
            if (LinuxFiles.AVAILABLE) {
                int fd = LinuxFiles.openReadWrite(file);
                try {
                    LinuxFiles.fallocate(fd, 0, 0, size, file);
                    return;
                } catch (LinuxFiles.ErrnoException e) {
                    if (!LinuxFiles.isUnsupported(e.errno)) {
                        throw e;
                    }
                } finally {
                    LinuxFiles.close(fd, file);
                }
            }
            ByteBuffer zeros = ByteBuffer.allocateDirect(1 << 20);
            for (long pos = 0; pos < size; ) {
                zeros.clear().limit((int) Math.min(zeros.capacity(), size - pos));
                pos += ch.write(zeros, pos);
            }
            ch.force(false);
        } catch (IOException e) {
            throw new IOException(file + ": cannot allocate " + size + " bytes for the cache medium ("
                    + e.getMessage() + "); is there enough space on its file system?", e);
        }
    }

    /**
     * Maps all of an existing regular file or block device; its current size is the medium size.
     *
     * @throws FileInUseException when another opener uses the file
     */
    public static MappedFileMedium open(Path file) throws IOException {
        return open(file, (FileUseLock) null);
    }

    /** {@link #open(Path)} under an exclusive lock the caller holds (null: take one). */
    public static MappedFileMedium open(Path file, FileUseLock held) throws IOException {
        checkMappable(file, false);
        FileUseLock own = lockFor(file, held, true);
        try (FileChannel ch = openChannel(file)) {
            long size = ch.size();
            if (size <= 0) {
                throw new IOException(file + ": is empty (size " + size + "); nothing to map");
            }
            return map(file, ch, size, own);
        } catch (IOException | RuntimeException e) {
            release(own, e);
            throw e;
        }
    }

    /**
     * Maps the first {@code size} bytes of an existing file or device. Unlike {@link #open(Path)}
     * this also accepts character devices such as {@code /dev/dax0.0}, whose size the OS does not
     * report; for a regular file or block device it checks that the file holds {@code size} bytes.
     */
    public static MappedFileMedium open(Path file, long size) throws IOException {
        return open(file, size, (FileUseLock) null);
    }

    /** {@link #open(Path, long)} under an exclusive lock the caller holds (null: take one). */
    public static MappedFileMedium open(Path file, long size, FileUseLock held) throws IOException {
        checkSize(file, size);
        boolean regularOrBlock = checkMappable(file, true);
        FileUseLock own = lockFor(file, held, true);
        try (FileChannel ch = openChannel(file)) {
            if (regularOrBlock && ch.size() < size) {
                throw new IOException(file + ": too small for the medium: it holds " + ch.size()
                        + " bytes, " + size + " needed");
            }
            return map(file, ch, size, own);
        } catch (IOException | RuntimeException e) {
            release(own, e);
            throw e;
        }
    }

    /**
     * Maps all of an existing regular file or block device READ_ONLY, for tools that must never
     * modify a cache (offline status and check). Any store into {@link #segment()} fails, and
     * {@link #persist} refuses. Takes a shared lock: other readers may map it too, no writer may.
     *
     * @throws FileInUseException when a writer uses the file
     */
    public static MappedFileMedium openReadOnly(Path file) throws IOException {
        return openReadOnly(file, null);
    }

    /** {@link #openReadOnly(Path)} under a lock the caller holds (null: take a shared one). */
    public static MappedFileMedium openReadOnly(Path file, FileUseLock held) throws IOException {
        checkMappable(file, false);
        FileUseLock own = lockFor(file, held, false);
        FileChannel ch;
        try {
            ch = FileChannel.open(file, StandardOpenOption.READ);
        } catch (NoSuchFileException e) {
            NoSuchFileException gone = new NoSuchFileException(file.toString(), null, "cache medium does not exist");
            release(own, gone);
            throw gone;
        }
        try (ch) {
            long size = ch.size();
            if (size <= 0) {
                throw new IOException(file + ": is empty (size " + size + "); nothing to map");
            }
            Arena arena = Arena.ofShared();
            try {
                MemorySegment seg = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
                return new MappedFileMedium(file, size, false, true, arena, seg, own);
            } catch (IOException | RuntimeException e) {
                arena.close();
                throw new IOException(file + ": cannot map " + size + " bytes read-only: " + e.getMessage(), e);
            }
        } catch (IOException | RuntimeException e) {
            release(own, e);
            throw e;
        }
    }

    /** {@link #create} when {@code create}, else {@link #open(Path, long)}. */
    public static MappedFileMedium open(Path file, long size, boolean create) throws IOException {
        return create ? create(file, size) : open(file, size);
    }

    /** True when mapped read-only ({@link #openReadOnly}). */
    public boolean isReadOnly() {
        return readOnly;
    }

    /** True when mapped {@code READ_WRITE_SYNC} (DAX): persist writes back cache lines, no msync. */
    public boolean isSyncMapping() {
        return sync;
    }

    /** The mapped file. */
    public Path path() {
        return path;
    }

    @Override
    public MemorySegment segment() {
        return segment;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public void persist(long offset, long length) {
        Objects.checkFromIndexSize(offset, length, size);
        if (readOnly) {
            throw new UnsupportedOperationException(path + " is mapped read-only");
        }
        if (length == 0 || tmpfs) {
            return;
        }
        segment.asSlice(offset, length).force();
    }

    @Override
    public String describe() {
        return path + " (" + size + " bytes, mapped " + (readOnly ? "READ_ONLY"
                : sync ? "READ_WRITE_SYNC/DAX" : tmpfs ? "READ_WRITE/tmpfs, nothing to write back" : "READ_WRITE/msync")
                + (locked ? ", locked" : "") + ")";
    }

    /**
     * Unmaps, then releases the file's lock if this medium took it. A mapping another thread still
     * holds (an NIO call on a view of it in progress, or an acquire left behind by a SIGBUS, which
     * the JVM raises asynchronously and which can strike inside the JDK's acquire) cannot be
     * unmapped: it is left to the process's exit, still valid for its holder, and said in a WARN.
     */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            try {
                arena.close();
            } catch (IllegalStateException held) {
                LOG.warn("{}: not unmapped, it is still held ({}); the mapping stays until the process exits",
                        describe(), held.getMessage());
            }
            if (ownLock != null) {
                try {
                    ownLock.close();
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(path + ": cannot release the lock: " + e.getMessage(), e);
                }
            }
        }
    }

    @Override
    public String toString() {
        return "MappedFileMedium[" + describe() + "]";
    }

    private static MappedFileMedium map(Path file, FileChannel ch, long size, FileUseLock own) throws IOException {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment seg;
            boolean sync;
            try {
                seg = ch.map(jdk.nio.mapmode.ExtendedMapMode.READ_WRITE_SYNC, 0, size, arena);
                sync = true;
            } catch (IOException | UnsupportedOperationException notDax) {
                seg = ch.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
                sync = false;
            }
            MappedFileMedium m = new MappedFileMedium(file, size, sync, false, arena, seg, own);
            m.lockResident();
            return m;
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw new IOException(file + ": cannot map " + size + " bytes: " + e.getMessage(), e);
        }
    }

    private static FileChannel openChannel(Path file) throws IOException {
        try {
            return FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
        } catch (NoSuchFileException e) {
            throw new NoSuchFileException(file.toString(), null, "cache medium does not exist");
        }
    }

    private static void checkSize(Path file, long size) {
        if (size <= 0) {
            throw new IllegalArgumentException(file + ": medium size must be positive, got " + size);
        }
    }

    /**
     * Fails unless {@code file} is a regular file, a block device or (when {@code allowCharDevice})
     * a character device. Returns true for a regular file or block device.
     */
    private static boolean checkMappable(Path file, boolean allowCharDevice) throws IOException {
        if (!Files.exists(file)) {
            throw new NoSuchFileException(file.toString(), null, "cache medium does not exist");
        }
        if (Files.isRegularFile(file)) {
            return true;
        }
        int type = fileType(file);
        if (type == S_IFBLK) {
            return true;
        }
        if (type == S_IFCHR && allowCharDevice) {
            return false;
        }
        throw new IOException(file + ": not a regular file or block device"
                + (allowCharDevice ? " or DAX character device" : " (give the size to map a character device)"));
    }

    private static final int S_IFMT = 0170000;
    private static final int S_IFBLK = 0060000;
    private static final int S_IFCHR = 0020000;

    private static int fileType(Path file) throws IOException {
        try {
            return ((Integer) Files.getAttribute(file, "unix:mode")) & S_IFMT;
        } catch (UnsupportedOperationException e) {
            return -1;
        }
    }
}
