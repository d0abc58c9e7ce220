#!/usr/bin/env bash
# JMH benchmarks of the engine (src/test/java/io/pmcache/bench): EngineBenchmark (4 KiB write,
# 4 KiB read hit, 64 KiB write on 1 and 2 threads, cache on /dev/shm) and, in the same run,
# MemcpyBaseline (plain MemorySegment.copy into the same kind of mapped medium: the limit).
#
# Usage: bench/jmh.sh [JMH args...]
#   no args      both classes with short settings: 1 fork, 5 x 200 ms warm-up, 10 x 200 ms
#                measurement (short iterations: the cache must hold one iteration of writes)
#   JMH args     passed through; each default option not given is added, e.g.
#                  bench/jmh.sh 'EngineBenchmark.write4k.*' -prof gc
#                  bench/jmh.sh -i 10 -rf json -rff results.json
#                  bench/jmh.sh -p cacheMiB=12288
#                A first argument that does not start with '-' is a benchmark regexp and replaces
#                the default selection.
# Env: SKIP_BUILD=1 to use the classes already in target/.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
. bin/jdk25-env

cp_file=target/jmh.classpath
if [ "${SKIP_BUILD:-0}" != 1 ] || [ ! -s "$cp_file" ]; then
  mkdir -p target
  { mvn -B -q -ntp -DskipTests test-compile \
      && mvn -B -q -ntp dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile="$cp_file"; \
  } >target/jmh-build.log 2>&1 || { cat target/jmh-build.log >&2; exit 1; }
fi
cp="target/test-classes:target/classes:$(cat "$cp_file")"

select=('io.pmcache.bench.(EngineBenchmark|MemcpyBaseline).*')
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  select=("$1")
  shift
fi

# JMH refuses an option given twice: add each default only when the caller did not give it.
defaults=(-f 1 -wi 5 -w 200ms -i 10 -r 200ms -foe true)
opts=()
for ((k = 0; k < ${#defaults[@]}; k += 2)); do
  given=0
  for a in "$@"; do [ "$a" = "${defaults[k]}" ] && given=1; done
  [ $given = 1 ] || opts+=("${defaults[k]}" "${defaults[k+1]}")
done

exec java --enable-native-access=ALL-UNNAMED -cp "$cp" org.openjdk.jmh.Main \
  "${opts[@]}" "${select[@]}" "$@"
