#!/usr/bin/env bash
# fio (nbd engine) against pmcache and, in the same run, against two references:
#   nbdkit memory  - the transport's upper bound (RAM behind the same client path)
#   nbdkit file    - the raw backing file, as a disk without a cache would serve it
# Workloads (interleaved across targets, in an order that rotates each round, repeated): 4 KiB random write and read at queue depth
# 1 and 32, 128 KiB sequential write, 4 KiB random write with a FLUSH after every write (fio's
# nbd engine sends NBD_CMD_FLUSH for --fsync=1). Prints median IOPS, median p99 completion
# latency and pmcache's ratio to each reference.
#
# Usage: bench/nbd-fio.sh            (env knobs below)
#   PMCACHE_CMD   command that serves pmcache on the unix socket $PMCACHE_SOCK (it is run with
#                 PMCACHE_SOCK, WORK and CACHE_DIR exported, through bash -c). Default:
#                   bin/pmcache serve --cache $CACHE_DIR/cache.img --cache-size $CACHE_SIZE
#                                     --backing $WORK/backing.img --backing-size $SIZE --socket $PMCACHE_SOCK
#                 i.e. a new cache on /dev/shm in front of a new sparse backing file in $WORK (the
#                 same filesystem as nbdkit file's raw.img).
#                 PMCACHE_CMD=memory serves a RAM device with the NBD server alone
#                 (io.pmcache.nbd.MemoryExportMain, test scope): measures the transport.
#   WORK          scratch directory (default: a new temp dir, removed at the end)
#   CACHE_DIR     where the default command puts the cache file (default: a new dir on /dev/shm,
#                 removed at the end; $WORK when there is no /dev/shm)
#   CACHE_SIZE    cache file size for the default command (default 1G)
#   SETTLE        seconds to wait after refilling before a read workload, so the refill's writeback
#                 is done and does not run during the measurement (default 5)
#   SIZE          working set per job, fio size syntax (default 256M)
#   RUNTIME       seconds per measurement (default 10)   RAMP  warm-up seconds (default 2)
#   REPEATS       rounds over all workloads and targets (default 3)
#   WORKLOADS     subset, e.g. "randread-qd1 randread-qd32" (default: all)
# Needs fio (with the nbd engine), nbdkit, nbdinfo, python3.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

SIZE="${SIZE:-256M}"
RUNTIME="${RUNTIME:-10}"
RAMP="${RAMP:-2}"
REPEATS="${REPEATS:-3}"
ALL_WORKLOADS="randwrite-qd1 randwrite-qd32 randread-qd1 randread-qd32 seqwrite-128k randwrite-flush"
WORKLOADS="${WORKLOADS:-$ALL_WORKLOADS}"
BENCH=nbd-fio.sh
. bench/lib.sh
bench_dirs pmcache-bench
export PMCACHE_SOCK="$WORK/pmcache.sock"
CACHE_SIZE="${CACHE_SIZE:-1G}"
SETTLE="${SETTLE:-5}"
PMCACHE_CMD="${PMCACHE_CMD:-bin/pmcache serve --cache \$CACHE_DIR/cache.img --cache-size $CACHE_SIZE --backing \$WORK/backing.img --backing-size $SIZE --socket \$PMCACHE_SOCK}"

bench_need fio nbdkit nbdinfo python3

# ---- the machine
{
  bench_banner
  echo "pmcache: $PMCACHE_CMD"
  echo "size $SIZE, runtime ${RUNTIME}s (+${RAMP}s ramp), $REPEATS rounds"
} >&2

# ---- targets
if [ "$PMCACHE_CMD" != memory ] && [ -x bin/pmcache ]; then
  (. bin/jdk25-env && mvn -B -q -ntp -DskipTests package >&2) # build before, not while waiting for the socket
fi
if [ "$PMCACHE_CMD" = memory ]; then
  echo "building the test classpath for MemoryExportMain ..." >&2
  . bin/jdk25-env
  mvn -B -q -ntp -DskipTests test-compile dependency:build-classpath -Dmdep.outputFile=target/bench-cp.txt >&2
  mib=$(( $(size_bytes "$SIZE") >> 20 ))
  java -Xmx1g -cp "target/classes:target/test-classes:$(cat target/bench-cp.txt)" \
      io.pmcache.nbd.MemoryExportMain "$PMCACHE_SOCK" "$mib" >"$WORK/pmcache.log" 2>&1 &
else
  bash -c "$PMCACHE_CMD" >"$WORK/pmcache.log" 2>&1 &
fi
pids+=($!)
nbdkit -f -U "$WORK/memory.sock" memory size="$SIZE" >"$WORK/nbdkit-memory.log" 2>&1 &
pids+=($!)
truncate -s "$SIZE" "$WORK/raw.img"
nbdkit -f -U "$WORK/file.sock" file file="$WORK/raw.img" >"$WORK/nbdkit-file.log" 2>&1 &
pids+=($!)

declare -A URI=(
  [pmcache]="nbd+unix:///?socket=$PMCACHE_SOCK"
  [memory]="nbd+unix:///?socket=$WORK/memory.sock"
  [file]="nbd+unix:///?socket=$WORK/file.sock"
)
TARGETS="pmcache memory file"
for t in $TARGETS; do wait_ready "${URI[$t]}"; done

# Fill a target so reads hit written data (for pmcache: the cache, which random writes and gc may
# have changed since), then let its writeback settle.
fill() { # target
  fio --name=fill --ioengine=nbd --uri="${URI[$1]}" --rw=write --bs=1M --iodepth=4 --size="$SIZE" \
      --output="$WORK/fill-$1.json" --output-format=json >/dev/null
}
for t in $TARGETS; do fill "$t"; done

results="$WORK/results.tsv"
: >"$results"
set -- $TARGETS
for rep in $(seq 1 "$REPEATS"); do
  # The targets' order rotates each round: a target measured right after another shares the
  # machine with the other's deferred work (the kernel writing out nbdkit file's page cache, a
  # cache's writeback), so a fixed order would always hand that to the same target.
  order=""
  for k in $(seq 0 $(($# - 1))); do i=$(( (rep - 1 + k) % $# + 1 )); order="$order ${!i}"; done
  for w in $WORKLOADS; do
    for t in $order; do
      out="$WORK/$w-$t-$rep.json"
      case "$w" in randread-*) fill "$t"; sleep "$SETTLE" ;; esac
      fio_row "$w" "$t" "${URI[$t]}" "$out" >>"$results"
      echo "round $rep: $(tail -1 "$results")" >&2
    done
  done
done

python3 - "$results" "$REPEATS" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
med = {}
for w, t, iops, _mib, p99 in rows:
    med.setdefault((w, t), []).append((float(iops), float(p99)))
order = []
for w, *_ in rows:
    if w not in order:
        order.append(w)
print(f"median of {sys.argv[2]} runs; IOPS and p99 completion latency (us); ratios are pmcache / reference")
print(f"{'workload':<16}{'pmcache IOPS':>13}{'memory IOPS':>13}{'file IOPS':>12}{'p99 pm':>9}{'p99 mem':>9}{'p99 file':>9}"
      f"{'IOPS/mem':>10}{'IOPS/file':>10}{'p99/mem':>9}{'p99/file':>9}")
for w in order:
    v = {t: (statistics.median(x[0] for x in med[(w, t)]), statistics.median(x[1] for x in med[(w, t)]))
         for t in ("pmcache", "memory", "file")}
    r = lambda a, b: a / b if b else float("nan")
    print(f"{w:<16}{v['pmcache'][0]:>13.0f}{v['memory'][0]:>13.0f}{v['file'][0]:>12.0f}"
          f"{v['pmcache'][1]:>9.1f}{v['memory'][1]:>9.1f}{v['file'][1]:>9.1f}"
          f"{r(v['pmcache'][0], v['memory'][0]):>10.2f}{r(v['pmcache'][0], v['file'][0]):>10.2f}"
          f"{r(v['pmcache'][1], v['memory'][1]):>9.2f}{r(v['pmcache'][1], v['file'][1]):>9.2f}")
PY
