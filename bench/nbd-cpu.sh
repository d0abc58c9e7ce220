#!/usr/bin/env bash
# Server CPU per request, throughput and p99 of several pmcache builds against `nbdkit memory`,
# in the same run, interleaved round by round. Each build serves a new 1 GiB cache on /dev/shm in
# front of a new sparse 256 MiB backing file; every target is filled once (sequential 1 MiB
# writes) before the rounds. "server cpu/op" is the server process's user+system CPU time
# (/proc/PID/stat) during the fio run divided by the requests it completed: on a shared, loaded
# machine it is steadier than IOPS, which depend on how much CPU the scheduler hands each process.
# The builds' order rotates from round to round (see below); compare medians over rounds.
#
# Usage: bench/nbd-cpu.sh JAR[|JVM-OPTIONS[|SERVE-OPTIONS]]...
#   e.g. bench/nbd-cpu.sh /tmp/main.jar target/pmcache.jar "target/pmcache.jar|-XX:TieredStopAtLevel=1"
#        bench/nbd-cpu.sh target/pmcache.jar "target/pmcache.jar||--writeback-target 50"
# Env: ROUNDS (3) RUNTIME seconds (5) RW fio --rw (randwrite) BS (4k) QD (32) CACHE_SIZE (1G)
#      PERF=1: perf record the builds in the last round (perf-jN.data and the JIT map in $OUTDIR)
#      JOPTS: JVM options for every build (e.g. -XX:+UnlockDiagnosticVMOptions -XX:+CITime)
#      ADMIN_PORT (19370): build N serves its admin endpoint on 127.0.0.1:ADMIN_PORT+N; each round
#      prints the share of requests that ran inline and that were streamed, the takeovers, the bytes of the keys whose
#      writeback completed (backing device synced, dirty tail moved; counted before a batch's
#      newest-wins merge), the data bytes writeback wrote to the backing device (after that merge)
#      and the writer waits for space during the fio run (/metrics), when it has them
# Needs fio (nbd engine), nbdkit, nbdinfo, python3, curl.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
. "$here/bin/jdk25-env"
OUTDIR=${OUTDIR:-$PWD}
ADMIN_PORT=${ADMIN_PORT:-19370}; ROUNDS=${ROUNDS:-3}; RUNTIME=${RUNTIME:-5}; RW=${RW:-randwrite}; QD=${QD:-32}; BS=${BS:-4k}; CACHE_SIZE=${CACHE_SIZE:-1G}
[ $# -ge 1 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
W=$(mktemp -d /tmp/pmcache-cpu.XXXXXX); C=$(mktemp -d /dev/shm/pmcache-cpu.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for f in "$W"/j*.log; do grep -q -E "Total compilation" "$f" && { echo "== $f"; grep -E "C1 \{|C2 \{|Total compilation" "$f"; }; done || true
  rm -rf "$W" "$C"
}
trap cleanup EXIT
declare -A SOCK PID
i=0
for j in "$@"; do
  i=$((i+1)); n="j$i"
  jar=${j%%|*}; opts=""; [ "$jar" != "$j" ] && opts=${j#*|}
  sopts=""; case "$opts" in *"|"*) sopts=${opts#*|}; opts=${opts%%|*} ;; esac
  echo "j$i: $jar ${opts} ${sopts:+(serve $sopts)}" >&2
  # shellcheck disable=SC2086
  java --enable-native-access=ALL-UNNAMED ${JOPTS:-} $opts -jar "$jar" serve --cache "$C/$n.img" --cache-size "$CACHE_SIZE" \
      --backing "$W/$n.back" --backing-size 256M --socket "$W/$n.sock" \
      --admin "127.0.0.1:$((ADMIN_PORT + i))" $sopts >"$W/$n.log" 2>&1 &
  PID[$n]=$!; pids+=($!); SOCK[$n]=$W/$n.sock
done
nbdkit -f -U "$W/mem.sock" memory size=256M & PID[mem]=$!; pids+=($!); SOCK[mem]=$W/mem.sock
names="$(seq -f j%g 1 $#) mem"
for n in $names; do
  for _ in $(seq 600); do nbdinfo "nbd+unix:///?socket=${SOCK[$n]}" >/dev/null 2>&1 && break; sleep 0.1; done
done
for n in $names; do
  fio --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=${SOCK[$n]}" --rw=write --bs=1M --iodepth=4 --size=256M >/dev/null
done
sleep 2
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
inl() { # "inline-requests takeovers requests writeback-bytes writer-waits written-bytes streamed-writes" of build $1 (j1...), or zeros
  [ "$1" = mem ] && { echo "0 0 0 0 0 0 0"; return; }
  curl -s "http://127.0.0.1:$((ADMIN_PORT + ${1#j}))/metrics" 2>/dev/null | awk '
    /^pmcache_nbd_inline_requests_total/ {a=$2} /^pmcache_nbd_inline_takeovers_total/ {b=$2}
    /^pmcache_nbd_requests_total/ {c+=$2} /^pmcache_writeback_bytes_total/ {d=$2} /^pmcache_writer_waits_total/ {e=$2} /^pmcache_writeback_written_bytes_total/ {f=$2}
    /^pmcache_nbd_streamed_writes_total/ {g=$2}
    END {if (a == "") c = 0; printf "%.0f %.0f %.0f %.0f %.0f %.0f %.0f\n", a, b, c, d, e, f, g}' # %d is 32-bit in mawk
}
tck=$(getconf CLK_TCK)
echo "load $(cut -d' ' -f1-3 /proc/loadavg), $RW bs $BS QD $QD, ${RUNTIME}s x $ROUNDS rounds"
nb=$#
for r in $(seq "$ROUNDS"); do
  # The builds' order rotates each round: a build measured right after another shares the CPUs
  # with the other's writeback and gc of what it was just sent (a strong bias in a fixed order).
  order=""
  for k in $(seq 0 $((nb - 1))); do order="$order j$(( (r - 1 + k) % nb + 1 ))"; done
  for n in $order mem; do
    perfpid=
    if [ "${PERF:-0}" = 1 ] && [ "$n" != mem ] && [ "$r" = "$ROUNDS" ]; then
      perf record -F 499 -g -p "${PID[$n]}" -o "$OUTDIR/perf-$n.data" -- sleep "$RUNTIME" >/dev/null 2>&1 & perfpid=$!
    fi
    m0=$(inl "$n"); c0=$(cpu "${PID[$n]}")
    fio --name=w --ioengine=nbd --uri="nbd+unix:///?socket=${SOCK[$n]}" --rw="$RW" --bs="$BS" --iodepth="$QD" \
        --size=256M --time_based --runtime="$RUNTIME" --output-format=json --output="$W/o.json" >/dev/null
    c1=$(cpu "${PID[$n]}"); m1=$(inl "$n")
    if [ -n "$perfpid" ]; then
      wait "$perfpid" || true
      jcmd "${PID[$n]}" Compiler.perfmap >/dev/null 2>&1 && cp "/tmp/perf-${PID[$n]}.map" "$OUTDIR/" || true
    fi
    python3 - "$W/o.json" "$n" "$r" "$c0" "$c1" "$tck" "$m0" "$m1" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
side = "write" if j["write"]["io_bytes"] > j["read"]["io_bytes"] else "read"
s = j[side]
ops = s["total_ios"]
us = (int(sys.argv[5]) - int(sys.argv[4])) * 1e6 / int(sys.argv[6])
p99 = s["clat_ns"].get("percentile", {}).get("99.000000", 0) / 1000
print(f"round {sys.argv[3]} {sys.argv[2]:4} iops {s['iops']:8.0f}  p99 {p99:9.1f} us  server cpu/op {us / max(ops, 1):6.1f} us"
      f"  load {open('/proc/loadavg').read().split()[0]}", end="")
m0, m1 = [list(map(float, a.split())) for a in sys.argv[7:9]]
if m1[2] > m0[2]:
    print(f"  inline {100 * (m1[0] - m0[0]) / (m1[2] - m0[2]):5.1f}%  streamed {100 * (m1[6] - m0[6]) / (m1[2] - m0[2]):5.1f}%"
          f"  takeovers {m1[1] - m0[1]:.0f}"
          f"  synced back {(m1[3] - m0[3]) / 2**20:.0f} MiB  to backing {(m1[5] - m0[5]) / 2**20:.0f} MiB"
          f"  writer waits {m1[4] - m0[4]:.0f}", end="")
print()
PY
  done
done
