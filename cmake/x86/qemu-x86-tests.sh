#!/usr/bin/env bash
# Runs the x86 build's GoogleTest binaries under qemu-x86_64 with an older CPU model, to test
# the fallbacks on a machine that has AVX-512 VNNI (docs/platforms.md):
#   haswell: AVX2 + FMA, no AVX-512 -> kernels.h's x86-64-v3 clones, no VNNI kernel (kAuto =
#            XNNPACK), XNNPACK's AVX2 kernels;
#   nehalem: SSE4.2 -> the default clones, XNNPACK's SSE kernels.
# The tools the tests start run under the same CPU model (DTRN_TEST_TOOL_DIR launchers).
#   bash cmake/x86/qemu-x86-tests.sh [haswell|nehalem] [GTEST_FILTER]
# Default filter: all but the `standard` and `large` parity cases. Needs qemu-user and a
# built x86 tree (${BUILD_DIR:-build}, scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-haswell}
FILTER=${2:-'-Parity.Standard*:Parity.Large*'}
case "$MODEL" in
  haswell) CPU=Haswell-noTSX,-pcid,-x2apic,-tsc-deadline,-invpcid ;;  # (minus what TCG lacks: no warnings)
  nehalem) CPU=Nehalem ;;
  *) CPU=$MODEL ;;
esac
B=$(cd "${BUILD_DIR:-build}" && pwd)
command -v qemu-x86_64 >/dev/null || { echo "qemu-x86-tests: install qemu-user" >&2; exit 2; }
TOOLS=$B/qemu-x86-tools
mkdir -p "$TOOLS"
for t in converter/dtrn-convert converter/dtrn-inspect runtime/dtrn-run bench/dtrn-bench examples/dtrn-c-example; do
  [ -x "$B/$t" ] || continue
  printf '#!/bin/sh\nexec qemu-x86_64 %s "$@"\n' "'$B/$t'" > "$TOOLS/$(basename "$t")"
  chmod +x "$TOOLS/$(basename "$t")"
done
export QEMU_CPU=$CPU DTRN_TEST_TOOL_DIR=$TOOLS
OUT=$B/qemu-x86-$MODEL
rm -rf "$OUT" && mkdir -p "$OUT"
rc=0
start=$(date +%s)
for t in "$B"/tests/*_test; do
  name=$(basename "$t")
  qemu-x86_64 "$t" --gtest_filter="$FILTER" --gtest_output=json:"$OUT/$name.json" > "$OUT/$name.log" 2>&1 || {
    rc=1; echo "qemu-x86-tests: $name failed (see $OUT/$name.log)" >&2; }
done
python3 - "$OUT" "$MODEL" "$(( $(date +%s) - start ))" <<'EOF'
import glob, json, sys
out, model, secs = sys.argv[1:4]
n = {"passed": 0, "failed": 0, "skipped": 0}
skipped = []
for p in sorted(glob.glob(f"{out}/*.json")):
    for s in json.load(open(p)).get("testsuites", []):
        for t in s.get("testsuite", []):
            name = f"{s['name']}.{t['name']}"
            if t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN":
                n["skipped"] += 1; skipped.append(name)
            elif t.get("failures"):
                n["failed"] += 1; print("FAILED", name)
            else:
                n["passed"] += 1
print("skipped:", ", ".join(skipped))
print(f"qemu-x86_64 {model} ({secs} s): {n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped")
EOF
exit $rc
