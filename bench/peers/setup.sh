#!/usr/bin/env bash
# Sets up one virtual environment per peer runtime (their version pins conflict), outside the repository.
#
# usage: bash bench/peers/setup.sh [PEER ...]      (default: all of them)
#   PEER in: pytorch onnxruntime openvino litert executorch plot
# env:
#   PEER_VENVS   where the environments go (default /work/peer-venvs; never inside the repository)
#   PEER_PYTHON  the interpreter to base them on (default python3; 3.10-3.12 have wheels for every peer)
#   PEER_NICE    niceness of the installs (default 10: the machine is shared)
#
# Every peer exports from PyTorch, so every environment needs torch. When PEER_PYTHON already has a torch
# (the usual case on a developer machine) the environments are created with --system-site-packages and reuse
# it (the CUDA wheel of torch is several GB; one copy is enough); otherwise torch is installed into each.
# The pins below are the versions this bench was developed and measured with (bench/results/*.md records the
# versions actually imported at run time).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENVS=${PEER_VENVS:-/work/peer-venvs}
PY=${PEER_PYTHON:-python3}
NICE="nice -n ${PEER_NICE:-10}"
case "$(realpath -m "$VENVS")/" in "$(realpath "$PWD")"/*) echo "setup: PEER_VENVS must be outside the repository" >&2; exit 2;; esac

TORCH_PIN="torch==2.15.0"
PINS_onnxruntime="onnxruntime==1.32.0 onnx==1.23.2 onnxscript==0.7.2"
PINS_openvino="openvino==2026.4.1 nncf==3.4.0 onnx==1.23.2 onnxscript==0.7.2"
PINS_litert="ai-edge-litert==2.3.0 ai-edge-quantizer==0.10.0 litert-converter==0.5.0"
# litert-torch 0.10.0 pins torch<2.15; installed without its dependencies it converts with torch 2.15.
# These are the dependencies it needs for conversion and PT2E quantization (not its LLM tooling).
DEPS_litert_torch="absl-py numpy scipy safetensors multipledispatch tabulate torchao==0.18.0 jax jaxtyping fire rich pillow"
PINS_executorch="executorch==1.5.1 torchao==0.18.0"
PINS_pytorch=""
PINS_plot="matplotlib==3.11.2"

peers=("$@")
[ ${#peers[@]} -eq 0 ] && peers=(pytorch onnxruntime openvino litert executorch plot)

have_torch=0
$PY -c "import torch" 2>/dev/null && have_torch=1

mkvenv() {  # mkvenv NAME -> path of its python
  local dir="$VENVS/$1"
  if [ ! -x "$dir/bin/python" ]; then
    if [ "$have_torch" = 1 ] && [ "$1" != plot ]; then $PY -m venv --system-site-packages "$dir"
    else $PY -m venv "$dir"; fi
    $NICE "$dir/bin/python" -m pip install -q --upgrade pip "setuptools>=77.0.3"  # torch 2.15 needs >= 77
  fi
  echo "$dir/bin/python"
}

for p in "${peers[@]}"; do
  echo "== $p -> $VENVS/$p"
  case $p in
    pytorch|onnxruntime|openvino|executorch|plot)
      py=$(mkvenv "$p"); var="PINS_$p"; pins=${!var}
      [ "$have_torch" = 0 ] && [ "$p" != plot ] && pins="$TORCH_PIN $pins"
      [ -n "$pins" ] && $NICE "$py" -m pip install -q $pins
      [ "$p" != plot ] && $NICE "$py" -m pip install -q safetensors numpy ;;
    litert)
      py=$(mkvenv litert)
      [ "$have_torch" = 0 ] && $NICE "$py" -m pip install -q "$TORCH_PIN"
      $NICE "$py" -m pip install -q $PINS_litert $DEPS_litert_torch
      $NICE "$py" -m pip install -q --no-deps litert-torch==0.10.0
      # litert-converter's xdsl pins typing-extensions<4.13, but torch 2.15 needs a newer one to import
      # (it then works for conversion); pip warns about the conflict.
      $NICE "$py" -m pip install -q "typing_extensions==4.15.0" ;;
    *) echo "setup: unknown peer '$p'" >&2; exit 2 ;;
  esac
  "$py" bench/peers/versions.py "$p" || echo "setup: $p: import check failed (see above)" >&2
done
