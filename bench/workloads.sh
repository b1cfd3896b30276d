#!/usr/bin/env bash
# Reproduces the latency table: trains `standard` briefly on synthetic data, converts it to
# f32 and int8, and times one request at a time (1 thread) with dtrn-bench (both kernel
# choices) and the PyTorch reference. Also times the committed `small` example.
# Usage: bash bench/workloads.sh [OUT_DIR]   (about 5 minutes on 2 cores; build first)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD_DIR:-build}
OUT=${1:-$B/workloads}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/reference${PYTHONPATH:+:$PYTHONPATH}"
gen() {  # gen CONFIG N SEED CANDIDATES OUT: held-out synthetic requests from the training world
  python3 - "$@" <<'PY'
import json, sys
from dtrn_ref.synthetic import generate
cfg, n, seed, cands, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
with open(out, "w") as f:
    for r in generate(cfg, n, seed=seed, n_candidates=cands):
        f.write(json.dumps(r, separators=(",", ":")) + "\n")
PY
}
if [ ! -f "$OUT/standard/model.safetensors" ]; then
  (cd reference && python3 -m dtrn_ref train --config configs/standard.json --data synthetic --out "$OLDPWD/$OUT/standard" \
     --epochs 2 --seed 0 --no-progress)
fi
gen reference/configs/standard.json 200 7001 100 "$OUT/standard-calib.jsonl"
gen reference/configs/standard.json 300 7002 100 "$OUT/standard-holdout.jsonl"
"$B/converter/dtrn-convert" --checkpoint "$OUT/standard/model.safetensors" --output "$OUT/standard-f32.dtrn" --precision f32
"$B/converter/dtrn-convert" --checkpoint "$OUT/standard/model.safetensors" --output "$OUT/standard-int8.dtrn" \
  --precision int8 --embeddings int8 --calibration "$OUT/standard-calib.jsonl" --holdout "$OUT/standard-holdout.jsonl" \
  --report "$OUT/standard-int8-report.json"
"$B/converter/dtrn-convert" --checkpoint examples/small/model.safetensors --output "$OUT/small-f32.dtrn" --precision f32
"$B/converter/dtrn-convert" --checkpoint examples/small/model.safetensors --output "$OUT/small-int8.dtrn" \
  --precision int8 --embeddings int8 --calibration examples/small/requests.jsonl
for w in small standard; do
  req=examples/small/requests.jsonl; ck=examples/small/model.safetensors
  [ $w = standard ] && req="$OUT/standard-holdout.jsonl" && ck="$OUT/standard/model.safetensors"
  for p in f32 int8; do
    for k in auto xnnpack; do
      "$B/bench/dtrn-bench" --model "$OUT/$w-$p.dtrn" --requests "$req" --warmup 50 --runs 1000 --kernels $k \
        --json "$OUT/$w-$p-$k.json" > "$OUT/$w-$p-$k.txt"
      echo "$w $p kernels=$k: $(grep total_cpu "$OUT/$w-$p-$k.txt" | sed 's/  */ /g')"
    done
  done
  python3 bench/torch_latency.py --checkpoint "$ck" --requests "$req" --runs 300
done
