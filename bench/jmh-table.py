#!/usr/bin/env python3
"""Summarises JMH JSON results (bench/jmh.sh ... -rf json -rff FILE) of EngineBenchmark and
MemcpyBaseline: per benchmark the median over all measurement iterations of all given files,
MB/s, allocation per op (when run with -prof gc) and the ratio to the matching memcpy.

Usage: bench/jmh-table.py results1.json [results2.json ...]"""
import json
import statistics
import sys

SIZES = {"write4k": 4096, "read4kHit": 4096, "read4k": 4096, "write64k": 65536}
BASE = {"write4k": "write4k", "write64k": "write64k", "read4kHit": "read4k"}

runs = {}
alloc = {}
for f in sys.argv[1:]:
    for r in json.load(open(f)):
        cls, meth = r["benchmark"].split(".")[-2:]
        its = [x for fork in r["primaryMetric"]["rawData"] for x in fork]
        runs.setdefault((cls, meth), []).extend(its)
        a = r.get("secondaryMetrics", {}).get("gc.alloc.rate.norm")
        if a:
            alloc.setdefault((cls, meth), []).append(a["score"])

def med(k):
    return statistics.median(runs[k]) if k in runs else None

print("| benchmark | threads | median ops/s | MB/s | min..max ops/s | memcpy MB/s | ratio to memcpy | B/op |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for (cls, meth) in sorted(runs, key=lambda k: (k[0] != "EngineBenchmark", k[1])):
    op, t = meth.rsplit("_t", 1)
    m = med((cls, meth))
    mbs = m * SIZES[op] / 1e6
    lo, hi = min(runs[(cls, meth)]), max(runs[(cls, meth)])
    base = mb = ratio = ""
    if cls == "EngineBenchmark" and op in BASE:
        b = med(("MemcpyBaseline", BASE[op] + "_t" + t))
        if b:
            mb = f"{b * SIZES[op] / 1e6:,.0f}"
            ratio = f"{m / b:.0%}"
    a = f"{statistics.median(alloc[(cls, meth)]):.0f}" if (cls, meth) in alloc else ""
    name = ("memcpy " if cls == "MemcpyBaseline" else "") + op
    print(f"| {name} | {t} | {m:,.0f} | {mbs:,.0f} | {lo:,.0f}..{hi:,.0f} | {mb} | {ratio} | {a} |")
