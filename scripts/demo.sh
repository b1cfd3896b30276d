#!/usr/bin/env bash
# The main job: set up, build, convert the shipped example checkpoint (f32 and int8),
# score a sample request, show its ranking, and measure latency.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh >/dev/null
B=${BUILD_DIR:-build}
EX=examples/small
OUT=${OUT:-$B/demo}
mkdir -p "$OUT"

echo "== Convert $EX/model.safetensors"
"$B/converter/dtrn-convert" --checkpoint $EX/model.safetensors --output "$OUT/small-f32.dtrn" --precision f32
"$B/converter/dtrn-convert" --checkpoint $EX/model.safetensors --output "$OUT/small-int8.dtrn" --precision int8 \
  --embeddings int8 --calibration $EX/requests.jsonl --report "$OUT/int8-report.json"
ls -l $EX/model.safetensors "$OUT"/small-*.dtrn

echo "== Score one request (the first of $EX/requests.jsonl), top 10 by fused score"
head -1 $EX/requests.jsonl > "$OUT/one-request.jsonl"
"$B/runtime/dtrn-run" --model "$OUT/small-int8.dtrn" --requests "$OUT/one-request.jsonl" --output "$OUT/one-scores.jsonl" --top 10

echo "== The same request through the C API (examples/score_c.c)"
"$B/examples/dtrn-c-example" "$OUT/small-int8.dtrn" "$OUT/one-request.jsonl" 5

echo "== Score every example request (f32 and int8), AUC against the labels"
"$B/runtime/dtrn-run" --model "$OUT/small-f32.dtrn" --requests $EX/requests.jsonl --output "$OUT/f32-scores.jsonl"
"$B/runtime/dtrn-run" --model "$OUT/small-int8.dtrn" --requests $EX/requests.jsonl --output "$OUT/int8-scores.jsonl"

echo "== Latency, one thread (dtrn-bench)"
for p in f32 int8; do
  echo "-- $p"
  "$B/bench/dtrn-bench" --model "$OUT/small-$p.dtrn" --requests $EX/requests.jsonl --warmup 50 --runs 500
done
