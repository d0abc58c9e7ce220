#!/usr/bin/env python3
"""JIT compilations inside a time window of one JVM (issue 10: what a cold open compiles).

Usage: bench/jit-window.py LOG FROM TO [TOP]
  LOG   -XX:+UnlockDiagnosticVMOptions -XX:+LogCompilation -XX:LogFile=LOG of the JVM
  FROM, TO  seconds since JVM start (e.g. from -Xlog:class+load=info:file=CL:uptime: the open of
        IndexFootprint reopen starts where java.lang.management.OperatingSystemMXBean loads and
        ends before java.util.Formatter$FormatSpecifierParser does)
Prints the compile threads' wall time inside the window by compiler (C1 = tiers 1-3, C2 = tier 4,
-osr for on-stack replacement) and class group, then the TOP (default 30) tasks. Durations are
the stamps of <task> and <task_done>: wall time of a compiler thread, which on a busy machine
exceeds its CPU time.
"""
import collections
import html
import re
import sys


def tasks(path):
    cur = None
    for line in open(path, errors="replace"):
        if line.startswith("<task "):
            cur = dict(re.findall(r"(\w+)='([^']*)'", line))
            cur.setdefault("level", "4")  # C2 tasks carry no level attribute
        elif line.startswith("<task_done") and cur is not None:
            done = dict(re.findall(r"(\w+)='([^']*)'", line))
            cur["s"], cur["e"] = float(cur["stamp"]), float(done["stamp"])
            yield cur
            cur = None


def group(method):
    c = html.unescape(method).split(" ")[0]
    for prefix, name in (("io.pmcache", "pmcache"), ("jdk.internal.classfile", "classfile"),
                         ("java.lang.classfile", "classfile"), ("java.lang.invoke", "j.l.invoke"),
                         ("jdk.internal.foreign", "foreign"), ("java.lang.foreign", "foreign")):
        if c.startswith(prefix):
            return name
    return "other jdk"


def main():
    log, lo, hi = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 30
    inside = []
    for t in tasks(log):
        t["in"] = max(0.0, min(t["e"], hi) - max(t["s"], lo))
        if t["in"] > 0:
            inside.append(t)
    by = collections.defaultdict(lambda: [0, 0.0])
    for t in inside:
        k = ("C2" if t["level"] == "4" else "C1") + ("-osr" if t.get("compile_kind") == "osr" else "")
        by[(k, group(t["method"]))][0] += 1
        by[(k, group(t["method"]))][1] += t["in"]
    print("compile-thread wall time inside %.3f-%.3f s: %.0f ms" % (lo, hi, 1000 * sum(v[1] for v in by.values())))
    for (k, g), (n, s) in sorted(by.items(), key=lambda x: -x[1][1]):
        print("%6.0f ms %4d  %s %s" % (1000 * s, n, k, g))
    print("\ntop tasks (ms inside the window, ms in all, tier, start-end s, method)")
    for t in sorted(inside, key=lambda t: -t["in"])[:top]:
        osr = " osr@" + t.get("osr_bci", "") if t.get("compile_kind") == "osr" else ""
        print("%5.0f %5.0f L%s%s %.3f-%.3f %s" % (1000 * t["in"], 1000 * (t["e"] - t["s"]), t["level"], osr,
                                                  t["s"], t["e"], html.unescape(t["method"])[:140]))


if __name__ == "__main__":
    main()
