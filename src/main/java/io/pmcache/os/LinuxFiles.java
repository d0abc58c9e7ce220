package io.pmcache.os;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.file.Path;

/**
 * The few libc calls the JDK does not expose, made through the FFM {@link Linker}: {@code open(2)},
 * {@code close(2)}, {@code fallocate(2)}, {@code lseek(2)}, {@code mlock(2)} and {@code flock(2)}, each
 * capturing {@code errno}. Used by the backing device (hole punching, finding holes with
 * {@code SEEK_DATA}/{@code SEEK_HOLE}) and the cache medium (allocating a new cache file up front).
 *
 * <p>Only available on Linux ({@link #AVAILABLE}); elsewhere callers use their portable fallback.
 */
public final class LinuxFiles {
    private LinuxFiles() {
    }

    public static final int O_RDONLY = 0;
    public static final int O_RDWR = 02;
    public static final int O_CLOEXEC = 02000000;
    static final int O_WRONLY = 01;
    /** Architecture-specific: 0200000 on arm64, 040000 on x86-64 (and most others). */
    static final int O_DIRECT = System.getProperty("os.arch", "").equals("aarch64") ? 0200000 : 040000;
    public static final int FALLOC_FL_KEEP_SIZE = 0x01;
    public static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    public static final int SEEK_DATA = 3;
    public static final int SEEK_HOLE = 4;
    static final int LOCK_SH = 1;
    static final int LOCK_EX = 2;
    static final int LOCK_NB = 4;

    static final int EINTR = 4;
    static final int EWOULDBLOCK = 11;
    static final int EINVAL = 22;
    public static final int ENXIO = 6;
    static final int ENOSYS = 38;
    static final int EOPNOTSUPP = 95;
    static final int ENODEV = 19;

    /** True when the calls below are linked (Linux with a libc). */
    public static final boolean AVAILABLE;
    /** True when {@link #tryFlock} is linked too. */
    static final boolean FLOCK_AVAILABLE;

    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO =
            CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final MethodHandle OPEN;
    private static final MethodHandle CLOSE;
    private static final MethodHandle FALLOCATE;
    private static final MethodHandle MLOCK;
    private static final MethodHandle FLOCK;
    private static final MethodHandle LSEEK;

    static {
        MethodHandle open = null;
        MethodHandle close = null;
        MethodHandle fallocate = null;
        MethodHandle mlock = null;
        MethodHandle flock = null;
        MethodHandle lseek = null;
        if (System.getProperty("os.name", "").startsWith("Linux")) {
            try {
                Linker linker = Linker.nativeLinker();
                SymbolLookup libc = linker.defaultLookup();
                Linker.Option errno = Linker.Option.captureCallState("errno");
                // int open(const char *path, int flags, ...): mode is the first variadic argument.
                open = linker.downcallHandle(libc.findOrThrow("open"),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS,
                                ValueLayout.JAVA_INT, ValueLayout.JAVA_INT),
                        errno, Linker.Option.firstVariadicArg(2));
                close = linker.downcallHandle(libc.findOrThrow("close"),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT), errno);
                // int fallocate(int fd, int mode, off_t offset, off_t len)
                fallocate = linker.downcallHandle(libc.findOrThrow("fallocate"),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                                ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG),
                        errno);
                // int mlock(const void *addr, size_t len)
                mlock = linker.downcallHandle(libc.findOrThrow("mlock"),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG),
                        errno);
                // int flock(int fd, int operation)
                flock = linker.downcallHandle(libc.findOrThrow("flock"),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT),
                        errno);
                // off_t lseek(int fd, off_t offset, int whence)
                lseek = linker.downcallHandle(libc.findOrThrow("lseek"),
                        FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG,
                                ValueLayout.JAVA_INT),
                        errno);
            } catch (RuntimeException | LinkageError e) {
                open = close = fallocate = mlock = flock = lseek = null;
            }
        }
        LSEEK = lseek;
        FLOCK = flock;
        FLOCK_AVAILABLE = flock != null && open != null && close != null;
        MLOCK = mlock;
        OPEN = open;
        CLOSE = close;
        FALLOCATE = fallocate;
        AVAILABLE = fallocate != null;
    }

    /** A failed libc call: the errno and a message naming the call and the file. */
    public static final class ErrnoException extends IOException {
        public final int errno;

        ErrnoException(String message, int errno) {
            super(message + ": errno " + errno + " (" + errnoName(errno) + ")");
            this.errno = errno;
        }
    }

    /** {@code open(path, O_RDWR | O_CLOEXEC)}; returns the fd. */
    public static int openReadWrite(Path path) throws IOException {
        return open(path, O_RDWR);
    }

    /** {@code open(path, O_RDONLY | O_CLOEXEC)}; returns the fd. */
    public static int openReadOnly(Path path) throws IOException {
        return open(path, O_RDONLY);
    }

    /**
     * {@code open(path, O_WRONLY | O_DIRECT | O_CLOEXEC)}: writes bypass the page cache (they must be
     * aligned to the device's logical block size, in memory, position and length); returns the fd.
     */
    public static int openDirectWrite(Path path) throws IOException {
        return open(path, O_WRONLY | O_DIRECT);
    }

    private static int open(Path path, int flags) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            MemorySegment cPath = arena.allocateFrom(path.toAbsolutePath().toString());
            int fd;
            do {
                fd = (int) OPEN.invokeExact(state, cPath, flags | O_CLOEXEC, 0);
            } while (fd < 0 && errno(state) == EINTR);
            if (fd < 0) {
                throw new ErrnoException(path + ": open(2) failed", errno(state));
            }
            return fd;
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** {@code close(fd)}; EINTR is not retried (on Linux the fd is released regardless). */
    public static void close(int fd, Path path) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            int rc = (int) CLOSE.invokeExact(state, fd);
            if (rc < 0 && errno(state) != EINTR) {
                throw new ErrnoException(path + ": close(2) failed", errno(state));
            }
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** {@code fallocate(fd, mode, offset, length)}, retried on EINTR. */
    public static void fallocate(int fd, int mode, long offset, long length, Path path) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            int rc;
            do {
                rc = (int) FALLOCATE.invokeExact(state, fd, mode, offset, length);
            } while (rc < 0 && errno(state) == EINTR);
            if (rc < 0) {
                throw new ErrnoException(path + ": fallocate(mode=0x" + Integer.toHexString(mode)
                        + ", offset=" + offset + ", length=" + length + ") failed", errno(state));
            }
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * {@code lseek(fd, offset, whence)} for {@link #SEEK_DATA} or {@link #SEEK_HOLE}: the start of
     * the next data or hole at or after {@code offset}. Returns {@code -1} for ENXIO (no data at or
     * after {@code offset}, or {@code offset} at or past the end of the file).
     */
    public static long seek(int fd, long offset, int whence, Path path) throws IOException {
        if (LSEEK == null) {
            throw new ErrnoException(path + ": lseek(2) is not available", ENOSYS);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            long rc = (long) LSEEK.invokeExact(state, fd, offset, whence);
            if (rc < 0) {
                if (errno(state) == ENXIO) {
                    return -1;
                }
                throw new ErrnoException(path + ": lseek(offset=" + offset + ", "
                        + (whence == SEEK_DATA ? "SEEK_DATA" : whence == SEEK_HOLE ? "SEEK_HOLE" : whence)
                        + ") failed", errno(state));
            }
            return rc;
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * {@code flock(fd, operation | LOCK_NB)}, retried on EINTR. Returns false when another open
     * file description holds a conflicting lock (EWOULDBLOCK).
     */
    static boolean tryFlock(int fd, int operation, Path path) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            int rc;
            do {
                rc = (int) FLOCK.invokeExact(state, fd, operation | LOCK_NB);
            } while (rc < 0 && errno(state) == EINTR);
            if (rc < 0) {
                if (errno(state) == EWOULDBLOCK) {
                    return false;
                }
                throw new ErrnoException(path + ": flock(2) failed", errno(state));
            }
            return true;
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * {@code mlock} of a mapped segment: its pages stay mapped and resident (no refaults after
     * the kernel reclaimed or paged them out). Returns 0, or the errno (ENOMEM/EPERM when
     * RLIMIT_MEMLOCK is too low for an unprivileged process).
     */
    public static int mlock(MemorySegment mapped) {
        if (MLOCK == null) {
            return ENOSYS;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            int rc = (int) MLOCK.invokeExact(state, mapped, mapped.byteSize());
            return rc == 0 ? 0 : errno(state);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** True when fallocate failed because the file system or device cannot do it (use a fallback). */
    public static boolean isUnsupported(int errno) {
        return errno == EOPNOTSUPP || errno == ENOSYS || errno == ENODEV || errno == EINVAL;
    }

    private static int errno(MemorySegment state) {
        return (int) ERRNO.get(state, 0L);
    }

    public static String errnoName(int errno) {
        return switch (errno) {
            case 1 -> "EPERM";
            case 2 -> "ENOENT";
            case 5 -> "EIO";
            case 6 -> "ENXIO";
            case 9 -> "EBADF";
            case 11 -> "EWOULDBLOCK";
            case 13 -> "EACCES";
            case 19 -> "ENODEV";
            case 12 -> "ENOMEM";
            case 22 -> "EINVAL";
            case 27 -> "EFBIG";
            case 28 -> "ENOSPC";
            case 30 -> "EROFS";
            case 38 -> "ENOSYS";
            case 95 -> "EOPNOTSUPP";
            default -> "see errno(3)";
        };
    }
}
