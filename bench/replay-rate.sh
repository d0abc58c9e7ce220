#!/usr/bin/env bash
# Replay rate on a large key log (issue 10): fills a cache on /dev/shm with N 4 KiB keys once
# (IndexFootprint fill: ~65 bytes of medium per key), then reopens it and prints the replay
# keys/s of each open (the cache's own replay timer).
#
# Usage: bench/replay-rate.sh [N (default 2M)] [random|sequential] [rounds (default 5)]
# Env:   BASELINE=dir  classes of another build (a copy of its target/classes): each round then
#                      reopens with BASELINE and with this build, alternately (A/B interleaved,
#                      the same files), so a loaded machine slows both alike.
#        AOT=1        instead of BASELINE: builds target/pmcache.aot with bin/pmcache-aot (the
#                      AOT cache bin/pmcache uses), then each round reopens without and with
#                      -XX:AOTCache=target/pmcache.aot, alternately. Both sides run with
#                      target/pmcache.jar first on the class path (an AOT cache is only used with
#                      the class path it was trained on, or one that extends it), then a jar of
#                      target/test-classes (directories are not allowed after the trained jar).
#        JOPTS        extra JVM options for this build's side (e.g. GC settings to A/B).
#        SKIP_BUILD=1, HEAP (default 4g) as in bench/index-footprint.sh.
# nice'd: the machine may be shared.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
. bin/jdk25-env
n="${1:-2M}"; order="${2:-random}"; rounds="${3:-5}"

cp_file=target/jmh.classpath
if [ "${SKIP_BUILD:-0}" != 1 ] || [ ! -s "$cp_file" ]; then
  mkdir -p target
  { mvn -B -q -ntp -o -DskipTests test-compile \
      && mvn -B -q -ntp -o dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile="$cp_file"; \
  } >target/replay-rate-build.log 2>&1 || { cat target/replay-rate-build.log >&2; exit 1; }
fi
deps="$(cat "$cp_file")"
tests=target/test-classes
if [ "${AOT:-0}" = 1 ]; then
  bin/pmcache-aot
  jar cf target/replay-rate-tests.jar -C target/test-classes .
  tests="$here/target/pmcache.jar:target/replay-rate-tests.jar"
fi
run() { # classes-dir-or-jar [jvm options...] -- args...
  local classes="$1"; shift
  local opts=(); while [ "$1" != -- ]; do opts+=("$1"); shift; done; shift
  nice java --enable-native-access=ALL-UNNAMED -XX:+UseG1GC -Xms"${HEAP:-4g}" -Xmx"${HEAP:-4g}" "${opts[@]}" \
    -cp "$tests:$classes:$deps" io.pmcache.bench.IndexFootprint "$@"
}
dir="$(mktemp -d /dev/shm/pmcache-replay-XXXXXX)"
trap 'rm -rf "$dir"' EXIT
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo ?), load average $(cut -d' ' -f1-3 /proc/loadavg)"
run target/classes -- fill "$n" "$order" "$dir"
if [ "${AOT:-0}" = 1 ]; then
  for r in $(seq 1 "$rounds"); do
    echo -n "no AOT   "; run target/pmcache.jar -- reopen "$n" "$dir" 1
    echo -n "AOT      "; run target/pmcache.jar -XX:AOTCache="$here/target/pmcache.aot" -- reopen "$n" "$dir" 1
  done
else
  for r in $(seq 1 "$rounds"); do
    if [ -n "${BASELINE:-}" ]; then
      echo -n "baseline "; run "$BASELINE" -- reopen "$n" "$dir" 1
    fi
    # shellcheck disable=SC2086
    echo -n "this     "; run target/classes ${JOPTS:-} -- reopen "$n" "$dir" 1
  done
fi
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
