package io.pmcache.os;

import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Lowers the CPU priority of the calling thread: Linux's nice value is per thread
 * ({@code setpriority(PRIO_PROCESS, gettid(), nice)}), and raising one's own nice value needs no
 * privilege. The JDK offers no way to do it ({@code Thread.setPriority} is ignored on Linux), hence
 * these two libc calls through the FFM {@link Linker}. Elsewhere, or when the calls fail, nothing
 * changes.
 */
public final class ThreadNice {
    private ThreadNice() {
    }

    private static final int PRIO_PROCESS = 0;
    private static final MethodHandle GETTID;
    private static final MethodHandle SETPRIORITY;

    static {
        MethodHandle gettid = null;
        MethodHandle setpriority = null;
        if (System.getProperty("os.name", "").startsWith("Linux")) {
            try {
                Linker linker = Linker.nativeLinker();
                SymbolLookup libc = linker.defaultLookup();
                // pid_t gettid(void) (glibc 2.30+); int setpriority(int which, id_t who, int prio)
                gettid = linker.downcallHandle(libc.findOrThrow("gettid"), FunctionDescriptor.of(ValueLayout.JAVA_INT));
                setpriority = linker.downcallHandle(libc.findOrThrow("setpriority"),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                                ValueLayout.JAVA_INT));
            } catch (RuntimeException | LinkageError e) {
                gettid = null;
                setpriority = null;
            }
        }
        GETTID = gettid;
        SETPRIORITY = setpriority;
    }

    /**
     * Sets the calling thread's nice value to {@code by} above the process's (its main thread's),
     * 19 at most: a lower priority. Relative to the process, not to the calling thread, which may
     * have inherited a lowered value from the thread that started it. Returns false when that is
     * not possible here (not Linux, no such call, or refused).
     */
    public static boolean lowerCurrentThread(int by) {
        if (SETPRIORITY == null) {
            return false;
        }
        try {
            int tid = (int) GETTID.invokeExact();
            int nice = Math.min(19, niceOf(Path.of("/proc/self/stat")) + by);
            return (int) SETPRIORITY.invokeExact(PRIO_PROCESS, tid, nice) == 0;
        } catch (Throwable t) {
            return false;
        }
    }

    /** The calling thread's nice value, or 0 when unknown. */
    public static int currentThreadNice() {
        return niceOf(Path.of("/proc/thread-self/stat"));
    }

    /** The nice value in a {@code /proc/.../stat} file (field 19), or 0 when unknown. */
    private static int niceOf(Path stat) {
        try {
            String s = Files.readString(stat);
            String[] f = s.substring(s.lastIndexOf(')') + 2).split(" ");
            return Integer.parseInt(f[16]);
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }
}
