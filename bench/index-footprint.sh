#!/usr/bin/env bash
# Heap bytes per cached extent and replay rate of the index (issue 10):
# src/test/java/io/pmcache/bench/IndexFootprint.java.
#
# Usage: bench/index-footprint.sh [heap N [random|sequential|sparse] | replay N [rounds] | alloc [warm [ops]]]
#   no args     heap 1M random, heap 1M sequential, heap 10M random, replay 1M (3 reopens)
#   heap N      N separate 4 KiB extents into a RangeIndex as the write path inserts them;
#               heap used after a full GC per extent
#   replay N    a cache on /dev/shm with N 4 KiB keys (needs N x 4.5 KiB of /dev/shm: 4.5 GiB
#               for 1M), reopened: replay keys/s and heap per extent of the open cache
#   alloc       HotPathAlloc: heap bytes the caller allocates per 4 KiB read hit and 4 KiB write
# Env: SKIP_BUILD=1 to use the classes already in target/; HEAP (default 6g) for -Xmx.
# Each run is nice'd: the machine may be shared.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
. bin/jdk25-env

cp_file=target/jmh.classpath
if [ "${SKIP_BUILD:-0}" != 1 ] || [ ! -s "$cp_file" ]; then
  mkdir -p target
  { mvn -B -q -ntp -o -DskipTests test-compile \
      && mvn -B -q -ntp -o dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile="$cp_file"; \
  } >target/index-footprint-build.log 2>&1 || { cat target/index-footprint-build.log >&2; exit 1; }
fi
cp="target/test-classes:target/classes:$(cat "$cp_file")"

run() {
  main=io.pmcache.bench.IndexFootprint
  if [ "${1:-}" = alloc ]; then main=io.pmcache.bench.HotPathAlloc; shift; fi
  nice java --enable-native-access=ALL-UNNAMED -XX:+UseG1GC -Xms"${HEAP:-6g}" -Xmx"${HEAP:-6g}" \
    -cp "$cp" "$main" "$@"
}

echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo ?), load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ $# -gt 0 ]; then
  run "$@"
else
  run heap 1M random
  run heap 1M sequential
  run heap 10M random
  run replay 1M 3
fi
