#!/usr/bin/env bash
# Installs what dtrn-edge needs on a fresh Debian machine (run as root or with sudo):
# the C++ toolchain and libraries from Debian, PyTorch + safetensors from PyPI for the reference.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

APT_PKGS=(build-essential cmake pkg-config git python3 python3-pip
  libxnnpack-dev libpthreadpool-dev libflatbuffers-dev flatbuffers-compiler
  libtbb-dev libbenchmark-dev libgtest-dev libgmock-dev nlohmann-json3-dev libxxhash-dev libssl-dev clang-format)
# `setup.sh --sanitizers` (scripts/sanitize.sh, scripts/fuzz.sh): clang with libFuzzer and the
# sanitizer runtimes too.
[ "${1:-}" = --sanitizers ] && APT_PKGS+=(clang libclang-rt-14-dev)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! "$PY" -c "import torch, safetensors, numpy, pytest, pyarrow" 2>/dev/null; then
  echo "setup: installing Python packages (torch, safetensors, numpy, pytest, tqdm, pyarrow, ruff)" >&2
  "$PY" -m pip install -q torch safetensors numpy pytest tqdm pyarrow ruff
fi
echo "setup: ok" >&2
