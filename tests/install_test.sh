#!/usr/bin/env bash
# The installed package works for a project outside the source tree (ctest: install_package).
#
#   tests/install_test.sh BUILD_DIR
#
# 1. cmake --install BUILD_DIR into a temporary prefix; the layout holds the libraries
#    (soname with major.minor), the public headers and no internal one, the CLIs, the CMake
#    package and dtrn.pc.
# 2. The installed dtrn-convert converts examples/small; the installed dtrn-run scores it.
# 3. tests/consumer (copied out of the tree, with the installed examples/score_c.c) is
#    configured with find_package(dtrn), built and run, against the shared library and then
#    the static one: the C++ consumer's scores equal dtrn-run's byte for byte, the C example
#    scores every request. A C-only project links the static C API.
# 4. The same programs built with pkg-config only (shared; and static with --static).
# 5. The Android JNI bridge, built for the host JVM (when a JDK is there) and run from Java.
# 6. The prefix moved elsewhere still works (relocatable config and .pc).
# Needs the build to be complete (ctest runs after the build); rebuilds nothing.
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/dtrn-install-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "install_test: FAIL: $*" >&2; exit 1; }
step() { echo "install_test: $*"; }
t0=$SECONDS

p=$work/prefix
cmake --install "$build" --prefix "$p" >"$work/install.log" 2>&1 || { tail -5 "$work/install.log"; fail "cmake --install"; }

# -- 1. layout
for f in include/dtrn.h include/dtrn/runtime.h include/dtrn/status.h include/dtrn/version.h \
         include/dtrn/io/requests.h include/dtrn/io/scores.h include/dtrn/io/line_reader.h \
         lib/libdtrn.a lib/cmake/dtrn/dtrnConfig.cmake lib/cmake/dtrn/dtrnConfigVersion.cmake \
         lib/pkgconfig/dtrn.pc bin/dtrn-convert bin/dtrn-inspect bin/dtrn-run share/dtrn/examples/score_c.c; do
  [ -e "$p/$f" ] || fail "not installed: $f"
done
ver=$(sed -n 's/^#define DTRN_VERSION_STRING "\(.*\)"/\1/p' "$p/include/dtrn/version.h")
shared=0
if ls "$p"/lib/libdtrn.so* >/dev/null 2>&1; then
  shared=1
  so=$(readlink -f "$p/lib/libdtrn.so")
  soname=$(objdump -p "$so" | awk '/SONAME/ { print $2 }')
  [ -e "$p/lib/$soname" ] || fail "no $soname link"
  [ "$soname" = "libdtrn.so.${ver%.*}" ] || fail "soname $soname does not match version $ver"
  [ "$(basename "$so")" = "libdtrn.so.$ver" ] || fail "library file $(basename "$so") is not libdtrn.so.$ver"
fi
internal=$(cd "$p/include" && find . -type f | grep -Ev '^\./(dtrn\.h|dtrn/(runtime|status|version)\.h|dtrn/io/(requests|scores|line_reader)\.h)$' || true)
[ -z "$internal" ] || fail "headers installed that are not public: $internal"
grep -q "format_version" <<<"$("$p/bin/dtrn-inspect" --version)" || fail "dtrn-inspect --version prints no format version"
step "installed into a temporary prefix (shared library: $shared)"

# -- 2. the example, converted and scored with the installed tools
ex=$src/examples/small
"$p/bin/dtrn-convert" --checkpoint "$ex/model.safetensors" --output "$work/small.dtrn" --precision f32 \
  >"$work/convert.log" 2>&1 || { tail -3 "$work/convert.log"; fail "installed dtrn-convert"; }
head -20 "$ex/requests.jsonl" >"$work/requests.jsonl"
"$p/bin/dtrn-run" --model "$work/small.dtrn" --requests "$work/requests.jsonl" --output "$work/run.jsonl" --quiet \
  >"$work/run.log" 2>&1 || { tail -3 "$work/run.log"; fail "installed dtrn-run"; }

# -- 3. find_package(dtrn) consumers, outside the tree
cons=$work/consumer
mkdir -p "$cons"
cp -r "$src/tests/consumer/." "$cons/"
cp "$p/share/dtrn/examples/score_c.c" "$cons/"
check_programs() {  # check_programs DIR LABEL: run consumer_c and consumer_cpp from DIR
  "$1/consumer_cpp" "$work/small.dtrn" "$work/requests.jsonl" >"$work/cpp.jsonl" 2>"$work/cpp.err" \
    || { cat "$work/cpp.err"; fail "$2: consumer_cpp does not run"; }
  cmp -s "$work/cpp.jsonl" "$work/run.jsonl" || fail "$2: C++ consumer's scores differ from dtrn-run's"
  "$1/consumer_c" "$work/small.dtrn" "$work/requests.jsonl" 3 >"$work/c.out" 2>&1 \
    || { tail -3 "$work/c.out"; fail "$2: consumer_c (examples/score_c.c) does not run"; }
  grep -q "^scored 20 requests" "$work/c.out" || fail "$2: consumer_c did not score every request"
}
cmake_consumer() {  # cmake_consumer SRC BUILD PREFIX LABEL [cmake args]
  local s=$1 b=$2 pre=$3 label=$4; shift 4
  cmake -S "$s" -B "$b" -DCMAKE_PREFIX_PATH="$pre" -DCMAKE_BUILD_TYPE=Release "$@" >"$b.cfg.log" 2>&1 \
    || { tail -5 "$b.cfg.log"; fail "$label: consumer does not configure"; }
  cmake --build "$b" -j2 >"$b.build.log" 2>&1 || { grep -m3 -i error "$b.build.log"; fail "$label: consumer does not build"; }
}
if [ $shared = 1 ]; then
  cmake_consumer "$cons" "$work/b-shared" "$p" "cmake shared"
  grep -q "libdtrn.so" <<<"$(ldd "$work/b-shared/consumer_c")" || fail "cmake shared: consumer_c does not link libdtrn.so"
  check_programs "$work/b-shared" "cmake shared"
  step "find_package(dtrn) consumer, shared: C and C++ programs build and run, scores == dtrn-run's"
fi
cmake_consumer "$cons" "$work/b-static" "$p" "cmake static" -DDTRN_USE_STATIC_LIBS=ON
! grep -q "libdtrn.so" <<<"$(ldd "$work/b-static/consumer_c")" || fail "cmake static: consumer_c links libdtrn.so"
check_programs "$work/b-static" "cmake static"
cmake_consumer "$cons/c_only" "$work/b-c-only" "$p" "cmake C-only static" -DDTRN_USE_STATIC_LIBS=ON
"$work/b-c-only/consumer_c_only" "$work/small.dtrn" "$work/requests.jsonl" 1 >/dev/null || fail "C-only consumer"
step "find_package(dtrn) consumer, static (C++ and C-only projects): build and run"

# -- 4. pkg-config
export PKG_CONFIG_PATH=$p/lib/pkgconfig
[ "$(pkg-config --modversion dtrn)" = "$ver" ] || fail "pkg-config --modversion dtrn"
pc=$work/pc
mkdir -p "$pc"
if [ $shared = 1 ]; then
  # shellcheck disable=SC2046
  cc -std=c99 -O2 -o "$pc/consumer_c" "$cons/score_c.c" $(pkg-config --cflags --libs dtrn) -Wl,-rpath,"$p/lib" \
    || fail "pkg-config: C program does not build"
  # shellcheck disable=SC2046
  c++ -std=c++17 -O2 -o "$pc/consumer_cpp" "$cons/consumer.cc" $(pkg-config --cflags --libs dtrn) \
    -Wl,-rpath,"$p/lib" || fail "pkg-config: C++ program does not build"
  check_programs "$pc" "pkg-config shared"
fi
mkdir -p "$pc/static"
# shellcheck disable=SC2046
cc -std=c99 -O2 -o "$pc/static/consumer_c" "$cons/score_c.c" $(pkg-config --cflags dtrn) "$p/lib/libdtrn.a" \
  $(pkg-config --libs-only-other --libs-only-l --static dtrn | sed 's/-ldtrn//') || fail "pkg-config --static: C program"
"$pc/static/consumer_c" "$work/small.dtrn" "$work/requests.jsonl" 1 >/dev/null || fail "pkg-config --static: C program runs"
step "pkg-config consumers (shared and --static) build and run"

# -- 5. the Android JNI bridge (examples/android), built for the host JVM and run from Java
if command -v javac >/dev/null && command -v java >/dev/null; then
  export JAVA_HOME=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")}
  cp -r "$p/share/dtrn/examples/android" "$work/android"
  cmake_consumer "$work/android" "$work/b-jni" "$p" "JNI (host)" -DDTRN_PREFIX="$p"
  javac -d "$work/jni-classes" "$work/android"/java/com/example/dtrn/*.java || fail "JNI: Java classes do not compile"
  java -Djava.library.path="$work/b-jni" -cp "$work/jni-classes" com.example.dtrn.Example "$work/small.dtrn" \
    "$work/requests.jsonl" >"$work/jni.out" 2>&1 || { tail -5 "$work/jni.out"; fail "JNI: Example does not run"; }
  grep -q "^scored 20 requests" "$work/jni.out" && grep -q "^error: INVALID_ARGUMENT" "$work/jni.out" \
    || { tail -5 "$work/jni.out"; fail "JNI: unexpected output"; }
  step "JNI bridge (examples/android) built against the install and run on the host JVM"
else
  step "JNI bridge: skipped (no JDK: javac/java not on PATH)"
fi

# -- 6. relocated prefix
mv "$p" "$work/moved"
cmake_consumer "$cons" "$work/b-moved" "$work/moved" "moved prefix"
if [ $shared = 1 ]; then check_programs "$work/b-moved" "moved prefix"; fi
[ "$(PKG_CONFIG_PATH=$work/moved/lib/pkgconfig pkg-config --variable=includedir dtrn)" = "$work/moved/lib/pkgconfig/../../include" ] \
  || fail "dtrn.pc is not relocatable"
step "relocated prefix: find_package and pkg-config still work"
echo "install_test: ok ($((SECONDS - t0)) s)"
