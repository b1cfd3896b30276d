#!/usr/bin/env bash
# The CUDA training path in one short run (issue 13): on a machine with NVIDIA GPUs and a fresh checkout,
#   bash scripts/cuda_check.sh [RESULTS_DIR]          (default: cuda-results/; about 8 minutes)
# 1. installs what it needs (scripts/setup.sh; pyarrow too if that script does not bring it);
# 2. runs the reference's test suite with CUDA visible, then the GPU tests (reference/tests/test_cuda.py:
#    CPU vs GPU forward, one epoch CPU vs GPU, bf16 autocast vs f32, torchrun nccl);
# 3. trains `standard` on synthetic data on the GPU in f32 and with bf16 autocast, and on the CPU, and
#    reports training requests/s of each and the GPU's peak memory;
# 4. runs torchrun with the nccl backend, one process per GPU;
# 5. exports the GPU-trained checkpoint, computes float64 goldens on the CPU, converts it with
#    build/converter/dtrn-convert (built with scripts/build.sh if absent), scores with build/runtime/dtrn-run
#    and checks f32 parity: every probability within 1e-5 and every logit within 1e-4.
# Every step has a timeout and writes its log to RESULTS_DIR; summary.txt says what passed, failed or was
# skipped. Without CUDA (e.g. CUDA_VISIBLE_DEVICES= bash scripts/cuda_check.sh) it takes the CPU path:
# the GPU steps are skipped (and say so), the CPU steps still run. Exit status 1 if a step that ran failed.
# DTRN_BUILD_DIR overrides the C++ build folder (default build/).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/cuda-results}" && cd "${1:-$ROOT/cuda-results}" && pwd)
BUILD=${DTRN_BUILD_DIR:-$ROOT/build}
REF=$ROOT/reference
export PYTHONPATH="$REF${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
FAILED=0
T0=$(date +%s)

note() { echo "$*" | tee -a "$SUMMARY"; }
# step NAME TIMEOUT_S CMD...: runs CMD with a timeout, log in $OUT/NAME.log, one summary line.
step() {
  local name=$1 limit=$2; shift 2
  local t=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local dt=$(( $(date +%s) - t ))
  if [ $rc -eq 0 ]; then note "PASS  $name (${dt} s)"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then note "FAIL  $name: timed out after ${limit} s (log: $name.log)"; FAILED=1
  else note "FAIL  $name: exit $rc (log: $name.log)"; tail -5 "$OUT/$name.log" | sed 's/^/      /' | tee -a "$SUMMARY"; FAILED=1
  fi
  return $rc
}
skip() { note "SKIP  $1: $2"; }

note "cuda_check: $(date -u +%FT%TZ), checkout $ROOT, results in $OUT"

# ---- 1. setup -------------------------------------------------------------------------------------
step setup 300 bash "$ROOT/scripts/setup.sh"
if ! "$PY" -c "import pyarrow" 2>/dev/null; then
  step setup-pyarrow 120 "$PY" -m pip install -q pyarrow   # the log loader's CSV reader
fi
"$PY" - > "$OUT/env.txt" 2>&1 <<'PYEOF'
import torch, platform
print("python", platform.python_version(), "torch", torch.__version__, "cuda build", torch.version.cuda)
print("cuda available", torch.cuda.is_available(), "devices", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"  cuda:{i} {p.name} {p.total_memory / 2**30:.1f} GiB")
PYEOF
cat "$OUT/env.txt" | tee -a "$SUMMARY"
NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)
if [ "$NGPU" -gt 0 ]; then note "mode: GPU ($NGPU device(s))"; else note "mode: CPU path (no CUDA device visible): GPU steps are skipped"; fi

# ---- 2. tests -------------------------------------------------------------------------------------
step reference-tests 240 bash -c "cd '$REF' && $PY -m pytest -q -x"
if [ "$NGPU" -gt 0 ]; then
  step gpu-tests 180 bash -c "cd '$REF' && $PY -m pytest -q -s -rs tests/test_cuda.py"
  grep -E "CPU vs GPU|epoch-1|bf16 autocast" "$OUT/gpu-tests.log" | sed 's/^/      /' | tee -a "$SUMMARY"
else
  skip gpu-tests "no CUDA device (reference/tests/test_cuda.py skips its GPU tests; its CPU tests ran above)"
fi

# ---- 3. train standard: GPU f32, GPU bf16, CPU ------------------------------------------------------
TRAIN=(-m dtrn_ref train --config "$REF/configs/standard.json" --data synthetic --no-progress --seed 0)
if [ "$NGPU" -gt 0 ]; then
  step train-gpu-f32 150 "$PY" "${TRAIN[@]}" --device cuda --out "$OUT/train-gpu-f32" --epochs 2 \
    --train-requests 20000 --eval-requests 2000 --batch-size 256
  step train-gpu-bf16 150 "$PY" "${TRAIN[@]}" --device cuda --amp bf16 --out "$OUT/train-gpu-bf16" --epochs 2 \
    --train-requests 20000 --eval-requests 2000 --batch-size 256
else
  skip train-gpu-f32 "no CUDA device"; skip train-gpu-bf16 "no CUDA device"
fi
step train-cpu 240 "$PY" "${TRAIN[@]}" --device cpu --threads "$(nproc)" --out "$OUT/train-cpu" --epochs 1 \
  --train-requests 1024 --eval-requests 256 --batch-size 256
"$PY" - "$OUT" >> "$SUMMARY" 2>&1 <<'PYEOF'
import json, os, sys
out = sys.argv[1]
for run in ("train-gpu-f32", "train-gpu-bf16", "train-cpu"):
    p = os.path.join(out, run, "metrics.json")
    if not os.path.exists(p):
        continue
    m = json.load(open(p))
    mem = m.get("peak_gpu_memory_bytes")
    print(f"      {run}: {m['train_requests_per_s']:.0f} training requests/s on {m['device']}"
          + (f", peak GPU memory {mem / 2**20:.0f} MiB" if mem else "")
          + f", test mean AUC {m['test_mean_auc']:.4f}, epoch-1 loss {m['history'][0]['train_loss']:.4f}")
PYEOF
tail -3 "$SUMMARY"

# ---- 4. torchrun nccl -------------------------------------------------------------------------------
if [ "$NGPU" -gt 0 ]; then
  step torchrun-nccl 180 "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NGPU" "${TRAIN[@]}" \
    --device cuda --backend nccl --out "$OUT/torchrun-nccl" --epochs 1 --train-requests 8000 --eval-requests 1000 \
    --batch-size 128
  [ -f "$OUT/torchrun-nccl/metrics.json" ] && "$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); \
print(f\"      torchrun nccl: world size {m['world_size']}, {m['train_requests_per_s']:.0f} requests/s per process, test mean AUC {m['test_mean_auc']:.4f}\")" \
    "$OUT/torchrun-nccl/metrics.json" | tee -a "$SUMMARY"
else
  skip torchrun-nccl "no CUDA device (nccl needs GPUs; the gloo path is in the reference tests)"
fi

# ---- 5. export, convert, runtime parity -------------------------------------------------------------
CKPT="$OUT/train-gpu-f32/model.safetensors"; WHO="GPU-trained"
if [ ! -f "$CKPT" ]; then CKPT="$OUT/train-cpu/model.safetensors"; WHO="CPU-trained (no GPU run)"; fi
CONVERT="$BUILD/converter/dtrn-convert"; RUN="$BUILD/runtime/dtrn-run"
if [ ! -x "$CONVERT" ] || [ ! -x "$RUN" ]; then
  if command -v cmake >/dev/null; then
    step build 420 env BUILD_DIR="$BUILD" bash "$ROOT/scripts/build.sh"
  fi
fi
if [ ! -f "$CKPT" ]; then
  skip parity "no checkpoint was trained"
elif [ ! -x "$CONVERT" ] || [ ! -x "$RUN" ]; then
  skip parity "no $CONVERT / $RUN (the C++ build is missing or failed)"
else
  P=$OUT/parity; mkdir -p "$P"
  step parity-requests 60 "$PY" -m dtrn_ref requests --config "$REF/configs/standard.json" --count 8 --seed 13 \
    --out "$P/requests.jsonl"
  step parity-golden-cpu 120 env CUDA_VISIBLE_DEVICES= "$PY" -m dtrn_ref golden --checkpoint "$CKPT" \
    --requests "$P/requests.jsonl" --out "$P/golden.jsonl"
  step parity-convert 120 "$CONVERT" --checkpoint "$CKPT" --output "$P/model.dtrn" --precision f32
  step parity-run 120 "$RUN" --model "$P/model.dtrn" --requests "$P/requests.jsonl" --output "$P/scores.jsonl"
  step parity-compare 60 "$PY" - "$P/golden.jsonl" "$P/scores.jsonl" <<'PYEOF'
import json, sys
gold = {json.loads(l)["id"]: json.loads(l) for l in open(sys.argv[1]) if l.strip()}
got = {json.loads(l)["id"]: json.loads(l) for l in open(sys.argv[2]) if l.strip()}
assert gold.keys() == got.keys(), "request ids differ"
dp = dl = 0.0
n = 0
for rid, g in gold.items():
    s = got[rid]
    for key, tol in (("scores", 1e-5), ("logits", 1e-4)):
        for ra, rb in zip(g[key], s[key]):
            for a, b in zip(ra, rb):
                d = abs(a - b)
                if key == "scores":
                    dp = max(dp, d); n += 1
                else:
                    dl = max(dl, d)
print(f"f32 runtime vs float64 CPU goldens: {n} probabilities, max |dp| {dp:.3g} (<= 1e-5), max |dlogit| {dl:.3g} (<= 1e-4)")
sys.exit(0 if dp <= 1e-5 and dl <= 1e-4 else 1)
PYEOF
  note "      parity of the $WHO checkpoint: $(tail -1 "$OUT/parity-compare.log")"
fi

note "cuda_check: done in $(( $(date +%s) - T0 )) s; $( [ $FAILED -eq 0 ] && echo 'every step that ran passed' || echo 'SOME STEPS FAILED')"
exit $FAILED
