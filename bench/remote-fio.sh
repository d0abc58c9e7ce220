#!/usr/bin/env bash
# pmcache in front of a slow remote NBD export versus that remote alone, in the same run:
# 4 KiB random writes and random reads at QD1 and QD32 with fio's nbd engine. The remote is
# `nbdkit --filter=delay memory SET delay-read=2ms delay-write=2ms` on a unix socket (a disk
# 2 ms away); pmcache serves a cache (larger than the working set) with --backing nbd+unix://...
#
# Reads through pmcache are measured warm (the working set was written through pmcache first, so
# every read is a hit) and cold (a fresh cache: every first read of a block is a miss that goes to
# the remote, then fills the cache). Prints IOPS and median completion latency per job, and the
# ratio remote/pmcache of the medians (the issue's target: >= 10 for QD1 random writes).
#
# Usage: bench/remote-fio.sh     env: SET (64M)  CACHE (256M)  RUNTIME (8)  DELAY (2ms)  CACHE_DIR (/dev/shm)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
SET="${SET:-64M}"; CACHE="${CACHE:-256M}"; RUNTIME="${RUNTIME:-8}"; DELAY="${DELAY:-2ms}"
CACHE_DIR="${CACHE_DIR:-/dev/shm}"
for tool in fio nbdkit nbdinfo python3; do
  command -v "$tool" >/dev/null || { echo "remote-fio.sh: $tool is not installed" >&2; exit 1; }
done
work="$(mktemp -d "$CACHE_DIR/pmcache-remote.XXXXXX")"
rpid=""; ppid_=""
cleanup() {
  [ -n "$ppid_" ] && kill "$ppid_" 2>/dev/null; [ -n "$rpid" ] && kill "$rpid" 2>/dev/null
  wait 2>/dev/null || true; rm -rf "$work"
}
trap cleanup EXIT
bin/pmcache --version >/dev/null   # build once, outside the measurement

wait_ready() { for _ in $(seq 1 600); do nbdinfo "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "nobody answers on $1" >&2; exit 1; }
remote_uri="nbd+unix:///?socket=$work/remote.sock"
pm_uri="nbd+unix:///?socket=$work/pm.sock"

start_remote() {
  rm -f "$work/remote.sock"
  nbdkit -f -U "$work/remote.sock" --filter=delay memory "$SET" delay-read="$DELAY" delay-write="$DELAY" & rpid=$!
  wait_ready "$remote_uri"
}
stop_remote() { kill -TERM "$rpid"; wait "$rpid" 2>/dev/null || true; rpid=""; }
start_pm() {
  rm -f "$work/cache.img" "$work/pm.sock"
  bin/pmcache serve --cache "$work/cache.img" --cache-size "$CACHE" --segment-size 4M \
      --backing "$remote_uri" --socket "$work/pm.sock" >"$work/pm.out" 2>"$work/pm.err" & ppid_=$!
  wait_ready "$pm_uri"
}
stop_pm() { kill -TERM "$ppid_"; wait "$ppid_" 2>/dev/null || true; ppid_=""; }

# job uri rw qd -> "IOPS median-latency-us"
job() {
  fio --name=j --ioengine=nbd --uri="$1" --rw="$2" --bs=4k --iodepth="$3" --size="$SET" --time_based \
      --runtime="$RUNTIME" --norandommap --randrepeat=0 --output-format=json 2>/dev/null | python3 -c '
import json, sys
t = sys.stdin.read(); j = json.loads(t[t.index("{"):])["jobs"][0]
d = j["write"] if j["write"]["io_bytes"] > 0 else j["read"]
print(round(d["iops"]), round(d["clat_ns"]["percentile"]["50.000000"] / 1000))'
}
prefill() { fio --name=fill --ioengine=nbd --uri="$1" --rw=write --bs=1M --iodepth=8 --size="$SET" >/dev/null 2>&1; }

declare -A res
start_remote
prefill "$remote_uri"
for rw in randwrite randread; do for qd in 1 32; do res[remote,$rw,$qd]="$(job "$remote_uri" "$rw" "$qd")"; done; done
echo "remote alone: done" >&2
start_pm
for qd in 1 32; do res[cold,randread,$qd]="$(job "$pm_uri" randread "$qd")"; done
stop_pm
start_pm
prefill "$pm_uri"
for rw in randwrite randread; do for qd in 1 32; do res[pm,$rw,$qd]="$(job "$pm_uri" "$rw" "$qd")"; done; done
stop_pm
stop_remote

python3 - "$DELAY" "$SET" "$CACHE" "$RUNTIME" \
  "${res[remote,randwrite,1]}" "${res[remote,randwrite,32]}" "${res[remote,randread,1]}" "${res[remote,randread,32]}" \
  "${res[pm,randwrite,1]}" "${res[pm,randwrite,32]}" "${res[pm,randread,1]}" "${res[pm,randread,32]}" \
  "${res[cold,randread,1]}" "${res[cold,randread,32]}" <<'PY'
import sys
delay, s, cache, rt = sys.argv[1:5]
v = [tuple(int(x) for x in a.split()) for a in sys.argv[5:]]
names = ["randwrite QD1", "randwrite QD32", "randread QD1", "randread QD32"]
print(f"4 KiB random I/O, working set {s}, remote = nbdkit memory + delay {delay} per request, "
      f"pmcache cache {cache}, {rt} s per job")
print(f"{'job':16} {'remote IOPS':>12} {'p50 us':>8} {'pmcache IOPS':>13} {'p50 us':>8} {'p50 remote/pmcache':>19}")
for i, n in enumerate(names):
    r, p = v[i], v[4 + i]
    print(f"{n:16} {r[0]:12d} {r[1]:8d} {p[0]:13d} {p[1]:8d} {r[1] / max(p[1], 1):19.1f}")
for i, n in enumerate(["randread QD1", "randread QD32"]):
    r, c = v[2 + i], v[8 + i]
    print(f"{n + ' cold':16} {r[0]:12d} {r[1]:8d} {c[0]:13d} {c[1]:8d} {r[1] / max(c[1], 1):19.1f}   (pmcache with an empty cache: misses)")
PY
