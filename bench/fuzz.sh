#!/usr/bin/env bash
# Long fuzzing runs of pmcache's Jazzer targets (docs/fuzzing.md), one JVM per target.
#
#   bench/fuzz.sh                          every target for 10 minutes each
#   bench/fuzz.sh -t 30m image nbd         chosen targets, 30 minutes each
#   bench/fuzz.sh seeds                    rewrite the seed inputs from the generators
#   bench/fuzz.sh list                     the targets
#
# Without this script (plain `bin/test`) each @FuzzTest runs only its regression inputs
# (src/test/resources/<package>/<Class>Inputs/<method>/). Here JAZZER_FUZZ=1 makes Jazzer mutate
# them: the corpus it grows is kept in .cifuzz-corpus/ (not committed; later runs resume from it),
# a crashing input is written next to the regression inputs as crash-<sha1> and the run stops.
# Logs: target/fuzz/<target>.log; the last libFuzzer status line of each run is printed.
# Extra Maven arguments: FUZZ_MVN_ARGS (e.g. FUZZ_MVN_ARGS=-Dpmcache.fuzz.strict=true);
# Jazzer options as JAZZER_<OPTION> variables (e.g. JAZZER_KEEP_GOING=10: go on after findings).
set -euo pipefail
cd "$(dirname "$0")/.."
. bin/jdk25-env

declare -A TARGETS=(
  [superblock]='io.pmcache.format.FormatFuzzTest#superblock'
  [cacheinfo]='io.pmcache.format.FormatFuzzTest#cacheInfo'
  [segmentinfo]='io.pmcache.format.FormatFuzzTest#segmentInfo'
  [kset]='io.pmcache.format.FormatFuzzTest#kset'
  [key]='io.pmcache.format.FormatFuzzTest#key'
  [image]='io.pmcache.cache.ImageFuzzTest#mutatedImage'
  [nbd]='io.pmcache.nbd.NbdFuzzTest#clientBytes'
)
ORDER=(superblock cacheinfo segmentinfo kset key image nbd)
# The image target forges CRC-valid records only on purpose (and then relaxes its oracle): the
# decoders stay uninstrumented there, so libFuzzer's comparison tracing cannot solve a CRC into a
# "raw" byte mutation behind the oracle's back.
declare -A TARGET_ENV=(
  [image]='JAZZER_INSTRUMENTATION_EXCLUDES=io.pmcache.format.**'
)

time=10m
if [ "${1:-}" = -t ]; then
  time=$2
  shift 2
fi

case "${1:-}" in
  list)
    for t in "${ORDER[@]}"; do printf '%-12s %s\n' "$t" "${TARGETS[$t]}"; done
    exit 0 ;;
  seeds)
    mvn -B -ntp -q test-compile dependency:build-classpath -Dmdep.outputFile=target/fuzz-classpath.txt \
        -Dmdep.includeScope=test
    cp="target/test-classes:target/classes:$(cat target/fuzz-classpath.txt)"
    res=src/test/resources/io/pmcache
    java --enable-native-access=ALL-UNNAMED -cp "$cp" io.pmcache.format.FormatFuzzTest "$res/format/FormatFuzzTestInputs"
    java --enable-native-access=ALL-UNNAMED -cp "$cp" io.pmcache.cache.ImageFuzzTest \
        "$res/cache/ImageFuzzTestInputs/mutatedImage"
    java --enable-native-access=ALL-UNNAMED -cp "$cp" io.pmcache.nbd.NbdFuzzTest "$res/nbd/NbdFuzzTestInputs/clientBytes"
    git status --short src/test/resources
    exit 0 ;;
esac

selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${ORDER[@]}")
for t in "${selected[@]}"; do
  [ -n "${TARGETS[$t]:-}" ] || { echo "unknown target '$t'; try: bench/fuzz.sh list" >&2; exit 2; }
done

mkdir -p target/fuzz
mvn -B -ntp -q test-compile
status=0
for t in "${selected[@]}"; do
  log=target/fuzz/$t.log
  echo "== $t (${TARGETS[$t]}) for $time: $log"
  # Jazzer runs one fuzz test per JVM; surefire's own timeout stays out of the way.
  if env ${TARGET_ENV[$t]:-} JAZZER_FUZZ=1 JAZZER_MAX_DURATION=$time mvn -B -ntp -o surefire:test -Dtest="${TARGETS[$t]}" \
       -Dsurefire.failIfNoSpecifiedTests=false ${FUZZ_MVN_ARGS:-} >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (a finding, or the run broke: see the log)"
    status=1
  fi
  grep -aE '^#[0-9]+' "$log" | tail -1 || true
  grep -aE '^(Done|==[0-9]+== ERROR)|crash-' "$log" | tail -3 || true
  echo "   $result"
done
exit $status
