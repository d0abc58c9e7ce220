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
import java.util.concurrent.locks.ReentrantLock;

/**
 * A minimal Linux io_uring (kernel 5.6 or later) through the FFM {@link Linker}: positional writes
 * and no-ops, submitted in batches, their completions reaped by one thread. No library does this
 * for the JDK (liburing is a C library, often not installed); the kernel interface is three
 * syscalls and two shared rings.
 *
 * <p>Threads: {@link #prepareWrite}, {@link #prepareNop} and {@link #submit} may be called from any
 * thread (the submission side is under one lock); {@link #awaitCompletions} from one thread only (the
 * completion ring has one consumer). The caller keeps at most {@link #entries()} operations in
 * flight, so the completion ring (twice as large) never overflows.
 *
 * <p>On-kernel facts used here ({@code include/uapi/linux/io_uring.h}): {@code io_uring_params} is
 * 120 bytes with the submission ring's offsets at 40 and the completion ring's at 80; a submission
 * entry is 64 bytes, a completion 16 ({@code user_data} at 0, {@code res} at 8); the syscalls are
 * numbered 425 ({@code io_uring_setup}) and 426 ({@code io_uring_enter}) on every architecture.
 */
public final class IoUring implements AutoCloseable {
    private static final long SYS_IO_URING_SETUP = 425;
    private static final long SYS_IO_URING_ENTER = 426;
    private static final long OFF_SQ_RING = 0;
    private static final long OFF_CQ_RING = 0x8000000L;
    private static final long OFF_SQES = 0x10000000L;
    private static final int ENTER_GETEVENTS = 1;
    private static final int FEAT_SINGLE_MMAP = 1;
    /** Came with IORING_OP_WRITE (5.6): its presence says the kernel knows the opcode. */
    private static final int FEAT_RW_CUR_POS = 1 << 3;
    private static final byte OP_NOP = 0;
    private static final byte OP_WRITE = 23;
    private static final int PROT_READ_WRITE = 0x3;
    private static final int MAP_SHARED_POPULATE = 0x01 | 0x8000;
    private static final int SQE_SIZE = 64;
    private static final int CQE_SIZE = 16;
    private static final int EINTR = 4;
    private static final int EAGAIN = 11;
    private static final int EBUSY = 16;

    private static final VarHandle INT = ValueLayout.JAVA_INT.varHandle();
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final MethodHandle SYSCALL;
    private static final MethodHandle MMAP;
    private static final MethodHandle MUNMAP;
    /** Why io_uring cannot be used here, or null when it can be tried. */
    private static final String UNSUPPORTED;

    static {
        MethodHandle syscall = null;
        MethodHandle mmap = null;
        MethodHandle munmap = null;
        String why = null;
        String arch = System.getProperty("os.arch", "");
        if (!System.getProperty("os.name", "").startsWith("Linux")) {
            why = "not Linux";
        } else if (!arch.equals("amd64") && !arch.equals("x86_64") && !arch.equals("aarch64")) {
            why = "architecture " + arch + " not supported";
        } else {
            try {
                Linker linker = Linker.nativeLinker();
                SymbolLookup libc = linker.defaultLookup();
                Linker.Option errno = Linker.Option.captureCallState("errno");
                // long syscall(long number, ...): six register-sized arguments; the kernel reads what it needs.
                ValueLayout l = ValueLayout.JAVA_LONG;
                syscall = linker.downcallHandle(libc.findOrThrow("syscall"),
                        FunctionDescriptor.of(l, l, l, l, l, l, l, l), errno, Linker.Option.firstVariadicArg(1));
                // void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
                mmap = linker.downcallHandle(libc.findOrThrow("mmap"),
                        FunctionDescriptor.of(l, l, l, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                                ValueLayout.JAVA_INT, l), errno);
                // int munmap(void *addr, size_t length)
                munmap = linker.downcallHandle(libc.findOrThrow("munmap"),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, l, l));
            } catch (RuntimeException | LinkageError e) {
                why = "libc calls not linkable: " + e;
                syscall = mmap = munmap = null;
            }
        }
        SYSCALL = syscall;
        MMAP = mmap;
        MUNMAP = munmap;
        UNSUPPORTED = why;
    }

    /** A completed operation: its {@code userData} and the kernel's result (bytes, or {@code -errno}). */
    @FunctionalInterface
    public interface CompletionHandler {
        void completed(long userData, int result);
    }

    private final int ringFd;
    private final int entries;
    private final MemorySegment sqRing;
    private final MemorySegment cqRing; // the same mapping as sqRing with FEAT_SINGLE_MMAP
    private final MemorySegment sqes;
    private final long sqRingSize;
    private final long cqRingSize;
    private final int sqHead;
    private final int sqTail;
    private final int sqMask;
    private final int cqHead;
    private final int cqTail;
    private final int cqMask;
    private final int cqes;
    private final ReentrantLock submitLock = new ReentrantLock();
    /** Next submission slot (guarded by {@link #submitLock}); published to the ring's tail. */
    private int tail;
    /** Prepared, not yet handed to the kernel (guarded by {@link #submitLock}). */
    private int unsubmitted;
    /** Next completion to read (the one consumer's). */
    private int head;
    private volatile boolean closed;

    private IoUring(int ringFd, MemorySegment params) throws IOException {
        this.ringFd = ringFd;
        this.entries = params.get(ValueLayout.JAVA_INT, 0);
        int cqEntries = params.get(ValueLayout.JAVA_INT, 4);
        int features = params.get(ValueLayout.JAVA_INT, 20);
        sqHead = params.get(ValueLayout.JAVA_INT, 40);
        sqTail = params.get(ValueLayout.JAVA_INT, 44);
        int sqMaskAt = params.get(ValueLayout.JAVA_INT, 48);
        int sqArray = params.get(ValueLayout.JAVA_INT, 64);
        cqHead = params.get(ValueLayout.JAVA_INT, 80);
        cqTail = params.get(ValueLayout.JAVA_INT, 84);
        int cqMaskAt = params.get(ValueLayout.JAVA_INT, 88);
        cqes = params.get(ValueLayout.JAVA_INT, 100);
        if ((features & FEAT_RW_CUR_POS) == 0) {
            throw new IOException("io_uring: kernel older than 5.6 (no IORING_OP_WRITE)");
        }
        long sqSize = sqArray + 4L * this.entries;
        long cqSize = cqes + (long) CQE_SIZE * cqEntries;
        boolean single = (features & FEAT_SINGLE_MMAP) != 0;
        if (single) {
            sqSize = cqSize = Math.max(sqSize, cqSize);
        }
        sqRingSize = sqSize;
        cqRingSize = single ? 0 : cqSize;
        sqRing = map(sqSize, OFF_SQ_RING);
        cqRing = single ? sqRing : map(cqSize, OFF_CQ_RING);
        sqes = map((long) SQE_SIZE * this.entries, OFF_SQES);
        sqMask = sqRing.get(ValueLayout.JAVA_INT, sqMaskAt); // the params hold where the masks are, not them
        cqMask = cqRing.get(ValueLayout.JAVA_INT, cqMaskAt);
        for (int i = 0; i < this.entries; i++) {
            sqRing.set(ValueLayout.JAVA_INT, sqArray + 4L * i, i); // slot i holds entry i, always
        }
        tail = (int) INT.getAcquire(sqRing, (long) sqTail);
        head = (int) INT.getAcquire(cqRing, (long) cqHead);
    }

    /** Null when io_uring can be tried here, else why not (the platform). */
    public static String unsupportedReason() {
        return UNSUPPORTED;
    }

    /**
     * Sets up a ring of {@code entries} submissions (a power of two).
     *
     * @throws IOException when the platform or the kernel refuses (seccomp filters of containers
     *                     often do: ENOSYS or EPERM)
     */
    public static IoUring open(int entries) throws IOException {
        if (UNSUPPORTED != null) {
            throw new IOException("io_uring: " + UNSUPPORTED);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment params = arena.allocate(120, 8);
            MemorySegment state = arena.allocate(CAPTURE);
            long fd = (long) SYSCALL.invokeExact(state, SYS_IO_URING_SETUP, (long) entries, params.address(),
                    0L, 0L, 0L, 0L);
            if (fd < 0) {
                int errno = errno(state);
                throw new LinuxFiles.ErrnoException("io_uring_setup", errno);
            }
            try {
                return new IoUring((int) fd, params);
            } catch (IOException | RuntimeException e) {
                closeFd((int) fd);
                throw e;
            }
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Submission entries (the most operations a caller may keep in flight). */
    public int entries() {
        return entries;
    }

    /**
     * Prepares {@code pwrite(fd, address, length, offset)}; false when every entry is prepared and
     * not yet submitted (submit first). The memory at {@code address} must stay valid and unchanged
     * until the completion.
     */
    public boolean prepareWrite(int fd, long address, int length, long offset, long userData) {
        return prepare(OP_WRITE, fd, address, length, offset, userData);
    }

    /** Prepares a no-op, which completes with result 0 (wakes the completion thread). */
    public boolean prepareNop(long userData) {
        return prepare(OP_NOP, -1, 0, 0, 0, userData);
    }

    private boolean prepare(byte op, int fd, long address, int length, long offset, long userData) {
        submitLock.lock();
        try {
            int consumed = (int) INT.getAcquire(sqRing, (long) sqHead);
            if (tail - consumed >= entries) {
                return false;
            }
            MemorySegment sqe = sqes.asSlice((long) (tail & sqMask) * SQE_SIZE, SQE_SIZE);
            sqe.fill((byte) 0);
            sqe.set(ValueLayout.JAVA_BYTE, 0, op);
            sqe.set(ValueLayout.JAVA_INT, 4, fd);
            sqe.set(ValueLayout.JAVA_LONG, 8, offset);
            sqe.set(ValueLayout.JAVA_LONG, 16, address);
            sqe.set(ValueLayout.JAVA_INT, 24, length);
            sqe.set(ValueLayout.JAVA_LONG, 32, userData);
            tail++;
            INT.setRelease(sqRing, (long) sqTail, tail);
            unsubmitted++;
            return true;
        } finally {
            submitLock.unlock();
        }
    }

    /** Hands every prepared operation to the kernel. */
    public void submit() throws IOException {
        submitLock.lock();
        try {
            while (unsubmitted > 0) {
                int n = enter(unsubmitted, 0, 0);
                if (n > 0) {
                    unsubmitted -= n;
                }
            }
        } finally {
            submitLock.unlock();
        }
    }

    /** Prepared operations not yet submitted. */
    public int unsubmitted() {
        submitLock.lock();
        try {
            return unsubmitted;
        } finally {
            submitLock.unlock();
        }
    }

    /**
     * Waits until at least one operation completed, then hands every completion there is to
     * {@code handler} in the order the kernel posted them; returns how many. One thread only.
     */
    public int awaitCompletions(CompletionHandler handler) throws IOException {
        int n;
        while ((n = reap(handler)) == 0) {
            enter(0, 1, ENTER_GETEVENTS);
        }
        return n;
    }

    private int reap(CompletionHandler handler) {
        int posted = (int) INT.getAcquire(cqRing, (long) cqTail);
        int n = 0;
        while (head != posted) {
            long at = cqes + (long) (head & cqMask) * CQE_SIZE;
            long userData = cqRing.get(ValueLayout.JAVA_LONG, at);
            int res = cqRing.get(ValueLayout.JAVA_INT, at + 8);
            head++;
            n++;
            INT.setRelease(cqRing, (long) cqHead, head);
            handler.completed(userData, res);
        }
        return n;
    }

    /** {@code io_uring_enter}; returns the submissions consumed (0 when interrupted: call again). */
    private int enter(int toSubmit, int minComplete, int flags) throws IOException {
        if (closed) {
            throw new IOException("io_uring: closed");
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            long rc = (long) SYSCALL.invokeExact(state, SYS_IO_URING_ENTER, (long) ringFd, (long) toSubmit,
                    (long) minComplete, (long) flags, 0L, 0L);
            if (rc >= 0) {
                return (int) rc;
            }
            int errno = errno(state);
            if (errno == EINTR || errno == EAGAIN || errno == EBUSY) {
                if (errno != EINTR) {
                    Thread.onSpinWait();
                }
                return 0;
            }
            throw new LinuxFiles.ErrnoException("io_uring_enter", errno);
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    private MemorySegment map(long size, long offset) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            long addr = (long) MMAP.invokeExact(state, 0L, size, PROT_READ_WRITE, MAP_SHARED_POPULATE, ringFd, offset);
            if (addr == -1L) {
                throw new LinuxFiles.ErrnoException("io_uring: mmap of its rings", errno(state));
            }
            return MemorySegment.ofAddress(addr).reinterpret(size);
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * Unmaps the rings and closes the ring's descriptor. The caller first waits for every
     * operation in flight and stops its completion thread.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        unmap(sqes, (long) SQE_SIZE * entries);
        if (cqRing != sqRing) {
            unmap(cqRing, cqRingSize);
        }
        unmap(sqRing, sqRingSize);
        closeFd(ringFd);
    }

    private static void unmap(MemorySegment s, long size) {
        try {
            int rc = (int) MUNMAP.invokeExact(s.address(), size);
            assert rc == 0;
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    private static void closeFd(int fd) {
        try {
            LinuxFiles.close(fd, Path.of("[io_uring]"));
        } catch (IOException ignored) {
            // nothing to do about a ring descriptor that will not close
        }
    }

    private static int errno(MemorySegment state) {
        return (int) ERRNO.get(state, 0L);
    }
}
