#!/usr/bin/env bash
# Renders the docs' diagrams (Graphviz: apt-get install graphviz).
set -euo pipefail
cd "$(dirname "$0")"
# The pictures sit in docs/, beside the pages that show them.
for f in *.dot; do dot -Tpng -Gdpi=110 "$f" -o "../${f%.dot}.png"; done
