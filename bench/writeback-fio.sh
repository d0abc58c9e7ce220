#!/usr/bin/env bash
# Sustained 4 KiB random-write throughput when the working set is 4x the cache, so the cache is
# full and every write waits for writeback and gc (writeback-bound), beside the backing device's own
# throughput for the same pattern (the same backing file type served by `nbdkit file`, through the
# same fio nbd client) — measured in the same run, interleaved, repeated. Prints medians and the ratio.
#
# Usage: bench/writeback-fio.sh      env: CACHE (256M)  SET (1G, the working set)  RUNTIME (60)
#        RAMP (20, excluded: the cache fills during it)  REPEATS (3)  QD (32)
#        CACHE_DIR (/dev/shm)  BACKING_DIR (/var/tmp: a real disk filesystem)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
CACHE="${CACHE:-256M}"; SET="${SET:-1G}"; RUNTIME="${RUNTIME:-60}"; RAMP="${RAMP:-20}"
REPEATS="${REPEATS:-3}"; QD="${QD:-32}"
CACHE_DIR="${CACHE_DIR:-/dev/shm}"; BACKING_DIR="${BACKING_DIR:-/var/tmp}"
for tool in fio nbdkit nbdinfo python3; do
  command -v "$tool" >/dev/null || { echo "writeback-fio.sh: $tool is not installed" >&2; exit 1; }
done
work_c="$(mktemp -d "$CACHE_DIR/pmcache-wb.XXXXXX")"; work_b="$(mktemp -d "$BACKING_DIR/pmcache-wb.XXXXXX")"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work_c" "$work_b"; }
trap cleanup EXIT
bin/pmcache --version >/dev/null   # build once, outside the measurement

wait_ready() { for _ in $(seq 1 600); do nbdinfo "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "nobody answers on $1" >&2; exit 1; }

run_fio() { # uri -> prints IOPS
  fio --name=wb --ioengine=nbd --uri="$1" --rw=randwrite --bs=4k --iodepth="$QD" --size="$SET" \
      --time_based --runtime="$RUNTIME" --ramp_time="$RAMP" --norandommap --randrepeat=0 \
      --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; t=sys.stdin.read(); print(round(json.loads(t[t.index("{"):])["jobs"][0]["write"]["iops"]))'
}

ref=(); pm=()
for round in $(seq 1 "$REPEATS"); do
  rm -f "$work_b"/* "$work_c"/*
  truncate -s "$SET" "$work_b/ref.img"
  nbdkit --exit-with-parent -f -U "$work_b/ref.sock" file "$work_b/ref.img" & pid=$!
  wait_ready "nbd+unix:///?socket=$work_b/ref.sock"
  ref+=("$(run_fio "nbd+unix:///?socket=$work_b/ref.sock")"); kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""

  bin/pmcache serve --cache "$work_c/cache.img" --cache-size "$CACHE" --segment-size 4M \
      --backing "$work_b/backing.img" --backing-size "$SET" --socket "$work_c/pm.sock" \
      >"$work_c/out" 2>"$work_c/err" & pid=$!
  wait_ready "nbd+unix:///?socket=$work_c/pm.sock"
  pm+=("$(run_fio "nbd+unix:///?socket=$work_c/pm.sock")")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  echo "round $round: nbdkit file ${ref[-1]} IOPS, pmcache ${pm[-1]} IOPS" >&2
done
python3 - "${ref[*]}" "${pm[*]}" <<'PY'
import statistics, sys
ref = [int(x) for x in sys.argv[1].split()]; pm = [int(x) for x in sys.argv[2].split()]
r, p = statistics.median(ref), statistics.median(pm)
print(f"4 KiB random write, working set 4x cache, steady state (medians of {len(ref)}):")
print(f"  backing file (nbdkit file): {r:10.0f} IOPS")
print(f"  pmcache (writeback-bound):  {p:10.0f} IOPS   ratio {p/r:.2f}  (target >= 0.9)")
PY
