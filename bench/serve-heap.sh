#!/usr/bin/env bash
# Heap bytes per cached extent of a running `pmcache serve` (issue 10): heap used after a full GC
# before and after fio writes every 4 KiB block of a 1 GiB device once, in random order (262,144
# separate extents). Cache (3 GiB, sparse) and backing file on /dev/shm; writeback off so that
# every extent stays in the index. Needs fio with its nbd engine, and jcmd.
# Usage: bench/serve-heap.sh
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
. "$here/bin/jdk25-env"
d=$(mktemp -d /dev/shm/pmcache-serve-heap.XXXXXX)
PMCACHE_JAVA_OPTS="-XX:+UseG1GC -Xmx2g" nice "$here/bin/pmcache" serve --cache "$d/cache.img" --cache-size 3G \
  --backing "$d/backing.img" --backing-size 1G --socket "$d/sock" --no-writeback >"$d/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$d"' EXIT
for _ in $(seq 1 300); do [ -S "$d/sock" ] && break; sleep 1; done
[ -S "$d/sock" ] || { cat "$d/serve.log" >&2; exit 1; }
used() {
  jcmd $pid GC.run >/dev/null; sleep 1; jcmd $pid GC.run >/dev/null
  jcmd $pid GC.heap_info | grep -o 'used [0-9]*K' | head -1 | grep -o '[0-9]*'
}
before=$(used)
nice fio --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=$d/sock" --rw=randwrite --bs=4k --size=1G \
  --iodepth=16 --output="$d/fio.txt" >/dev/null
after=$(used)
echo "serve heap used after GC: before ${before} KiB, after ${after} KiB:" \
  "$(( (after - before) * 1024 / 262144 )) B per 4 KiB extent (load $(cut -d' ' -f1 /proc/loadavg))"
