#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/; DTRN_FUZZ=ON: Debian's clang, ASan + UBSan) once into
# ${FUZZ_BUILD_DIR:-build-asan}/ (the build scripts/sanitize.sh asan runs the tests in) and
# runs each for S seconds (default 15: about a minute in all) on a working copy of its committed seeds (fuzz/corpus/<target>/). Prints one line per
# target (executions, coverage, new inputs) and exits 1 if any target found a crash, a leak
# or a disagreement; the input is then under BUILD/crashes/ (reproduce: BUILD/fuzz/TARGET FILE).
#
#   scripts/fuzz.sh [--seconds S] [--jobs J] [--target NAME]... [--seeds]
#     --jobs J    run J targets at a time (default 1; each target is one process)
#     --target    only these targets (repeatable)
#     --seeds     rewrite the committed seed corpora (fuzz/corpus/) with fuzz_make_corpus and stop
# Installs clang and libclang-rt-14-dev when missing (scripts/setup.sh --sanitizers).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=15 JOBS=1 SEEDS=0 TARGETS=()
# Shared with scripts/sanitize.sh (asan stage), which runs the test suite in the same build.
CMAKE_OPTIONS="-DCMAKE_BUILD_TYPE=RelWithDebInfo -DDTRN_FUZZ=ON -DDTRN_BUILD_TESTS=ON -DDTRN_BUILD_BENCH=OFF"
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --target) TARGETS+=("$2"); shift 2 ;;
    --seeds) SEEDS=1; shift ;;
    --print-cmake-options) echo "$CMAKE_OPTIONS"; exit 0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: scripts/fuzz.sh [--seconds S] [--jobs J] [--target NAME]... [--seeds]" >&2; exit 2 ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_safetensors fuzz_dtrn_load fuzz_request_json fuzz_score)
B=${FUZZ_BUILD_DIR:-${ASAN_BUILD_DIR:-build-asan}}
bash scripts/setup.sh --sanitizers

start=$(date +%s)
if [ -f "$B/CMakeCache.txt" ] && ! grep -q '^CMAKE_CXX_COMPILER:.*clang' "$B/CMakeCache.txt"; then
  rm -rf "$B"  # configured with another compiler, which CMake keeps: start afresh
fi
mkdir -p "$B"
# shellcheck disable=SC2086
CC=clang CXX=clang++ cmake -S . -B "$B" $CMAKE_OPTIONS >"$B/configure.log" 2>&1 || { cat "$B/configure.log"; exit 1; }
cmake --build "$B" -j"$(nproc)" --target "${TARGETS[@]}" fuzz_make_corpus >"$B/build.log" 2>&1 ||
  { tail -40 "$B/build.log"; exit 1; }
echo "== fuzz: built in $(( $(date +%s) - start )) s"
if [ "$SEEDS" = 1 ]; then
  rm -rf fuzz/corpus && "$B/fuzz/fuzz_make_corpus" fuzz/corpus . && exit 0
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rm -rf "$B/crashes" "$B/logs"
mkdir -p "$B/crashes" "$B/logs"
run_one() {
  local t=$1 dict=()
  [ -f "fuzz/${t#fuzz_}.dict" ] && dict=(-dict="fuzz/${t#fuzz_}.dict")
  mkdir -p "$B/corpus/$t"
  "$B/fuzz/$t" "$B/corpus/$t" "fuzz/corpus/$t" "${dict[@]}" -max_total_time="$SECONDS_EACH" -timeout=30 \
    -rss_limit_mb=3072 -max_len=65536 -print_final_stats=1 -artifact_prefix="$B/crashes/$t-" \
    >"$B/logs/$t.log" 2>&1
}
failed=0
pids=() names=()
for t in "${TARGETS[@]}"; do
  run_one "$t" & pids+=($!) names+=("$t")
  if [ ${#pids[@]} -ge "$JOBS" ]; then
    wait "${pids[0]}" || { echo "FAIL: ${names[0]} (see $B/logs/${names[0]}.log)"; failed=1; }
    pids=("${pids[@]:1}") names=("${names[@]:1}")
  fi
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "FAIL: ${names[$i]} (see $B/logs/${names[$i]}.log)"; failed=1; }
done
for t in "${TARGETS[@]}"; do
  log="$B/logs/$t.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  printf "%-18s %10s execs  cov %6s  ft %6s  corpus %5s inputs\n" "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
    "$(ls "$B/corpus/$t" | wc -l)"
done
echo "== fuzz: $(( $(date +%s) - start )) s in all"
if [ "$failed" != 0 ] || ls "$B/crashes/"* >/dev/null 2>&1; then
  echo "fuzz: findings under $B/crashes/:"; ls -l "$B/crashes/" || true; exit 1
fi
