package io.pmcache.cache;

import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The background threads of an open cache: the sealer (closes ksets at most a second old), the
 * writeback worker and the garbage collector. Each sleeps until poked or until its period ends.
 * The writeback worker's speed is decided by the {@link WritebackPolicy}, through a
 * {@link WritebackDriver} turn per loop.
 */
final class Workers {
    private static final Logger log = LoggerFactory.getLogger(Workers.class);
    private static final long SEAL_PERIOD_MS = 100;
    private static final long IDLE_PERIOD_MS = 200;
    /**
     * After a writeback batch of fewer than {@link #GATHER_KEYS} keys, writeback waits this long
     * (unless space is short) so that sealed ksets gather into one batch: one backing-device sync
     * per batch instead of one per FLUSH. Durability does not depend on writeback (data and keys
     * are persistent in the cache), so this only delays when the backing device catches up.
     */
    static final long GATHER_MS = 20;
    static final int GATHER_KEYS = 256;

    /**
     * How much lower than the process writeback's and gc's threads run (nice +10): background work yields the CPU to the
     * threads that serve requests (a waking request thread preempts them at once), so a writeback
     * batch — a CPU busy with backing-device writes for a fraction of a second — does not stretch
     * the latency of the requests it runs beside. Nothing starves: a writer that waits for space
     * sleeps, leaving the CPU to them; reads need no space. The sealer keeps the normal priority
     * (it bounds how long an unflushed write waits for its seal).
     */
    static final int BACKGROUND_NICE = 10;

    /** {@code task}, first lowering its thread by {@link #BACKGROUND_NICE} (where the OS allows). */
    static Runnable background(Runnable task) {
        return () -> {
            io.pmcache.os.ThreadNice.lowerCurrentThread(BACKGROUND_NICE);
            task.run();
        };
    }

    /** A wake-up call: a raise is remembered until the next await. */
    static final class Signal {
        private final ReentrantLock lock = new ReentrantLock();
        private final Condition raised = lock.newCondition();
        private boolean pending;

        void raise() {
            lock.lock();
            try {
                pending = true;
                raised.signalAll();
            } finally {
                lock.unlock();
            }
        }

        /** Waits up to {@code ms} for a raise; clears it. */
        void await(long ms) throws InterruptedException {
            lock.lock();
            try {
                if (!pending) {
                    raised.await(ms, java.util.concurrent.TimeUnit.MILLISECONDS);
                }
                pending = false;
            } finally {
                lock.unlock();
            }
        }
    }

    private final Engine e;
    private final Writeback writeback;
    private final GarbageCollector gc;
    /** Paces the writeback worker ({@link WritebackPolicy}). */
    private final WritebackDriver driver;
    private final CacheOptions options;
    private final Signal writebackSignal = new Signal();
    private final Signal gcSignal = new Signal();
    private final Signal sealSignal = new Signal();
    /** Cuts a writeback gathering pause short (space pressure, stop). */
    private final Signal gatherSignal = new Signal();
    private volatile boolean sealNow;
    /** Wakes sleepers at stop. Threads are never interrupted: an interrupt closes a FileChannel mid-I/O. */
    private final Signal stopSignal = new Signal();
    private volatile boolean running;
    private volatile boolean gcPaused;
    private Thread sealer;
    private Thread writebackThread;
    private Thread gcThread;
    /** Tests: while set, each worker waits at its next step boundary ({@link #holdForTests}). */
    private volatile boolean holding;
    /** Tests: the workers waiting at a step boundary; guarded by {@code this}. */
    private final java.util.Set<Thread> held = new java.util.HashSet<>();

    Workers(Engine e, Writeback writeback, GarbageCollector gc, WritebackPolicy policy, CacheOptions options) {
        this.e = e;
        this.writeback = writeback;
        this.gc = gc;
        this.driver = new WritebackDriver(e, writeback, gc, policy);
        this.options = options;
    }

    void start() {
        running = true;
        e.keyLog.onSealed(writebackSignal::raise);
        e.allocator.onPressure(this::pressure);
        writeback.onSealWanted(this::sealSoon);
        sealer = Thread.ofPlatform().daemon().name("pmcache-sealer").start(this::sealLoop);
        if (options.writeback()) {
            writebackThread = Thread.ofPlatform().daemon().name("pmcache-writeback").start(background(this::writebackLoop));
        }
        if (options.gc()) {
            gcThread = Thread.ofPlatform().daemon().name("pmcache-gc").start(background(this::gcLoop));
        }
    }

    /** Cuts a paced writeback wait short (a setting changed, a drain began). */
    void hurry() {
        gatherSignal.raise();
        writebackSignal.raise();
    }

    /** Wakes writeback and gc (space is short, or something changed). */
    void poke() {
        writebackSignal.raise();
        gcSignal.raise();
    }

    /** The sealer seals the open and handed-over ksets at its next turn, at once (pressure, writeback). */
    void sealSoon() {
        sealNow = true;
        sealSignal.raise();
    }

    /** Space is short: seal open ksets now and wake writeback and gc. */
    void pressure() {
        sealSoon();
        gatherSignal.raise();
        poke();
    }

    void pauseGc() {
        gcPaused = true;
    }

    void resumeGc() {
        gcPaused = false;
        poke();
    }

    private void sealLoop() {
        while (running && atBoundary()) {
            try {
                if (idleWhenFailed()) {
                    continue;
                }
                // Under space pressure seal at once: writeback can only pass sealed ksets.
                long minAge = sealNow ? 0 : KeyLog.SEAL_AFTER_NANOS;
                sealNow = false;
                e.keyLog.sealAged(System.nanoTime(), minAge);
                writeback.reportStall(System.nanoTime());
                sealSignal.await(SEAL_PERIOD_MS);
            } catch (InterruptedException ex) {
                return;
            } catch (RuntimeException ex) {
                log.error("sealer failed; retrying", ex);
                sleepQuietly(1000);
            } catch (InternalError ex) {
                mediumFault("sealer", ex);
            }
        }
    }

    private void writebackLoop() {
        while (running && atBoundary()) {
            try {
                if (idleWhenFailed()) {
                    continue;
                }
                WritebackDriver.Turn t = driver.turn(System.nanoTime());
                switch (t.outcome()) {
                    case PROGRESS -> {
                        gcSignal.raise();
                        if (writeback.lastBatchKeys() < GATHER_KEYS) {
                            gatherSignal.await(GATHER_MS);
                        }
                    }
                    case PACED -> {
                        gcSignal.raise();
                        if (t.waitMillis() > 0) {
                            gatherSignal.await(t.waitMillis()); // pressure and stop cut it short
                        }
                    }
                    case IDLE -> writebackSignal.await(IDLE_PERIOD_MS);
                    case FAILED -> {
                        e.stats.backingRetries.increment();
                        // Backoff by failures since a flush last succeeded: a step that only wrote
                        // (writes that fail after returning) does not reset it.
                        stopSignal.await(Writeback.backoffMillis(writeback.failuresInARow(), 10_000));
                    }
                }
            } catch (InterruptedException ex) {
                return;
            } catch (RuntimeException ex) {
                log.error("writeback worker failed; retrying", ex);
                sleepQuietly(1000);
            } catch (InternalError ex) {
                mediumFault("writeback", ex);
            }
        }
    }

    private void gcLoop() {
        while (running && atBoundary()) {
            try {
                if (idleWhenFailed()) {
                    continue;
                }
                boolean moved = !gcPaused && gc.pass();
                if (gc.indexNeedsCleaning()) {
                    gc.cleanIndex();
                }
                if (!moved) {
                    gcSignal.await(IDLE_PERIOD_MS);
                }
            } catch (InterruptedException ex) {
                return;
            } catch (RuntimeException ex) {
                log.error("gc worker failed; retrying", ex);
                sleepQuietly(1000);
            } catch (InternalError ex) {
                mediumFault("gc", ex);
            }
        }
    }

    /**
     * A failed cache changes nothing more on the medium (see {@link FailState}): the workers only
     * wait for stop. True when the cache has failed (after a wait).
     */
    private boolean idleWhenFailed() throws InterruptedException {
        if (!e.failure.failed()) {
            return false;
        }
        stopSignal.await(IDLE_PERIOD_MS);
        return true;
    }

    /** An access to the mapped medium faulted (SIGBUS) in a worker: the cache fails (see {@link FailState}). */
    private void mediumFault(String worker, InternalError ex) {
        e.failure.fail(worker + ": an access to the mapped medium " + e.medium.describe() + " faulted", ex);
    }

    private static void sleepQuietly(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Tests only: asks every worker to wait at its next step boundary (between steps, never inside
     * one) until {@link #releaseForTests} or {@link #stop}. {@link #heldForTests} tells which do.
     */
    void holdForTests() {
        synchronized (this) {
            holding = true;
        }
        wakeAll();
    }

    /** Tests only: lets the held workers go on. */
    synchronized void releaseForTests() {
        holding = false;
        notifyAll();
    }

    /** Tests only: true when {@code t} is a worker waiting at a step boundary. */
    synchronized boolean heldForTests(Thread t) {
        return held.contains(t);
    }

    /** Tests only: the worker threads that run (sealer, writeback, gc). */
    java.util.List<Thread> threadsForTests() {
        return java.util.stream.Stream.of(sealer, writebackThread, gcThread).filter(t -> t != null).toList();
    }

    /** Tests only: the writeback worker thread, or null. */
    Thread writebackThreadForTests() {
        return writebackThread;
    }

    /** Between steps: waits while a test holds the workers; true to go on running. */
    private boolean atBoundary() {
        if (!holding) {
            return running;
        }
        synchronized (this) {
            if (holding && running) {
                Thread me = Thread.currentThread();
                held.add(me);
                try {
                    while (holding && running) {
                        wait();
                    }
                } catch (InterruptedException ex) {
                    Thread.currentThread().interrupt();
                    return false;
                } finally {
                    held.remove(me);
                }
            }
        }
        return running;
    }

    private void wakeAll() {
        stopSignal.raise();
        gatherSignal.raise();
        sealSignal.raise();
        poke();
    }

    /** How long {@link #stop} waits for each worker to finish the step it is in. */
    static final long STOP_WAIT_MILLIS = 60_000;

    /**
     * Stops the workers: each finishes the step it is in. Bounded: a worker still running after
     * {@link #STOP_WAIT_MILLIS} (a backing device that never answers) is left behind, and said at
     * ERROR with where it is, since it may still store into the medium.
     */
    void stop() {
        running = false;
        releaseForTests();
        wakeAll();
        for (Thread t : new Thread[] {sealer, writebackThread, gcThread}) {
            if (t != null) {
                try {
                    t.join(STOP_WAIT_MILLIS);
                } catch (InterruptedException ex) {
                    Thread.currentThread().interrupt();
                }
                if (t.isAlive()) {
                    log.error("stop: {} did not finish its step within {} ms; left running at {}", t.getName(),
                            STOP_WAIT_MILLIS, java.util.Arrays.toString(t.getStackTrace()));
                }
            }
        }
        writeback.close();
    }
}
