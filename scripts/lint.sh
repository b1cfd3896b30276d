#!/usr/bin/env bash
# Style checks CI runs: clang-format (.clang-format) on every C and C++ file git tracks, and
# ruff (ruff.toml) on the Python. Fix with: clang-format -i FILES; ruff check --fix.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "lint: clang-format not installed (scripts/setup.sh)" >&2; exit 1; }
python3 -m ruff --version >/dev/null 2>&1 || python3 -m pip install -q ruff
mapfile -t cfiles < <(git ls-files '*.cc' '*.h' '*.c')
clang-format --dry-run -Werror "${cfiles[@]}"
python3 -m ruff check --no-cache .
echo "lint: ok (${#cfiles[@]} C/C++ files formatted, Python clean)"
