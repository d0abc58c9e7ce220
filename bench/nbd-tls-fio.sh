#!/usr/bin/env bash
# The cost of TLS: fio (nbd engine) against one `pmcache serve --tls=on` server, plain
# (nbd+unix://) and TLS (nbds+unix://) in the same run, interleaved, and the same pair against
# `nbdkit --tls=on memory` as a reference for what TLS costs another server.
# Workloads: 4 KiB random read at queue depth 1 and 32, 4 KiB random write at queue depth 32,
# 1 MiB sequential read at queue depth 4 (bandwidth: where encryption costs most).
#
# Usage: bench/nbd-tls-fio.sh     env: SIZE (default 256M), RUNTIME (5), RAMP (1), REPEATS (1),
#        WORK (scratch dir, default a new temp dir), CACHE_DIR (default a new dir on /dev/shm).
# Needs fio (nbd engine, libnbd with GnuTLS), nbdkit, nbdinfo, certtool (gnutls-bin), python3.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
SIZE="${SIZE:-256M}"; RUNTIME="${RUNTIME:-5}"; RAMP="${RAMP:-1}"; REPEATS="${REPEATS:-1}"
own_work=0; if [ -z "${WORK:-}" ]; then WORK="$(mktemp -d /tmp/pmcache-tls-bench.XXXXXX)"; own_work=1; fi
own_cache=0; if [ -z "${CACHE_DIR:-}" ]; then CACHE_DIR="$(mktemp -d /dev/shm/pmcache-tls-bench.XXXXXX)"; own_cache=1; fi
for tool in fio nbdkit nbdinfo certtool python3; do
  command -v "$tool" >/dev/null || { echo "nbd-tls-fio.sh: $tool is not installed" >&2; exit 1; }
done
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$own_work" = 1 ]; then rm -rf "$WORK"; fi
  if [ "$own_cache" = 1 ]; then rm -rf "$CACHE_DIR"; fi
}
trap cleanup EXIT

# ---- certificates (ECDSA; see docs/connect.md)
pki="$WORK/pki"; mkdir -p "$pki/server" "$pki/client"
{
  printf 'cn = bench CA\nca\ncert_signing_key\nexpiration_days = 2\n' >"$pki/ca.info"
  printf 'cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 2\n' >"$pki/server.info"
  certtool --generate-privkey --key-type ecdsa --outfile "$pki/ca-key.pem"
  certtool --generate-self-signed --load-privkey "$pki/ca-key.pem" --template "$pki/ca.info" --outfile "$pki/ca-cert.pem"
  certtool --generate-privkey --key-type ecdsa --outfile "$pki/server/server-key.pem"
  certtool --generate-certificate --load-ca-certificate "$pki/ca-cert.pem" --load-ca-privkey "$pki/ca-key.pem" \
      --load-privkey "$pki/server/server-key.pem" --template "$pki/server.info" --outfile "$pki/server/server-cert.pem"
  cp "$pki/ca-cert.pem" "$pki/server/"; cp "$pki/ca-cert.pem" "$pki/client/"
} >/dev/null 2>&1

{
  echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "tools: $(fio --version), nbdkit $(nbdkit --version | awk '{print $2}'), $(. bin/jdk25-env && java -version 2>&1 | head -1)"
  echo "size $SIZE, runtime ${RUNTIME}s (+${RAMP}s ramp), $REPEATS rounds"
} >&2

bin/pmcache --version >/dev/null # builds the jar first if needed
bin/pmcache serve --cache "$CACHE_DIR/cache.img" --cache-size 1G --backing "$WORK/backing.img" --backing-size "$SIZE" \
    --socket "$WORK/pmcache.sock" --tls=on --tls-certificates "$pki/server" >"$WORK/pmcache.log" 2>&1 &
pids+=($!)
nbdkit -f -U "$WORK/memory.sock" --tls=on --tls-certificates="$pki/server" memory size="$SIZE" >"$WORK/nbdkit.log" 2>&1 &
pids+=($!)
# fio's nbd engine refuses tls-certificates= in a URI (libnbd's "local file access"), so the
# client certificates go where libnbd looks by default: $HOME/.pki/libnbd
mkdir -p "$WORK/home/.pki" && cp -r "$pki/client" "$WORK/home/.pki/libnbd"
export HOME="$WORK/home"
declare -A URI=(
  [pm-plain]="nbd+unix:///?socket=$WORK/pmcache.sock"
  [pm-tls]="nbds+unix:///?socket=$WORK/pmcache.sock"
  [kit-plain]="nbd+unix:///?socket=$WORK/memory.sock"
  [kit-tls]="nbds+unix:///?socket=$WORK/memory.sock"
)
TARGETS="pm-plain pm-tls kit-plain kit-tls"
for t in $TARGETS; do
  for _ in $(seq 1 600); do nbdinfo "${URI[$t]}" >/dev/null 2>&1 && break; sleep 0.1; done
  nbdinfo "${URI[$t]}" >/dev/null || { echo "nothing answers on ${URI[$t]}" >&2; exit 1; }
done
for t in pm-plain kit-plain; do
  fio --name=fill --ioengine=nbd --uri="${URI[$t]}" --rw=write --bs=1M --iodepth=4 --size="$SIZE" --output=/dev/null
done

fio_args() {
  case "$1" in
    randread-qd1)   echo "--rw=randread --bs=4k --iodepth=1" ;;
    randread-qd32)  echo "--rw=randread --bs=4k --iodepth=32" ;;
    randwrite-qd32) echo "--rw=randwrite --bs=4k --iodepth=32" ;;
    seqread-1m)     echo "--rw=read --bs=1M --iodepth=4" ;;
  esac
}
results="$WORK/results.tsv"; : >"$results"
for rep in $(seq 1 "$REPEATS"); do
  for w in randread-qd1 randread-qd32 randwrite-qd32 seqread-1m; do
    for t in $TARGETS; do
      out="$WORK/$w-$t-$rep.json"
      # shellcheck disable=SC2046
      fio --name="$w" --ioengine=nbd --uri="${URI[$t]}" $(fio_args "$w") --size="$SIZE" --time_based \
          --runtime="$RUNTIME" --ramp_time="$RAMP" --output-format=json --output="$out" >/dev/null
      python3 - "$out" "$w" "$t" >>"$results" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
side = "read" if job["read"]["io_bytes"] > job["write"]["io_bytes"] else "write"
s = job[side]
p99 = s["clat_ns"].get("percentile", {}).get("99.000000", 0) / 1000.0
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{s['iops']:.0f}\t{s['bw_bytes'] / 2**20:.0f}\t{p99:.0f}")
PY
      echo "round $rep: $(tail -1 "$results")" >&2
    done
  done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
med = {}
for w, t, iops, mib, p99 in rows:
    med.setdefault((w, t), []).append((float(iops), float(mib), float(p99)))
order = list(dict.fromkeys(r[0] for r in rows))
m = lambda w, t, i: statistics.median(x[i] for x in med[(w, t)])
print(f"{'workload':<15}{'pm plain':>10}{'pm TLS':>10}{'TLS/plain':>10}{'kit plain':>11}{'kit TLS':>10}{'TLS/plain':>10}   p99 us pm plain/TLS, kit plain/TLS")
for w in order:
    i = 1 if w.startswith("seq") else 0
    unit = "MiB/s" if i else "IOPS"
    a, b, c, d = (m(w, t, i) for t in ("pm-plain", "pm-tls", "kit-plain", "kit-tls"))
    print(f"{w + ' ' + unit:<15}{a:>10.0f}{b:>10.0f}{b / a:>10.2f}{c:>11.0f}{d:>10.0f}{d / c:>10.2f}"
          f"   {m(w, 'pm-plain', 2):.0f}/{m(w, 'pm-tls', 2):.0f}, {m(w, 'kit-plain', 2):.0f}/{m(w, 'kit-tls', 2):.0f}")
PY
