package io.pmcache.backing;

import io.pmcache.device.BlockStatus;
import io.pmcache.device.Ranges;
import io.pmcache.os.FileInUseException;
import io.pmcache.os.FileUseLock;
import io.pmcache.os.LinuxFiles;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedByInterruptException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A {@link BackingDevice} on a regular file or a block device, with positional {@link FileChannel}
 * I/O (pread/pwrite: concurrent calls do not serialize).
 *
 * <ul>
 *   <li>{@link #flush()} is {@code fdatasync} ({@code force(false)}): data plus the metadata needed
 *       to read it back (block allocation of a sparse file), not timestamps.</li>
 *   <li>{@link #trim} and {@link #writeZeroes} punch a hole with
 *       {@code fallocate(PUNCH_HOLE | KEEP_SIZE)} through a second, lazily opened fd; where that is
 *       unsupported they write zeros, so a trimmed range always reads back as zeros.</li>
 *   <li>{@link #blockStatus}: a regular file's holes ({@code lseek} with {@code SEEK_DATA} and
 *       {@code SEEK_HOLE} through a third, lazily opened read-only fd) are HOLE, the rest DATA; a
 *       block device, or a file system that cannot tell, is all DATA.</li>
 *   <li>{@link #writeBehind} (the cache's writeback) writes aligned native memory straight to the
 *       disk, many writes in flight ({@link DirectWriteBehind}: {@code O_DIRECT} through io_uring),
 *       where the kernel allows it; everything else goes through the page cache. A request that
 *       overlaps such a write in flight waits for it, and {@link #flush()} waits for all of them
 *       and reports the failed ones (once). System property {@code pmcache.directWriteback=false}
 *       turns it off.</li>
 *   <li>{@link #fingerprint()}: see its Javadoc.</li>
 *   <li>Opened read-write, the file is locked exclusively ({@link FileUseLock}) until
 *       {@link #close()}: two caches never write back into one backing file. A second read-write
 *       open fails with {@link FileInUseException}. Read-only opens take no lock.</li>
 * </ul>
 *
 * <h2>A backing file that shrinks under the device</h2>
 * The size is fixed at open. If someone truncates a regular backing file meanwhile, the data past
 * its new end is gone, and a positional write past the end would grow the file again with a hole
 * that reads as zeros. So: a read that reaches the end of the file fails (never zeros for the
 * missing bytes); a flush checks the file's size after syncing and fails if it is short (so no
 * caller takes data for durable that the truncation cut off); and a write or zeroing that ends at
 * the device's end, the only kind that could give the file its full size back and hide the
 * truncation from the next flush, checks the size first. Once a shrink was noticed, every later
 * request fails too, naming the file and the sizes: which bytes of the file still hold what was
 * written cannot be told any more. Only a restart after the file was restored clears it. The
 * checks cost one {@code fstat} per flush and per write ending at the last byte, none on other
 * writes or reads.
 *
 * <p>A {@code FileChannel} is closed by the JDK when a thread is interrupted during I/O on it.
 * This device then reopens the channel: the interrupted call fails with
 * {@link InterruptedIOException} and calls in flight on other threads are retried, so one
 * interrupted thread never breaks the device for the others.
 */
public final class FileBackingDevice implements BackingDevice {

    private static final int MAX_CHUNK = 1 << 30;
    private static final int BOUNCE_CHUNK = 1 << 20;
    private static final int MAX_REOPEN_RETRIES = 16;
    /** A multiple of every logical block size: fallocate on a block device needs that alignment. */
    private static final long BLOCK_ALIGN = 4096;
    private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(1 << 20).asReadOnlyBuffer();

    private final Path path;
    private final boolean readOnly;
    private final boolean blockDevice;
    private final long size;
    private final long fingerprint;
    /** Held while open read-write; null when read-only. */
    private final FileUseLock useLock;

    /** The device's channel ({@link #withChannel}); reopened (under {@code channelLock}) when an interrupt closed it. */
    private final ReopeningChannel channel;
    private final Object channelLock = new Object();
    private volatile boolean closed;

    /** Guards {@code punchFd} and {@code seekFd}: their users hold the read lock, so close cannot free an fd in use. */
    private final ReentrantReadWriteLock punchLock = new ReentrantReadWriteLock();
    private int punchFd = -1;
    private final Object punchFdOpen = new Object();
    private int seekFd = -1;
    /** Set once lseek(SEEK_DATA) reported "unsupported"; from then on everything is DATA. */
    private volatile boolean seekUnsupported;
    /** Set once fallocate reported "unsupported"; from then on zeros are written. */
    private volatile boolean punchUnsupported;
    /** Set once the file was found shorter than {@link #size}: what was found where; then every request fails. */
    private volatile String shrunk;
    /** The flushers with a descriptor of their own ({@link #newFlusher}) not closed yet; closed with the device. */
    private final java.util.List<OwnFdFlusher> flushers = new java.util.concurrent.CopyOnWriteArrayList<>();
    /** The flushes that stand in for FUA: not {@link #flush()}'s descriptor, whose reports are writeback's. */
    private final OwnFdFlusher fuaFlusher;
    /** Whether {@link #writeBehind} may write directly (see the class comment). */
    static final boolean DIRECT_WRITEBACK = !"false".equals(System.getProperty("pmcache.directWriteback"));
    /** {@link #writeBehind}'s direct writes, opened at the first; null before, or where refused. */
    private volatile DirectWriteBehind direct;
    private boolean directTried; // guarded by channelLock

    private FileBackingDevice(Path path, boolean readOnly, boolean blockDevice, long size,
                              long fingerprint, FileChannel channel, FileUseLock useLock) throws IOException {
        this.path = path;
        this.useLock = useLock;
        this.readOnly = readOnly;
        this.blockDevice = blockDevice;
        this.size = size;
        this.fingerprint = fingerprint;
        this.channel = new ReopeningChannel(channel, channelLock, "backing device");
        this.punchUnsupported = !LinuxFiles.AVAILABLE;
        this.seekUnsupported = !LinuxFiles.AVAILABLE || blockDevice;
        this.fuaFlusher = new OwnFdFlusher();
    }

    /**
     * Opens an existing regular file or block device; its size is fixed for the life of the device.
     *
     * @throws FileInUseException when {@code readOnly} is false and another opener holds the file
     *                            read-write
     */
    public static FileBackingDevice open(Path path, boolean readOnly) throws IOException {
        if (!Files.exists(path)) {
            throw new NoSuchFileException(path.toString(), null, "backing device does not exist");
        }
        boolean block = isBlockDevice(path);
        if (!block && !Files.isRegularFile(path)) {
            throw new IOException(path + ": backing device must be a regular file or a block device");
        }
        FileUseLock lock = readOnly ? null : FileUseLock.acquire(path, FileUseLock.Mode.EXCLUSIVE, "backing file");
        FileChannel ch = null;
        try {
            ch = openChannel(path, readOnly);
            long size = block ? ch.size() : Files.size(path);
            if (size <= 0) {
                throw new IOException(path + ": backing device is empty (size " + size + ")");
            }
            return new FileBackingDevice(path, readOnly, block, size, computeFingerprint(path, block), ch, lock);
        } catch (IOException | RuntimeException e) {
            if (ch != null) {
                ch.close();
            }
            if (lock != null) {
                lock.close();
            }
            throw e;
        }
    }

    /** Creates a sparse file of {@code size} bytes (reads as zeros) and opens it read-write. */
    public static FileBackingDevice createSparse(Path path, long size) throws IOException {
        if (size <= 0) {
            throw new IllegalArgumentException(path + ": size must be positive, got " + size);
        }
        try {
            Files.createFile(path);
        } catch (FileAlreadyExistsException e) {
            throw new FileAlreadyExistsException(path.toString(), null,
                    "refusing to create a backing file over an existing file");
        }
        try (var raf = new RandomAccessFile(path.toFile(), "rw")) {
            raf.setLength(size);
        }
        return open(path, false);
    }

    public Path path() {
        return path;
    }

    public boolean isReadOnly() {
        return readOnly;
    }

    public boolean isBlockDevice() {
        return blockDevice;
    }

    @Override
    public long size() {
        return size;
    }

    /**
     * A 64-bit mix of the identity the kernel gives the file: for a regular file its
     * {@code unix:dev} (the filesystem's device) and {@code unix:ino} (inode); for a block device
     * its {@code unix:rdev} (major:minor). Stable across renames and restarts; a copy has another
     * inode and so another fingerprint. Caveats: filesystems without stable device numbers
     * (network or overlay filesystems, some btrfs setups) and block devices renumbered at boot
     * change their fingerprint; the cache then refuses to open, which is the safe failure.
     */
    @Override
    public long fingerprint() {
        return fingerprint;
    }

    @Override
    public String describe() {
        return path + " (" + (blockDevice ? "block device" : "file") + ", " + size + " bytes"
                + (readOnly ? ", read-only" : "") + ")";
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        Ranges.check(this, offset, dst.byteSize());
        ensureOpen();
        ensureNotShrunk("read", offset, dst.byteSize());
        awaitDirect(offset, dst.byteSize());
        try {
            for (long done = 0; done < dst.byteSize(); ) {
                int n = (int) Math.min(MAX_CHUNK, dst.byteSize() - done);
                MemorySegment part = dst.asSlice(done, n);
                if (byteBufferCapable(part)) {
                    long pos = offset + done;
                    withChannel(ch -> readFully(ch, part, pos));
                } else {
                    readBounced(offset + done, part);
                }
                done += n;
            }
        } catch (PastEndException e) {
            throw shrank("read", offset, dst.byteSize(), e.position);
        }
    }

    @Override
    public void write(long offset, MemorySegment src, boolean fua) throws IOException {
        Ranges.check(this, offset, src.byteSize());
        ensureWritable();
        beforeChange("write", offset, src.byteSize());
        awaitDirect(offset, src.byteSize());
        for (long done = 0; done < src.byteSize(); ) {
            int n = (int) Math.min(MAX_CHUNK, src.byteSize() - done);
            MemorySegment part = src.asSlice(done, n);
            long pos = offset + done;
            if (byteBufferCapable(part)) {
                withChannel(ch -> writeFully(ch, part.asByteBuffer(), pos));
            } else {
                writeBounced(pos, part);
            }
            done += n;
        }
        if (fua) {
            fuaFlusher.flush();
        }
    }

    /**
     * Directly to the disk where it can ({@link DirectWriteBehind}); a failure is reported by the
     * next {@link #flush()}. Else, and for what cannot go directly, as {@link #write}.
     */
    @Override
    public void writeBehind(long offset, MemorySegment src) throws IOException {
        Ranges.check(this, offset, src.byteSize());
        ensureWritable();
        beforeChange("write", offset, src.byteSize());
        DirectWriteBehind d = direct();
        if (d == null || !d.write(offset, src)) {
            write(offset, src, false);
        }
    }

    private DirectWriteBehind direct() {
        DirectWriteBehind d = direct;
        if (d != null || !DIRECT_WRITEBACK) {
            return d;
        }
        synchronized (channelLock) {
            if (!directTried && !closed) {
                directTried = true;
                direct = DirectWriteBehind.tryOpen(path);
            }
            return direct;
        }
    }

    /** Whether writes behind go directly to the disk (tests). */
    boolean writesDirectly() {
        return direct != null;
    }

    /** Waits for the direct writes in flight that overlap the range (a request must follow them). */
    private void awaitDirect(long offset, long length) throws IOException {
        DirectWriteBehind d = direct;
        if (d != null) {
            d.awaitOverlapping(offset, length);
        }
    }

    @Override
    public void flush() throws IOException {
        ensureOpen();
        ensureNotShrunk("flush", 0, size);
        DirectWriteBehind d = direct;
        if (d != null) {
            d.settle(); // the writes made before the flush have completed; fdatasync makes them durable
        }
        withChannel(ch -> ch.force(false));
        checkSizeAfterFlush();
    }

    private void checkSizeAfterFlush() throws IOException {
        if (!blockDevice) {
            long found = fileSize();
            if (found < size) {
                throw shrank("flush", 0, size, found);
            }
        }
    }

    /**
     * A flusher with a file descriptor of its own: Linux reports an error of the page cache's
     * write-out to each open file once ({@code errseq}), so a failure that {@link #flush()}
     * reported still fails this one's next flush.
     */
    @Override
    public Flusher newFlusher() throws IOException {
        ensureOpen();
        return new OwnFdFlusher();
    }

    /**
     * Opens its descriptor when made (an open file learns only of the errors after that, and of
     * those no other open file has reported yet); reopens it after an interrupt closed it; closes it
     * when closed itself, or with the device.
     */
    private final class OwnFdFlusher implements Flusher {
        /** Reopened and closed under a lock of its own, not this flusher's: a stuck flush cannot hold up the device's close. */
        private final ReopeningChannel ch;

        OwnFdFlusher() throws IOException {
            ch = new ReopeningChannel(openChannel(path, readOnly), new Object(), "flusher");
            flushers.add(this);
        }

        @Override
        public synchronized void flush() throws IOException {
            ensureOpen();
            ensureNotShrunk("flush", 0, size);
            ch.run(c -> c.force(false), "flush");
            checkSizeAfterFlush();
        }

        @Override
        public void close() throws IOException {
            flushers.remove(this);
            ch.close();
        }
    }

    @Override
    public void trim(long offset, long length) throws IOException {
        Ranges.check(this, offset, length);
        ensureWritable();
        beforeChange("trim", offset, length);
        awaitDirect(offset, length);
        if (length > 0) {
            zeroRange(offset, length);
        }
    }

    @Override
    public void writeZeroes(long offset, long length, boolean fua) throws IOException {
        Ranges.check(this, offset, length);
        ensureWritable();
        beforeChange("write-zeroes", offset, length);
        awaitDirect(offset, length);
        if (length > 0) {
            zeroRange(offset, length);
        }
        if (fua) {
            fuaFlusher.flush();
        }
    }

    /**
     * Holes (found with {@code SEEK_DATA}/{@code SEEK_HOLE}) are HOLE, the rest DATA. A file that
     * reports no data up to the device's end is checked for having shrunk first: bytes cut off
     * are lost, not zeros.
     */
    @Override
    public List<BlockStatus> blockStatus(long offset, long length, int maxExtents) throws IOException {
        Ranges.check(this, offset, length);
        ensureOpen();
        ensureNotShrunk("block status", offset, length);
        if (seekUnsupported) {
            return BackingDevice.super.blockStatus(offset, length, maxExtents);
        }
        BlockStatus.Builder out = new BlockStatus.Builder(offset, length, maxExtents);
        long end = offset + length;
        punchLock.readLock().lock();
        try {
            ensureOpen();
            int fd = seekFd();
            long pos = offset;
            while (!out.full()) {
                long data = LinuxFiles.seek(fd, pos, LinuxFiles.SEEK_DATA, path);
                if (data < 0) { // ENXIO: no data from pos to the end of the file
                    long found = fileSize();
                    if (found < size) {
                        throw shrank("block status", offset, length, found);
                    }
                    data = end;
                }
                out.add(Math.min(data, end) - pos, BlockStatus.Kind.HOLE);
                if (data >= end || out.full()) {
                    break;
                }
                long hole = LinuxFiles.seek(fd, data, LinuxFiles.SEEK_HOLE, path);
                long dataEnd = hole < 0 ? end : Math.min(hole, end);
                out.add(dataEnd - data, BlockStatus.Kind.DATA);
                pos = dataEnd;
            }
        } catch (LinuxFiles.ErrnoException e) {
            if (!LinuxFiles.isUnsupported(e.errno)) {
                throw e;
            }
            seekUnsupported = true;
            return BackingDevice.super.blockStatus(offset, length, maxExtents);
        } finally {
            punchLock.readLock().unlock();
        }
        return out.build();
    }

    /** The lazily opened read-only fd for lseek; caller holds the read lock. */
    private int seekFd() throws IOException {
        synchronized (punchFdOpen) {
            if (seekFd < 0) {
                seekFd = LinuxFiles.openReadOnly(path);
            }
            return seekFd;
        }
    }

    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        IOException failure = null;
        synchronized (channelLock) {
            if (direct != null) {
                direct.close(); // waits for the writes in flight: they are ours, and the lock is released below
            }
            try {
                channel.close();
            } catch (IOException e) {
                failure = e;
            }
        }
        for (OwnFdFlusher f : flushers) {
            try {
                f.close();
            } catch (IOException e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        punchLock.writeLock().lock();
        try {
            if (punchFd >= 0) {
                int fd = punchFd;
                punchFd = -1;
                LinuxFiles.close(fd, path);
            }
            if (seekFd >= 0) {
                int fd = seekFd;
                seekFd = -1;
                LinuxFiles.close(fd, path);
            }
        } catch (IOException e) {
            if (failure == null) {
                failure = e;
            } else {
                failure.addSuppressed(e);
            }
        } finally {
            punchLock.writeLock().unlock();
        }
        if (useLock != null) {
            try {
                useLock.close(); // last: no other opener writes before every write of ours is done
            } catch (IOException e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            throw new IOException(path + ": close failed: " + failure.getMessage(), failure);
        }
    }

    @Override
    public String toString() {
        return "FileBackingDevice[" + describe() + "]";
    }

    /** True while trim and writeZeroes punch holes (false after fallocate proved unsupported). */
    boolean punchesHoles() {
        return !punchUnsupported;
    }

    /** Test hook: stop using fallocate so the write-zeros fallback is exercised. */
    void disableHolePunching() {
        punchUnsupported = true;
    }

    // ---- zeroing ----

    /** Makes {@code [offset, offset + length)} read as zeros: punch what can be punched, write zeros elsewhere. */
    private void zeroRange(long offset, long length) throws IOException {
        long end = offset + length;
        if (!blockDevice) {
            if (!punch(offset, length)) {
                writeZeros(offset, length);
            }
            return;
        }
        long alignedStart = Math.min(end, (offset + BLOCK_ALIGN - 1) & -BLOCK_ALIGN);
        long alignedEnd = Math.max(alignedStart, end & -BLOCK_ALIGN);
        writeZeros(offset, alignedStart - offset);
        if (alignedEnd > alignedStart && !punch(alignedStart, alignedEnd - alignedStart)) {
            writeZeros(alignedStart, alignedEnd - alignedStart);
        }
        writeZeros(alignedEnd, end - alignedEnd);
    }

    /** Punches a hole; false when the file system or device cannot (the caller writes zeros). */
    private boolean punch(long offset, long length) throws IOException {
        if (punchUnsupported) {
            return false;
        }
        punchLock.readLock().lock();
        try {
            ensureOpen();
            int fd = punchFd();
            LinuxFiles.fallocate(fd, LinuxFiles.FALLOC_FL_PUNCH_HOLE | LinuxFiles.FALLOC_FL_KEEP_SIZE,
                    offset, length, path);
            return true;
        } catch (LinuxFiles.ErrnoException e) {
            if (LinuxFiles.isUnsupported(e.errno)) {
                punchUnsupported = true;
                return false;
            }
            throw e;
        } finally {
            punchLock.readLock().unlock();
        }
    }

    /** The lazily opened fd for fallocate; caller holds the read lock. */
    private int punchFd() throws IOException {
        synchronized (punchFdOpen) {
            if (punchFd < 0) {
                punchFd = LinuxFiles.openReadWrite(path);
            }
            return punchFd;
        }
    }

    private void writeZeros(long offset, long length) throws IOException {
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(ZEROS.capacity(), length - done);
            long pos = offset + done;
            withChannel(ch -> writeFully(ch, ZEROS.duplicate().limit(n), pos));
            done += n;
        }
    }

    // ---- channel I/O ----

    @FunctionalInterface
    private interface ChannelOp {
        void run(FileChannel ch) throws IOException;
    }

    /** Runs an idempotent positional operation on the device's channel ({@link ReopeningChannel#run}). */
    private void withChannel(ChannelOp op) throws IOException {
        channel.run(op, "I/O");
    }

    /**
     * A channel of the file that reopens itself after an interrupt closed it (the JDK closes a
     * {@code FileChannel} when a thread is interrupted during I/O on it): the device's own and each
     * flusher's. Reopened and closed under {@code lock}, never reopened once it or the device is
     * closed; the operations themselves run without the lock.
     */
    private final class ReopeningChannel {
        private final Object lock;
        /** What it is, for the error once it is closed: "PATH: NAME is closed". */
        private final String name;
        private volatile FileChannel ch;
        private boolean shut; // guarded by lock

        ReopeningChannel(FileChannel ch, Object lock, String name) {
            this.ch = ch;
            this.lock = lock;
            this.name = name;
        }

        /**
         * Runs an idempotent positional operation, reopening the channel if an interrupt (of this or
         * another thread) closed it. This thread's interrupt surfaces as InterruptedIOException
         * ("PATH: WHAT interrupted").
         */
        void run(ChannelOp op, String what) throws IOException {
            for (int attempt = 0; ; attempt++) {
                FileChannel c = ch;
                try {
                    op.run(c);
                    return;
                } catch (ClosedByInterruptException e) {
                    reopenAfter(c, e);
                    InterruptedIOException ie = new InterruptedIOException(path + ": " + what + " interrupted");
                    ie.initCause(e);
                    throw ie;
                } catch (ClosedChannelException e) {
                    reopenAfter(c, e);
                    if (attempt >= MAX_REOPEN_RETRIES) {
                        throw new IOException(path + ": channel kept being closed by interrupts", e);
                    }
                } catch (PastEndException e) {
                    throw e; // the caller names it (the file shrank)
                } catch (IOException e) {
                    throw named(e);
                }
            }
        }

        private void reopenAfter(FileChannel failed, ClosedChannelException cause) throws IOException {
            synchronized (lock) {
                if (closed) {
                    throw closedException(cause);
                }
                if (shut) {
                    throw new IOException(path + ": " + name + " is closed", cause);
                }
                if (ch == failed) {
                    ch = openChannel(path, readOnly);
                }
            }
        }

        void close() throws IOException {
            synchronized (lock) {
                shut = true;
                ch.close();
            }
        }
    }

    /** The JDK's I/O errors say only the reason ("No space left on device"): name the file too. */
    private IOException named(IOException e) {
        String m = String.valueOf(e.getMessage());
        return m.contains(path.toString()) || e instanceof InterruptedIOException ? e
                : new IOException(path + ": " + m, e);
    }

    private static void readFully(FileChannel ch, MemorySegment dst, long position) throws IOException {
        ByteBuffer buf = dst.asByteBuffer();
        while (buf.hasRemaining()) {
            int n = ch.read(buf, position + buf.position());
            if (n < 0) {
                throw new PastEndException(position + buf.position()); // the file shrank under us
            }
        }
    }

    /** A read reached the end of the file at {@code position}, before the end of the device. */
    private static final class PastEndException extends IOException {
        final long position;

        PastEndException(long position) {
            super("end of file at " + position, null);
            this.position = position;
        }
    }

    // ---- a file that shrank ----

    /** Fails once a shrink was noticed: nothing the file holds can be told apart from a hole any more. */
    private void ensureNotShrunk(String what, long offset, long length) throws IOException {
        String s = shrunk;
        if (s != null) {
            throw new IOException(path + ": " + request(what, offset, length) + " refused: " + s);
        }
    }

    /**
     * Before a change: fails if a shrink was noticed; and, for a regular file, if the change ends
     * at the device's end (the only kind that would grow a short file back to its full size,
     * which would hide the truncation from the next flush), checks the file's size first.
     */
    private void beforeChange(String what, long offset, long length) throws IOException {
        ensureNotShrunk(what, offset, length);
        if (!blockDevice && offset + length == size) {
            long found = fileSize();
            if (found < size) {
                throw shrank(what, offset, length, found);
            }
        }
    }

    /** Records that the file is shorter than the device (found at {@code at}) and returns the error for this request. */
    private IOException shrank(String what, long offset, long length, long at) {
        long found = at;
        try {
            found = fileSize();
        } catch (IOException e) {
            // keep where the end was met
        }
        String s = "the backing file shrank under the device: it is " + found + " bytes, but the device is "
                + size + " bytes (noticed at offset " + at + " by a " + what + "); what was past " + found
                + " is lost and the file can no longer be trusted: restore it and restart";
        if (shrunk == null) {
            shrunk = s;
        }
        return new IOException(path + ": " + request(what, offset, length) + " failed: " + s);
    }

    private static String request(String what, long offset, long length) {
        return what.equals("flush") ? what : what + " of [" + offset + ", +" + length + ")";
    }

    private long fileSize() throws IOException {
        long[] out = new long[1];
        withChannel(ch -> out[0] = ch.size());
        return out[0];
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf, long position) throws IOException {
        long base = position - buf.position();
        while (buf.hasRemaining()) {
            ch.write(buf, base + buf.position());
        }
    }

    private void readBounced(long offset, MemorySegment dst) throws IOException {
        MemorySegment bounce = MemorySegment.ofArray(new byte[(int) Math.min(BOUNCE_CHUNK, dst.byteSize())]);
        for (long done = 0; done < dst.byteSize(); ) {
            int n = (int) Math.min(bounce.byteSize(), dst.byteSize() - done);
            long pos = offset + done;
            MemorySegment part = bounce.asSlice(0, n);
            withChannel(ch -> readFully(ch, part, pos));
            MemorySegment.copy(part, 0, dst, done, n);
            done += n;
        }
    }

    private void writeBounced(long offset, MemorySegment src) throws IOException {
        MemorySegment bounce = MemorySegment.ofArray(new byte[(int) Math.min(BOUNCE_CHUNK, src.byteSize())]);
        for (long done = 0; done < src.byteSize(); ) {
            int n = (int) Math.min(bounce.byteSize(), src.byteSize() - done);
            long pos = offset + done;
            MemorySegment part = bounce.asSlice(0, n);
            MemorySegment.copy(src, done, part, 0, n);
            withChannel(ch -> writeFully(ch, part.asByteBuffer(), pos));
            done += n;
        }
    }

    /** Native segments and byte[]-backed heap segments can be viewed as a ByteBuffer. */
    private static boolean byteBufferCapable(MemorySegment s) {
        return s.isNative() || s.heapBase().map(b -> b instanceof byte[]).orElse(false);
    }

    private void ensureOpen() throws IOException {
        if (closed) {
            throw closedException(null);
        }
    }

    private void ensureWritable() throws IOException {
        ensureOpen();
        if (readOnly) {
            throw new IOException(path + ": backing device is open read-only");
        }
    }

    private IOException closedException(Throwable cause) {
        return new IOException(path + ": backing device is closed", cause);
    }

    private static FileChannel openChannel(Path path, boolean readOnly) throws IOException {
        return readOnly
                ? FileChannel.open(path, StandardOpenOption.READ)
                : FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
    }

    private static final int S_IFMT = 0170000;
    private static final int S_IFBLK = 0060000;

    private static boolean isBlockDevice(Path path) throws IOException {
        try {
            return (((Integer) Files.getAttribute(path, "unix:mode")) & S_IFMT) == S_IFBLK;
        } catch (UnsupportedOperationException e) {
            return false;
        }
    }

    private static long computeFingerprint(Path path, boolean block) throws IOException {
        Map<String, Object> a;
        try {
            a = Files.readAttributes(path, "unix:dev,ino,rdev");
        } catch (UnsupportedOperationException e) {
            throw new IOException(path + ": cannot fingerprint the backing device: no unix attributes here", e);
        }
        return block
                ? mix(mix(0x626c6b6465760000L ^ (Long) a.get("rdev")))
                : mix(mix(0x66696c6500000000L ^ (Long) a.get("dev")) ^ (Long) a.get("ino"));
    }

    /** The SplitMix64 finalizer: a bijective 64-bit mix. */
    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }
}
