#!/usr/bin/env bash
# Sets up, builds and runs every test: the C++ GoogleTest suites (ctest) and the reference's pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
echo "== C++ tests (ctest)"
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j2)
echo "== Python reference tests (pytest)"
(cd reference && PYTHONPATH=. python3 -m pytest -q)
