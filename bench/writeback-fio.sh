#!/usr/bin/env bash
# Sustained 4 KiB random-write throughput when the working set is 4x the cache, so the cache is
# full and every write waits for writeback and gc (writeback-bound), beside the backing device's
# own throughput for the same pattern — measured in the same run, interleaved, repeated. Prints
# medians and ratios.
#
# pmcache must make every written-back batch durable on the backing device before gc may reuse
# its space, so its steady state is bounded by what the backing device sustains *durably*. The
# references, all on the same kind of backing file:
#   durable   nbdkit file, same fio job: FLUSH (fdatasync) after every FLUSH_EVERY writes (64 MiB)
#   direct    fio straight on the backing file, O_DIRECT libaio, same queue depth, no NBD: the
#             device's raw random-write rate, an upper bound for any writeback-bound cache
#   pagecache nbdkit file without FLUSH: the data stays in the page cache (RAM) and is never
#             made durable during the run; shown for transparency, not a device rate
# pmcache runs the same job as "durable" (its FLUSH is cheap: it seals the key log).
#
# Usage: bench/writeback-fio.sh      env: CACHE (256M)  SET (1G, the working set)  RUNTIME (40)
#        RAMP (15, excluded: the cache fills during it)  REPEATS (3)  QD (32)  FLUSH_EVERY (16384)
#        CACHE_DIR (/dev/shm)  BACKING_DIR (/var/tmp: a real disk filesystem)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
CACHE="${CACHE:-256M}"; SET="${SET:-1G}"; RUNTIME="${RUNTIME:-40}"; RAMP="${RAMP:-15}"
REPEATS="${REPEATS:-3}"; QD="${QD:-32}"; FLUSH_EVERY="${FLUSH_EVERY:-16384}"
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
iops() { python3 -c 'import json,sys; t=sys.stdin.read(); print(round(json.loads(t[t.index("{"):])["jobs"][0]["write"]["iops"]))'; }

run_nbd() { # uri fsync-every(0 = never) -> prints IOPS
  fio --name=wb --ioengine=nbd --uri="$1" --rw=randwrite --bs=4k --iodepth="$QD" --size="$SET" \
      --fsync="$2" --time_based --runtime="$RUNTIME" --ramp_time="$RAMP" --norandommap --randrepeat=0 \
      --output-format=json 2>/dev/null | iops
}

serve_ref() { # file -> starts nbdkit file on ref.sock
  nbdkit --exit-with-parent -f -U "$work_b/ref.sock" file "$1" & pid=$!
  wait_ready "nbd+unix:///?socket=$work_b/ref.sock"
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""; rm -f "$work_b"/*.sock "$work_c"/*.sock; }
fresh() { rm -f "$work_b"/* "$work_c"/*; truncate -s "$SET" "$work_b/$1"; }

pagecache=(); durable=(); direct=(); pm=()
for round in $(seq 1 "$REPEATS"); do
  fresh ref.img; serve_ref "$work_b/ref.img"
  pagecache+=("$(run_nbd "nbd+unix:///?socket=$work_b/ref.sock" 0)"); stop

  fresh ref.img; serve_ref "$work_b/ref.img"
  durable+=("$(run_nbd "nbd+unix:///?socket=$work_b/ref.sock" "$FLUSH_EVERY")"); stop

  fresh ref.img
  direct+=("$(fio --name=direct --filename="$work_b/ref.img" --ioengine=libaio --direct=1 --rw=randwrite \
      --bs=4k --iodepth="$QD" --size="$SET" --time_based --runtime="$RUNTIME" --ramp_time=5 \
      --norandommap --randrepeat=0 --output-format=json 2>/dev/null | iops)")

  rm -f "$work_b"/* "$work_c"/*
  bin/pmcache serve --cache "$work_c/cache.img" --cache-size "$CACHE" --segment-size 4M \
      --backing "$work_b/backing.img" --backing-size "$SET" --socket "$work_c/pm.sock" \
      >"$work_c/out" 2>"$work_c/err" & pid=$!
  wait_ready "nbd+unix:///?socket=$work_c/pm.sock"
  pm+=("$(run_nbd "nbd+unix:///?socket=$work_c/pm.sock" "$FLUSH_EVERY")"); stop
  echo "round $round: pagecache ${pagecache[-1]}  durable ${durable[-1]}  direct ${direct[-1]}  pmcache ${pm[-1]} IOPS" >&2
done
python3 - "${pagecache[*]}" "${durable[*]}" "${direct[*]}" "${pm[*]}" <<'PY'
import statistics, sys
pc, du, di, pm = ([int(x) for x in a.split()] for a in sys.argv[1:5])
m = statistics.median
p = m(pm)
print(f"4 KiB random write, QD32, working set 4x cache, steady state (medians of {len(pm)}):")
print(f"  backing file, durable (nbdkit file + FLUSH/64 MiB): {m(du):9.0f} IOPS   pmcache/this {p/m(du):.2f}  (target >= 0.9)")
print(f"  backing file, direct (fio O_DIRECT, no NBD):        {m(di):9.0f} IOPS   pmcache/this {p/m(di):.2f}")
print(f"  backing file, page cache only (nbdkit file):        {m(pc):9.0f} IOPS   pmcache/this {p/m(pc):.2f}")
print(f"  pmcache (writeback-bound, same job as durable):     {p:9.0f} IOPS")
PY
