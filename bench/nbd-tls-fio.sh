#!/usr/bin/env bash
# The cost of TLS, X.509 and pre-shared keys, in one run, interleaved, medians of REPEATS rounds.
# Servers: `pmcache serve --tls=on` with certificates (serves plain and X.509 TLS), a second
# `pmcache serve --tls=on --tls-psk` (PSK and X.509 do not mix, as in nbdkit), and the same pair of
# `nbdkit --tls=on memory` as a reference for what TLS costs another server.
#   fio (nbd engine): plain vs X.509 for 4 KiB random read at queue depth 1 and 32, 4 KiB random
#     write at QD 32, 1 MiB sequential read at QD 4. fio cannot do PSK: libnbd refuses the
#     tls-psk-file= URI parameter unless the program allows local files, and fio does not.
#   nbdcopy (which allows them): plain vs X.509 vs PSK, reading the whole export to null: with
#     4 KiB requests, 16 in flight, and with 1 MiB requests, 4 in flight; one connection.
#
# Usage: bench/nbd-tls-fio.sh     env: SIZE (default 256M), RUNTIME (3), RAMP (1), REPEATS (3),
#        WORKLOADS (fio's, default "randread-qd1 randread-qd32 randwrite-qd32 seqread-1m"),
#        WORK (scratch dir, default a new temp dir), CACHE_DIR (default a new dir on /dev/shm).
# Needs fio (nbd engine, libnbd with GnuTLS), nbdkit, nbdinfo, nbdcopy, certtool and psktool
# (gnutls-bin), python3.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
SIZE="${SIZE:-256M}"; RUNTIME="${RUNTIME:-3}"; RAMP="${RAMP:-1}"; REPEATS="${REPEATS:-3}"
WORKLOADS="${WORKLOADS:-randread-qd1 randread-qd32 randwrite-qd32 seqread-1m}"
BENCH=nbd-tls-fio.sh
. bench/lib.sh
bench_need fio nbdkit nbdinfo nbdcopy certtool psktool python3
bench_dirs pmcache-tls-bench

# ---- certificates (ECDSA; see docs/connect.md) and a pre-shared key
pki="$WORK/pki"; mkdir -p "$pki/server" "$pki/client" "$WORK/psk"
{
  printf 'cn = bench CA\nca\ncert_signing_key\nexpiration_days = 2\n' >"$pki/ca.info"
  printf 'cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 2\n' >"$pki/server.info"
  certtool --generate-privkey --key-type ecdsa --outfile "$pki/ca-key.pem"
  certtool --generate-self-signed --load-privkey "$pki/ca-key.pem" --template "$pki/ca.info" --outfile "$pki/ca-cert.pem"
  certtool --generate-privkey --key-type ecdsa --outfile "$pki/server/server-key.pem"
  certtool --generate-certificate --load-ca-certificate "$pki/ca-cert.pem" --load-ca-privkey "$pki/ca-key.pem" \
      --load-privkey "$pki/server/server-key.pem" --template "$pki/server.info" --outfile "$pki/server/server-cert.pem"
  cp "$pki/ca-cert.pem" "$pki/server/"; cp "$pki/ca-cert.pem" "$pki/client/"
  psktool -u bench -p "$WORK/psk/keys.psk"
} >/dev/null 2>&1
psk="$WORK/psk/keys.psk"

{
  bench_banner
  echo "size $SIZE, fio runtime ${RUNTIME}s (+${RAMP}s ramp), $REPEATS rounds"
} >&2

bin/pmcache --version >/dev/null # builds the jar first if needed
bin/pmcache serve --cache "$CACHE_DIR/cache.img" --cache-size 1G --backing "$WORK/backing.img" --backing-size "$SIZE" \
    --socket "$WORK/pmcache.sock" --tls=on --tls-certificates "$pki/server" >"$WORK/pmcache.log" 2>&1 &
pids+=($!)
bin/pmcache serve --cache "$CACHE_DIR/cache-psk.img" --cache-size 1G --backing "$WORK/backing-psk.img" \
    --backing-size "$SIZE" --socket "$WORK/pmcache-psk.sock" --tls=on --tls-psk "$psk" >"$WORK/pmcache-psk.log" 2>&1 &
pids+=($!)
nbdkit -f -U "$WORK/memory.sock" --tls=on --tls-certificates="$pki/server" memory size="$SIZE" >"$WORK/nbdkit.log" 2>&1 &
pids+=($!)
nbdkit -f -U "$WORK/memory-psk.sock" --tls=on --tls-psk="$psk" memory size="$SIZE" >"$WORK/nbdkit-psk.log" 2>&1 &
pids+=($!)
# fio's nbd engine refuses tls-certificates= in a URI (libnbd's "local file access"), so the
# client certificates go where libnbd looks by default: $HOME/.pki/libnbd
mkdir -p "$WORK/home/.pki" && cp -r "$pki/client" "$WORK/home/.pki/libnbd"
export HOME="$WORK/home"
declare -A URI=(
  [pm-plain]="nbd+unix:///?socket=$WORK/pmcache.sock"
  [pm-x509]="nbds+unix:///?socket=$WORK/pmcache.sock"
  [pm-psk]="nbds+unix://bench@/?socket=$WORK/pmcache-psk.sock&tls-psk-file=$psk"
  [kit-plain]="nbd+unix:///?socket=$WORK/memory.sock"
  [kit-x509]="nbds+unix:///?socket=$WORK/memory.sock"
  [kit-psk]="nbds+unix://bench@/?socket=$WORK/memory-psk.sock&tls-psk-file=$psk"
)
FIO_TARGETS="pm-plain pm-x509 kit-plain kit-x509"
COPY_TARGETS="pm-plain pm-x509 pm-psk kit-plain kit-x509 kit-psk"
for t in $COPY_TARGETS; do wait_ready "${URI[$t]}"; done
random="$WORK/random.img"
head -c "$(size_bytes "$SIZE")" /dev/urandom >"$random"
for t in pm-plain pm-psk kit-plain kit-psk; do # every export full of data
  nbdcopy --request-size=1048576 "$random" "${URI[$t]}"
done

copy_row() { # workload target: nbdcopy the export to null:, one connection; prints a TSV row
  local size=4096 requests=16
  if [ "$1" = copy-1m ]; then size=1048576; requests=4; fi
  local t0 t1
  t0=$(date +%s.%N)
  nbdcopy --connections=1 --threads=1 --no-extents --request-size=$size --requests=$requests "${URI[$2]}" null:
  t1=$(date +%s.%N)
  python3 -c "import sys
b, s, t = $(size_bytes "$SIZE"), $size, $t1 - $t0
print(f'$1\t$2\t{b / s / t:.0f}\t{b / t / 2**20:.1f}\t0')"
}

results="$WORK/results.tsv"; : >"$results"
for rep in $(seq 1 "$REPEATS"); do
  for w in $WORKLOADS; do
    for t in $FIO_TARGETS; do
      fio_row "$w" "$t" "${URI[$t]}" "$WORK/$w-$t-$rep.json" >>"$results"
      echo "round $rep: $(tail -1 "$results")" >&2
    done
  done
  for w in copy-4k copy-1m; do
    for t in $COPY_TARGETS; do
      copy_row "$w" "$t" >>"$results"
      echo "round $rep: $(tail -1 "$results")" >&2
    done
  done
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$results" "$REPEATS" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
med = {}
for w, t, iops, mib, p99 in rows:
    med.setdefault((w, t), []).append((float(iops), float(mib), float(p99)))
order = list(dict.fromkeys(r[0] for r in rows))
m = lambda w, t, i: statistics.median(x[i] for x in med[(w, t)]) if (w, t) in med else float("nan")
print(f"median of {sys.argv[2]} rounds; ratios are TLS / plain of the same server")
print(f"{'workload':<22}{'pm plain':>9}{'x509':>8}{'psk':>8}{'x509/pl':>8}{'psk/pl':>8}"
      f"{'kit plain':>10}{'x509':>8}{'psk':>8}{'x509/pl':>8}{'psk/pl':>8}")
for w in order:
    i = 1 if w.startswith("seq") or w == "copy-1m" else 0
    unit = "MiB/s" if i else "IOPS"
    v = [m(w, t, i) for t in ("pm-plain", "pm-x509", "pm-psk", "kit-plain", "kit-x509", "kit-psk")]
    cell = lambda x: f"{x:.0f}" if x == x else "-"
    ratio = lambda a, b: f"{a / b:.2f}" if a == a and b == b else "-"
    print(f"{w + ' ' + unit:<22}{cell(v[0]):>9}{cell(v[1]):>8}{cell(v[2]):>8}{ratio(v[1], v[0]):>8}{ratio(v[2], v[0]):>8}"
          f"{cell(v[3]):>10}{cell(v[4]):>8}{cell(v[5]):>8}{ratio(v[4], v[3]):>8}{ratio(v[5], v[3]):>8}")
PY
