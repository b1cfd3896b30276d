#!/usr/bin/env bash
# Runs the whole peers bench: data, goldens, .dtrn models, peer exports (cached in PEER_OUT), then the
# interleaved timing of dtrn-edge and every peer, and writes bench/results/<cpu>.md, .json and the plot.
# usage: bash bench/peers/run_all.sh [run_all.py options]   e.g. --workloads standard,small,large --rounds 7
# env: BUILD_DIR (default build), PEER_VENVS (default /work/peer-venvs), PEER_OUT (default /work/peer-bench),
#      PEER_CPU (core to pin to, default 1), PEER_NICE (niceness of training/exports, default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/reference:$PWD/bench/peers${PYTHONPATH:+:$PYTHONPATH}"
exec python3 bench/peers/run_all.py "$@"
