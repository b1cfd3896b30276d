#!/usr/bin/env bash
# Rebuilds the committed example: trains `small` on synthetic data, writes held-out
# requests from the same planted world (with labels), and the reference's float64 goldens.
# Usage: bash examples/small/make.sh   (a few minutes on 2 cores)
set -euo pipefail
EX=$(cd "$(dirname "$0")" && pwd)
REF=$(cd "$EX/../../reference" && pwd)
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
cd "$REF"
export PYTHONPATH="$REF${PYTHONPATH:+:$PYTHONPATH}"
python3 -m dtrn_ref train --config configs/small.json --data synthetic --out "$TMP/run" \
  --epochs ${EPOCHS:-8} --seed 1 --train-requests ${TRAIN_REQUESTS:-6000} --no-progress
cp "$TMP/run/model.safetensors" "$EX/model.safetensors"
cp "$TMP/run/metrics.json" "$EX/train-metrics.json"
# Held-out requests: same world (world_seed 0), a request seed the trainer never used, N = 50 (the small workload).
python3 - "$EX/requests.jsonl" <<'PY'
import json, sys
from dtrn_ref.synthetic import generate
reqs = generate("configs/small.json", 100, seed=20261126, n_candidates=50)
with open(sys.argv[1], "w") as f:
    for r in reqs:
        f.write(json.dumps(r, separators=(",", ":")) + "\n")
PY
python3 -m dtrn_ref golden --checkpoint "$EX/model.safetensors" --requests "$EX/requests.jsonl" --out "$EX/golden.jsonl"
ls -l "$EX"
