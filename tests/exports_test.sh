#!/usr/bin/env bash
# libdtrn.so exports the C and C++ API and nothing else (runtime/dtrn.map):
#  - every exported symbol (nm -D --defined-only, demangled) matches tests/consumer/allowed_exports.txt;
#  - every function declared DTRN_API in runtime/c_api/dtrn.h is exported;
#  - the C++ entry points an app needs are exported; the soname carries major.minor.
# Usage: tests/exports_test.sh LIBDTRN.so [SOURCE_DIR]
set -euo pipefail
# (grep -q reads here-strings, not pipes: with pipefail an early exit of grep -q would fail the pipe.)
so=$1
src=${2:-$(cd "$(dirname "$0")/.." && pwd)}
fail() { echo "exports_test: FAIL: $*" >&2; exit 1; }
[ -f "$so" ] || fail "no library $so"

mapfile -t patterns < <(grep -v '^\s*#' "$src/tests/consumer/allowed_exports.txt" | grep -v '^\s*$')
allowed=$(printf '^(%s)$|' "${patterns[@]}"); allowed=${allowed%|}
syms=$(nm -D --defined-only "$so" | awk '{ $1 = ""; $2 = ""; sub(/^  /, ""); print }')
demangled=$(printf '%s\n' "$syms" | c++filt)
count=$(printf '%s\n' "$syms" | grep -c .)

bad=$(printf '%s\n' "$demangled" | grep -Ev "$allowed" || true)
[ -z "$bad" ] || fail "exported but not part of the API:"$'\n'"$bad"

want=$(grep -oE 'DTRN_API[^;]*\b(dtrn_[a-z0-9_]+)\(' "$src/runtime/c_api/dtrn.h" | grep -oE 'dtrn_[a-z0-9_]+\($' | tr -d '(' | sort -u)
for f in $want; do grep -qx "$f" <<<"$syms" || fail "C API function $f is not exported"; done
ncapi=$(printf '%s\n' $want | grep -c .)

for f in 'dtrn::Model::Load(' 'dtrn::Session::Create(' 'dtrn::Session::Score(' 'dtrn::Rank(' 'dtrn::Version()' \
         'dtrn::io::ParseRequestJson(' 'dtrn::io::ScoresToJsonLine('; do
  grep -qF "$f" <<<"$demangled" || fail "C++ API symbol $f... is not exported"
done

soname=$(objdump -p "$so" | awk '/SONAME/ { print $2 }')
[[ "$soname" =~ ^libdtrn\.so\.[0-9]+\.[0-9]+$ ]] || fail "soname '$soname' does not carry major.minor"

size=$(stat -L -c %s "$so")
echo "exports_test: ok: $(basename "$(readlink -f "$so")") (soname $soname, $size bytes) exports $count symbols" \
     "($ncapi C API functions, $((count - ncapi)) C++), all in the allowed list"
