# Shared by the fio benchmarks over NBD (bench/nbd-fio.sh, bench/nbd-tls-fio.sh); sourced, not run.
# The caller sets BENCH (its name, for messages) and has cd'ed to the repository.
#   bench_dirs PREFIX     WORK (scratch, default a new temp dir) and CACHE_DIR (default a new dir on
#                         /dev/shm, else $WORK), both exported, removed at exit if made here; the
#                         exit trap also stops every pid in the array `pids`
#   bench_need TOOL...    exits with a message when a tool is missing
#   wait_ready URI        waits (bounded, 60 s) until nbdinfo answers on URI
#   bench_banner          the machine and tool versions, on stderr
#   fio_args WORKLOAD     fio options of a named workload
#   fio_row W T URI OUT   runs workload W against target T at URI (fio JSON to OUT), prints the TSV
#                         row "W  T  IOPS  MiB/s  p99-completion-us"
#   size_bytes SIZE       fio size syntax (256M) to bytes

pids=()
bench_dirs() { # prefix
  own_work=0
  if [ -z "${WORK:-}" ]; then WORK="$(mktemp -d "/tmp/$1.XXXXXX")"; own_work=1; fi
  own_cache_dir=0
  if [ -z "${CACHE_DIR:-}" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then CACHE_DIR="$(mktemp -d "/dev/shm/$1.XXXXXX")"; own_cache_dir=1
    else CACHE_DIR="$WORK"; fi
  fi
  export WORK CACHE_DIR
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$own_work" = 1 ]; then rm -rf "$WORK"; fi
  if [ "$own_cache_dir" = 1 ]; then rm -rf "$CACHE_DIR"; fi
}

bench_need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$BENCH: $tool is not installed" >&2; exit 1; }
  done
}

wait_ready() { # uri
  for _ in $(seq 1 600); do
    if nbdinfo "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "$BENCH: nothing answers on $1" >&2; exit 1
}

bench_banner() {
  echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')," \
       "$(free -g | awk '/Mem:/{print $2}') GiB RAM, Linux $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "tools: $(fio --version), nbdkit $(nbdkit --version | awk '{print $2}'), $(. bin/jdk25-env && java -version 2>&1 | head -1)"
}

size_bytes() { python3 -c "import sys;s=sys.argv[1];m={'K':1<<10,'M':1<<20,'G':1<<30}.get(s[-1].upper());print(int(s[:-1])*m if m else int(s))" "$1"; }

fio_args() { # workload -> fio options
  case "$1" in
    randwrite-qd1)   echo "--rw=randwrite --bs=4k --iodepth=1" ;;
    randwrite-qd32)  echo "--rw=randwrite --bs=4k --iodepth=32" ;;
    randread-qd1)    echo "--rw=randread --bs=4k --iodepth=1" ;;
    randread-qd32)   echo "--rw=randread --bs=4k --iodepth=32" ;;
    seqwrite-128k)   echo "--rw=write --bs=128k --iodepth=8" ;;
    seqread-1m)      echo "--rw=read --bs=1M --iodepth=4" ;;
    randwrite-flush) echo "--rw=randwrite --bs=4k --iodepth=1 --fsync=1" ;;
    *) echo "$BENCH: unknown workload $1" >&2; exit 1 ;;
  esac
}

fio_row() { # workload target uri out.json
  # shellcheck disable=SC2046
  fio --name="$1" --ioengine=nbd --uri="$3" $(fio_args "$1") --size="$SIZE" \
      --time_based --runtime="$RUNTIME" --ramp_time="$RAMP" --output-format=json --output="$4" >/dev/null
  python3 - "$4" "$1" "$2" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
side = "read" if job["read"]["io_bytes"] > job["write"]["io_bytes"] else "write"
s = job[side]
p99 = s["clat_ns"].get("percentile", {}).get("99.000000", 0) / 1000.0
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{s['iops']:.0f}\t{s['bw_bytes'] / 2**20:.1f}\t{p99:.1f}")
PY
}
