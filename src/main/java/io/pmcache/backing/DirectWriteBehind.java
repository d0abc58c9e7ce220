package io.pmcache.backing;

import io.pmcache.os.IoUring;
import io.pmcache.os.LinuxFiles;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A file's write-behind ({@link FileBackingDevice#writeBehind}): writes straight from the caller's
 * memory to the disk ({@code O_DIRECT}), many in flight through one io_uring, none through the page
 * cache. The cache's writeback writes its batches this way: the page cache's copy of every block
 * and its later write-out cost more CPU than the disk's own work (docs/benchmarks.md, session 18),
 * and nothing reads the written-back data from the page cache (the cache holds it).
 *
 * <ul>
 *   <li>Only native memory aligned to {@link #ALIGN} in address, position and length goes this way
 *       ({@link #write} says false otherwise, and the device writes through the page cache); a
 *       multiple of every logical block size, so the kernel never refuses one for its alignment.
 *       After any write the kernel failed, every later one goes through the page cache.</li>
 *   <li>The memory must stay unchanged until the device's next flush returned (the cache's medium
 *       does: a segment is reused only after the dirty tail passed its data, after a flush).</li>
 *   <li>Ordering, failures and the flush follow {@link WritesInFlight}: a request overlapping a write
 *       in flight waits for it; the device's flush waits for every write made before it and fails
 *       if one of them failed.</li>
 *   <li>Writes are handed to the kernel in batches of {@link #BATCH}, at once when nothing is in
 *       flight, and by the completion thread as soon as one ends: there is always a submitted write
 *       in flight while any wait for submission, so every wait ends when the disk completes one.</li>
 * </ul>
 */
final class DirectWriteBehind implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(DirectWriteBehind.class);
    static final int ALIGN = 4096;
    /** Longer writes go as pieces of this (its length in 512-byte units fits the user data's low bits). */
    private static final int MAX_PIECE = 1 << 20;
    private static final int BATCH = 8;
    /**
     * Writes in flight at most: more than a client's queue depth, so a disk that completes many in
     * parallel is kept busy (64 left a virtio disk a third idle; 256 wrote back faster than the disk
     * took the client's own QD32 writes, 512 no faster: docs/benchmarks.md, session 18).
     */
    static final int WINDOW = 256;
    private static final int LENGTH_BITS = 24;
    private static final long WAKE = -1L;

    private final Path path;
    private final int fd;
    private final IoUring ring;
    private final WritesInFlight inFlight = new WritesInFlight(WINDOW);
    private final Thread completer;
    /** Why the ring stopped working (then every write goes through the page cache); null while it works. */
    private volatile String broken;
    private volatile boolean closing;
    /** Set when the ring itself failed (not a write the kernel failed): nothing more is submitted to it. */
    private volatile boolean ringFailed;

    private DirectWriteBehind(Path path, int fd, IoUring ring) {
        this.path = path;
        this.fd = fd;
        this.ring = ring;
        this.completer = Thread.ofPlatform().daemon().name("pmcache-direct-writes").start(this::complete);
    }

    /**
     * Opens {@code path} for direct writes, or returns null (and says why at INFO) where this kernel,
     * container or file system does not allow it.
     */
    static DirectWriteBehind tryOpen(Path path) {
        if (IoUring.unsupportedReason() != null || !LinuxFiles.AVAILABLE) {
            log.info("{}: writeback goes through the page cache (no io_uring: {})", path,
                    IoUring.unsupportedReason() != null ? IoUring.unsupportedReason() : "no libc calls");
            return null;
        }
        int fd;
        try {
            fd = LinuxFiles.openDirectWrite(path);
        } catch (IOException e) {
            log.info("{}: writeback goes through the page cache (O_DIRECT refused: {})", path, e.getMessage());
            return null;
        }
        DirectWriteBehind d = tryOpen(path, fd);
        if (d == null) {
            closeQuietly(fd, path);
        }
        return d;
    }

    /** Direct writes through {@code fd} (tests pass one the kernel refuses writes on); null without io_uring. */
    static DirectWriteBehind tryOpen(Path path, int fd) {
        try {
            return new DirectWriteBehind(path, fd, IoUring.open(WINDOW));
        } catch (IOException e) {
            log.info("{}: writeback goes through the page cache (io_uring refused: {})", path, e.getMessage());
            return null;
        }
    }

    /**
     * Writes {@code src} at {@code offset} behind: returns once every piece is submitted or queued.
     * False, having done nothing, when {@code src} cannot go directly (heap memory, alignment, or the
     * ring broke): the caller writes it through the page cache.
     */
    boolean write(long offset, MemorySegment src) throws IOException {
        long length = src.byteSize();
        if (broken != null || closing || !src.isNative() || length == 0
                || ((src.address() | offset | length) & (ALIGN - 1)) != 0) {
            return false;
        }
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(MAX_PIECE, length - done);
            long pos = offset + done;
            awaitOverlapping(pos, n);
            long seq = inFlight.begin(pos, pos + n);
            if (!ring.prepareWrite(fd, src.address() + done, n, pos, seq << LENGTH_BITS | (n >>> 9))) {
                inFlight.end(seq, null);
                throw new IllegalStateException("io_uring: more writes prepared than in flight");
            }
            // Hand over now when nothing submitted is in flight (no completion would do it), else in batches.
            if (ring.unsubmitted() >= BATCH || inFlight.inFlight() <= ring.unsubmitted()) {
                submit();
            }
            done += n;
        }
        return true;
    }

    /** Waits until no direct write in flight overlaps {@code [offset, offset + length)}. */
    void awaitOverlapping(long offset, long length) throws IOException {
        if (inFlight.inFlight() > 0) {
            submit();
            inFlight.awaitOverlapping(offset, offset + length);
        }
    }

    /**
     * Waits for every write made before the call; throws, naming the file and the first failure,
     * if any of them failed (each failure is reported once).
     */
    void settle() throws IOException {
        long mark = inFlight.mark();
        submit();
        inFlight.settle(mark, path.toString());
    }

    private void submit() throws IOException {
        try {
            ring.submit();
        } catch (IOException e) {
            fail("io_uring_enter failed: " + e.getMessage());
            throw new IOException(path + ": " + broken, e);
        }
    }

    /** The completion thread: ends each write as the kernel completes it, and submits what waits. */
    private void complete() {
        boolean[] woken = {false};
        try {
            while (!woken[0]) {
                ring.awaitCompletions((userData, result) -> {
                    if (userData == WAKE) {
                        woken[0] = true;
                        return;
                    }
                    long seq = userData >>> LENGTH_BITS;
                    int length = (int) (userData & ((1 << LENGTH_BITS) - 1)) << 9;
                    String failure = null;
                    if (result < 0) {
                        failure = "direct write at " + inFlight.rangeOf(seq) + " failed: errno " + -result
                                + " (" + LinuxFiles.errnoName(-result) + ")";
                    } else if (result != length) {
                        failure = "direct write at " + inFlight.rangeOf(seq) + " was short: " + result + " of "
                                + length + " bytes";
                    }
                    if (failure != null) {
                        turnOff(failure);
                    }
                    inFlight.end(seq, failure);
                });
                if (ring.unsubmitted() > 0) {
                    ring.submit();
                }
            }
        } catch (IOException | RuntimeException e) {
            fail("io_uring failed: " + e.getMessage());
        }
    }

    /**
     * After a write the kernel failed, later writes go through the page cache: the flush reports
     * the failure and the writer writes the batch again, which must not meet the same refusal (a
     * file system that takes {@code O_DIRECT} opens and then refuses the writes: EINVAL) forever.
     */
    private void turnOff(String failure) {
        if (broken == null) {
            broken = failure;
            log.warn("{}: {}; writes behind go through the page cache from now on", path, failure);
        }
    }

    /** The ring cannot be trusted any more: every write in flight is taken for failed; later ones use the page cache. */
    private void fail(String why) {
        ringFailed = true;
        if (broken == null) {
            broken = why;
            log.error("{}: {}; writes in flight are taken for failed, later writes go through the page cache",
                    path, why);
        }
        inFlight.endAll(why);
    }

    /**
     * Waits for the writes in flight (at most {@link #CLOSE_WAIT_MILLIS}: a stop is bounded), then
     * stops the completion thread and frees the ring. Failures left unreported are dropped: a
     * writer that needed them flushed first. Writes the disk has not completed by then leave the
     * ring allocated (the kernel may still write from the memory it was given; it holds the pages).
     */
    @Override
    public void close() {
        closing = true;
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(CLOSE_WAIT_MILLIS);
        try {
            if (!ringFailed) {
                submit();
            }
            while (inFlight.inFlight() > 0 && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            if (inFlight.inFlight() == 0 && !ringFailed && ring.prepareNop(WAKE)) {
                ring.submit();
                completer.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
            }
        } catch (IOException e) {
            log.warn("{}: stopping the direct writes: {}", path, e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (!completer.isAlive()) {
            ring.close();
        } else {
            log.warn("{}: {} direct writes still in flight at close after {} ms; their ring is left allocated",
                    path, inFlight.inFlight(), CLOSE_WAIT_MILLIS);
        }
        closeQuietly(fd, path);
    }

    /** How long {@link #close} waits for the disk to complete the writes in flight. */
    static final long CLOSE_WAIT_MILLIS = 10_000;

    /** Whether the completion thread has ended (after {@link #close}; tests). */
    boolean stopped() {
        return !completer.isAlive();
    }

    private static void closeQuietly(int fd, Path path) {
        try {
            LinuxFiles.close(fd, path);
        } catch (IOException e) {
            log.warn("{}: closing the direct-write descriptor failed: {}", path, e.getMessage());
        }
    }
}
