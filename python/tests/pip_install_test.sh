#!/usr/bin/env bash
# The README's Python path, end to end: `pip install ./python` into a fresh virtual
# environment, then python/tests against the installed package (run outside the source
# tree, so python/dtrn cannot shadow it). The venv sees the system's site packages (numpy,
# pytest, and torch for compare_with_reference); dtrn_ref comes from reference/. The
# tests take dtrn-convert and dtrn-run from BUILD_DIR (default build/).
#   bash python/tests/pip_install_test.sh      (about 3 minutes the first time, 1 after)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
build=$(cd "${BUILD_DIR:-build}" && pwd)
PY=${PYTHON:-python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dtrn-pip.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
t0=$SECONDS
"$PY" -m venv --system-site-packages "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q ./python
echo "pip_install_test: pip install ./python: $((SECONDS - t0)) s"
cd "$tmp"
"$tmp/venv/bin/python" -c 'import dtrn, sys; print("pip_install_test: dtrn", dtrn.__version__, "from", dtrn.__file__)'
DTRN_BUILD_DIR=$build PYTHONPATH=$root/reference "$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider "$root/python/tests"
# CI (DTRN_DOCS_EXAMPLES=1): the documentation's examples with the installed package, every
# Python block required to run.
if [ "${DTRN_DOCS_EXAMPLES:-0}" = 1 ]; then
  "$tmp/venv/bin/python" "$root/tests/docs_examples.py" --build "$build" --require-python
fi
