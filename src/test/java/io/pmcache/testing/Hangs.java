package io.pmcache.testing;

import java.lang.management.LockInfo;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.lang.management.ThreadMXBean;
import java.time.Duration;
import java.util.Arrays;
import java.util.Comparator;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;
import java.util.function.Supplier;

/**
 * Turns a hang into a failure that says what hung: bounded waits whose failure message carries
 * the full stacks of the threads involved, with the lock each one waits for and who owns it.
 *
 * <p>The bounds are generous (tens of seconds): they only separate "done" from "never", so a
 * loaded machine does not make a correct run fail. Nothing here sleeps to let something happen:
 * conditions are polled until true or the bound passes.
 */
public final class Hangs {
    private Hangs() {
    }

    /** Threads the cache starts ({@code pmcache-*}) and those whose name starts with {@code prefix}. */
    public static Predicate<Thread> cacheThreadsAnd(String prefix) {
        return t -> t.getName().startsWith("pmcache-") || t.getName().startsWith(prefix);
    }

    /** Waits until {@code t} ended; else fails, naming {@code what} and dumping {@code which} threads. */
    public static void join(Thread t, Duration bound, String what, Predicate<Thread> which) {
        try {
            t.join(bound);
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted while waiting for " + what, ex);
        }
        if (t.isAlive()) {
            throw new AssertionError(what + ": still running after " + bound.toSeconds() + " s\n" + dump(which));
        }
    }

    /** Polls {@code condition} until true; else fails with {@code what} and the stacks of {@code which}. */
    public static void await(BooleanSupplier condition, Duration bound, Supplier<String> what,
                             Predicate<Thread> which) {
        long deadline = System.nanoTime() + bound.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError(what.get() + ": not within " + bound.toSeconds() + " s\n" + dump(which));
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException ex) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted while waiting: " + what.get(), ex);
            }
        }
    }

    /**
     * True when {@code t} is parked or blocked (not running) with a frame on its stack whose class
     * name contains {@code classNamePart} (a class, or a package such as {@code "io.pmcache.cache."}).
     */
    public static boolean waitingIn(Thread t, String classNamePart) {
        Thread.State s = t.getState();
        if (s != Thread.State.WAITING && s != Thread.State.TIMED_WAITING && s != Thread.State.BLOCKED) {
            return false;
        }
        for (StackTraceElement f : t.getStackTrace()) {
            if (f.getClassName().contains(classNamePart)) {
                return true;
            }
        }
        return false;
    }

    /**
     * Full stacks of the live threads {@code which} accepts: state, the lock waited for and its
     * owner, the synchronizers held.
     */
    public static String dump(Predicate<Thread> which) {
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        StringBuilder sb = new StringBuilder("---- thread dump ----");
        Thread[] threads = Thread.getAllStackTraces().keySet().stream().filter(which)
                .sorted(Comparator.comparing(Thread::getName)).toArray(Thread[]::new);
        for (Thread t : threads) {
            ThreadInfo info = mx.getThreadInfo(new long[] {t.threadId()}, true, true)[0];
            sb.append('\n').append('"').append(t.getName()).append("\" ");
            if (info == null) {
                sb.append("(ended)");
                continue;
            }
            sb.append(info.getThreadState());
            if (info.getLockName() != null) {
                sb.append(" on ").append(info.getLockName());
                if (info.getLockOwnerName() != null) {
                    sb.append(" owned by \"").append(info.getLockOwnerName()).append('"');
                }
            }
            for (StackTraceElement f : info.getStackTrace()) {
                sb.append("\n    at ").append(f);
            }
            LockInfo[] held = info.getLockedSynchronizers();
            if (held.length > 0) {
                sb.append("\n    holds ").append(Arrays.toString(held));
            }
        }
        return sb.append("\n---- end of thread dump ----").toString();
    }
}
