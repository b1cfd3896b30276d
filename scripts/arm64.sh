#!/usr/bin/env bash
# Cross-builds dtrn-edge (library, tools, the whole C++ test suite) for Linux aarch64 with
# Debian's toolchain and runs the tests under qemu-user, once per emulated CPU model:
# `max` (ARMv8.x with dot product and i8mm) and `cortex-a53` (ARMv8.0, no dot product),
# so that both of our int8 kernels (NEON sdot, and the portable one without it) are tested.
# Then the cross-platform checks: the arm64 dtrn-convert writes .dtrn files equivalent to
# the x86 one's; a .dtrn converted on x86 scores on arm64 within the spec's tolerances of
# the reference's goldens; int8 scores are bit-identical across the CPU models.
# Installs what it needs (apt-get; run as root or with sudo). See docs/platforms.md.
#
#   bash scripts/arm64.sh            full: every test under each CPU model
#   bash scripts/arm64.sh --lean     CI: one build, the lean test set (docs/platforms.md: times)
#
# Options: --lean (or DTRN_ARM64_LEAN=1); --cpus "max cortex-a53" (or DTRN_ARM64_CPUS);
#   --setup-only (host packages + sysroot); --no-tests (stop after the build);
#   --refresh-sysroot (download the arm64 packages again).
# Environment: DTRN_ARM64_SYSROOT (default ~/.cache/dtrn-arm64-sysroot, cached between runs),
#   BUILD_DIR_ARM64 (default build-arm64), BUILD_DIR (the x86 build, default build; only
#   dtrn-convert and dtrn-run are built there when missing), JOBS (default nproc), NICE (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

LEAN=${DTRN_ARM64_LEAN:-0}
CPUS=${DTRN_ARM64_CPUS:-"max cortex-a53"}
SETUP_ONLY=0 NO_TESTS=0 REFRESH=0
while [ $# -gt 0 ]; do
  case "$1" in
    --lean) LEAN=1 ;;
    --cpus) CPUS=$2; shift ;;
    --cpus=*) CPUS=${1#--cpus=} ;;
    --setup-only) SETUP_ONLY=1 ;;
    --no-tests) NO_TESTS=1 ;;
    --refresh-sysroot) REFRESH=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "arm64.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

SYSROOT=${DTRN_ARM64_SYSROOT:-$HOME/.cache/dtrn-arm64-sysroot}
B=${BUILD_DIR_ARM64:-build-arm64}
X86_B=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
NICE=${NICE:-10}
LAUNCHER=$ROOT/cmake/toolchains/qemu-aarch64-run
TOOLCHAIN=$ROOT/cmake/toolchains/aarch64-linux-gnu.cmake
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
mkdir -p "$B"
B=$(cd "$B" && pwd)
SUMMARY=$B/arm64-summary.txt
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }

# Phase timing: wall seconds and the CPU seconds of the commands run (what a CI machine with
# other cores would need), appended to the summary.
# (`times` runs in this shell: in a $(...) subshell it would see no children.)
T0=0 C0=0
phase_begin() { echo "== $1"; T0=$(date +%s.%N); times > "$B/.times"; C0=$(cpu_now_file); }
cpu_now_file() { awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.1f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$B/.times"; }
phase_end() {
  local t1 c1
  t1=$(date +%s.%N); times > "$B/.times"; c1=$(cpu_now_file)
  note "$(awk -v n="$1" -v a="$T0" -v b="$t1" -v c="$C0" -v d="$c1" \
    'BEGIN { printf "time  %-34s %7.1f s wall %8.1f s cpu\n", n, b - a, d - c }') (load $(cut -d' ' -f1 /proc/loadavg))"
}
run_nice() { nice -n "$NICE" "$@"; }

# ---------------------------------------------------------------------------------------
# 1. Host packages: the cross toolchain, qemu-user, the x86 side (scripts/setup.sh: the x86
#    build's libraries, flatc, and PyTorch for the parity tests' reference).
HOST_PKGS=(g++-aarch64-linux-gnu qemu-user cmake ninja-build flatbuffers-compiler python3)
phase_begin "host packages"
bash scripts/setup.sh
missing=()
for p in "${HOST_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "arm64: installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  # No recommends: qemu-user-binfmt would register binfmt handlers system-wide; not needed.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
phase_end "host packages"

# ---------------------------------------------------------------------------------------
# 2. The arm64 sysroot: the :arm64 .debs of the -dev packages and their dependencies, resolved
#    by apt against a private state directory (architecture arm64, the host's sources, an empty
#    dpkg status) and unpacked with dpkg -x. Nothing on the host changes (no dpkg
#    --add-architecture: libxnnpack-dev and libpthreadpool-dev are not multi-arch co-installable).
#    Cached: rebuilt only when the package list changes or with --refresh-sysroot.
ARM64_PKGS=(libxnnpack-dev libpthreadpool-dev libcpuinfo-dev libflatbuffers-dev libtbb-dev libgtest-dev
  libgmock-dev nlohmann-json3-dev libxxhash-dev libbenchmark-dev libssl-dev)
# Provided by the cross toolchain (/usr/aarch64-linux-gnu) or the host (flatc): not unpacked.
SKIP_RE='^(libc6|libc6-dev|libgcc-s1|libgcc-12-dev|libstdc\+\+6|libstdc\+\+-12-dev|gcc-12-base|linux-libc-dev|libcrypt1|libcrypt-dev|libnsl2|libnsl-dev|libtirpc3|libtirpc-dev|libtirpc-common|flatbuffers-compiler|flatbuffers-compiler-dev)$'
SYSROOT_KEY="v2 ${ARM64_PKGS[*]}"
ensure_sysroot() {
  if [ "$REFRESH" = 0 ] && [ -f "$SYSROOT/.dtrn-sysroot" ] && [ "$(head -1 "$SYSROOT/.dtrn-sysroot")" = "$SYSROOT_KEY" ]; then
    echo "arm64: sysroot cached at $SYSROOT"
    return
  fi
  local apt_dir="$SYSROOT.apt" new="$SYSROOT.new"
  rm -rf "$apt_dir" "$new"
  mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$new"
  : > "$apt_dir/state/status"
  local opts=(-o "Dir::State=$apt_dir/state" -o "Dir::State::status=$apt_dir/state/status"
    -o "Dir::Cache=$apt_dir/cache" -o APT::Architecture=arm64 -o APT::Architectures::=arm64
    -o APT::Install-Recommends=false -o Debug::NoLocking=true -o APT::Sandbox::User=root)
  # The host's sources; a source that fails (a third-party one without arm64) is not fatal:
  # the download below says what is missing.
  apt-get "${opts[@]}" update -qq || echo "arm64: warning: apt-get update (arm64 lists) reported errors" >&2
  apt-get "${opts[@]}" install -y -qq --download-only "${ARM64_PKGS[@]}" >/dev/null
  {
    echo "$SYSROOT_KEY"
    for deb in "$apt_dir"/cache/archives/*.deb; do
      local name ver
      name=$(dpkg-deb -f "$deb" Package) ver=$(dpkg-deb -f "$deb" Version)
      if [[ $name =~ $SKIP_RE ]]; then echo "# skipped $name $ver"; continue; fi
      dpkg -x "$deb" "$new"
      echo "$name $ver"
    done
  } > "$new/.dtrn-sysroot.tmp"
  rm -rf "$new/usr/share/doc" "$new/usr/share/man"
  [ -f "$new/usr/include/xnnpack.h" ] && [ -e "$new/usr/lib/aarch64-linux-gnu/libXNNPACK.so" ] ||
    { echo "arm64: sysroot incomplete (no XNNPACK)" >&2; exit 1; }
  rm -rf "$SYSROOT"
  mkdir -p "$(dirname "$SYSROOT")"
  mv "$new" "$SYSROOT"
  # An absolute symlink would point into the host: point it into the sysroot.
  find "$SYSROOT" -type l -lname '/*' -print0 | while IFS= read -r -d '' l; do
    t=$(readlink "$l"); case "$t" in "$SYSROOT"/*) ;; *) ln -sfn "$SYSROOT$t" "$l" ;; esac
  done
  mv "$SYSROOT/.dtrn-sysroot.tmp" "$SYSROOT/.dtrn-sysroot"
  rm -rf "$apt_dir"
  echo "arm64: sysroot at $SYSROOT: $(grep -vc '^#' "$SYSROOT/.dtrn-sysroot") packages unpacked"
}
phase_begin "arm64 sysroot"
ensure_sysroot
phase_end "arm64 sysroot"
[ "$SETUP_ONLY" = 1 ] && exit 0

# ---------------------------------------------------------------------------------------
# 3. Builds. x86: only what the cross-platform checks use (dtrn-convert, dtrn-run), in the
#    x86 build directory (a no-op when scripts/test.sh built it already). arm64: everything.
phase_begin "x86 dtrn-convert, dtrn-run"
[ -f "$X86_B/CMakeCache.txt" ] || run_nice cmake -S . -B "$X86_B" -DCMAKE_BUILD_TYPE=Release >/dev/null
run_nice cmake --build "$X86_B" --target dtrn-convert dtrn-run -j"$JOBS" >/dev/null
phase_end "x86 dtrn-convert, dtrn-run"
X86_B=$(cd "$X86_B" && pwd)
X86_CONVERT=$X86_B/converter/dtrn-convert X86_RUN=$X86_B/runtime/dtrn-run

phase_begin "arm64 build"
GEN=(); [ -f "$B/CMakeCache.txt" ] || GEN=(-G Ninja)
run_nice cmake -S . -B "$B" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
  -DDTRN_ARM64_SYSROOT="$SYSROOT" >/dev/null
run_nice cmake --build "$B" -j"$JOBS"
phase_end "arm64 build"

# What XNNPACK sees under each CPU model (cmake/arm64/cpu_probe.c).
run_nice aarch64-linux-gnu-gcc -O1 cmake/arm64/cpu_probe.c -o "$B/arm64-cpu-probe" -I"$SYSROOT/usr/include" \
  -L"$SYSROOT/usr/lib/aarch64-linux-gnu" -Wl,-rpath-link,"$SYSROOT/usr/lib/aarch64-linux-gnu" \
  -Wl,--disable-new-dtags -Wl,-rpath,"$SYSROOT/usr/lib/aarch64-linux-gnu" -lXNNPACK -lcpuinfo
for cpu in $CPUS; do
  line=$(QEMU_CPU=$cpu "$LAUNCHER" "$B/arm64-cpu-probe")
  note "cpu   $cpu: $line"
  dot=$(sed -n 's/.* dot=\([01]\).*/\1/p' <<<"$line")
  case "$cpu" in
    max | cortex-a76 | neoverse-n1) want=1 ;;
    cortex-a35 | cortex-a53 | cortex-a57 | cortex-a72 | a64fx) want=0 ;;
    *) want=$dot ;;
  esac
  [ "$dot" = "$want" ] || { note "FAIL  qemu -cpu $cpu: cpuinfo reports dot=$dot, expected $want"; exit 1; }
done

# Which int8 instructions our int8 kernels execute under each CPU model: the int8 kernel
# tests (kernels_test Int8Kernels.*) under qemu's instruction log, counted by encoding (qemu
# 7.2's disassembler does not know the dot-product instructions). With the dot product the
# neon-dotprod kernel runs (SDOT); without it, only the portable one (no SDOT).
for cpu in $CPUS; do
  QEMU_CPU=$cpu "$LAUNCHER" -d in_asm,nochain -D "$B/qemu-in_asm-$cpu.log" "$B/tests/kernels_test" \
    --gtest_filter='Int8Kernels.*' > /dev/null
  line=$(python3 - "$B/qemu-in_asm-$cpu.log" <<'EOF'
import sys
n = dict(sdot=0, smmla=0, smlal=0)
for l in open(sys.argv[1], errors="replace"):
    f = l.split()
    if len(f) < 3 or not f[0].startswith("0x"):
        continue
    try:
        w = int(f[1], 16)
    except ValueError:
        continue
    # SDOT by element (size fixed 10) and vector (0x4e8094xx: bit 23 set, bit 22 clear).
    if (w & 0xbfc0f400) == 0x0f80e000 or (w & 0xbfe0fc00) == 0x0e809400:
        n["sdot"] += 1
    elif (w & 0xffe0fc00) == 0x4e80a400:
        n["smmla"] += 1  # SMMLA (i8mm)
    elif (w & 0xbf20fc00) == 0x0e208000 or (w & 0xbf00f400) == 0x0f002000:
        n["smlal"] += 1  # SMLAL/SMLAL2 (vector, by element)
print(" ".join(f"{k}={v}" for k, v in n.items()))
EOF
)
  rm -f "$B/qemu-in_asm-$cpu.log"
  note "isa   $cpu: int8 dense tests, distinct translated instructions: $line"
  sdot=$(sed -n 's/.*sdot=\([0-9]*\).*/\1/p' <<<"$line")
  dot=$(QEMU_CPU=$cpu "$LAUNCHER" "$B/arm64-cpu-probe" | sed -n 's/.* dot=\([01]\).*/\1/p')
  if { [ "$dot" = 1 ] && [ "$sdot" = 0 ]; } || { [ "$dot" = 0 ] && [ "$sdot" != 0 ]; }; then
    note "FAIL  qemu -cpu $cpu: dot=$dot but $sdot SDOT instructions ran"; exit 1
  fi
done

# Launchers for the tools the tests start (DTRN_TEST_TOOL_DIR, tests/test_util.cc): the arm64
# binaries under qemu-aarch64 with the test's CPU model (QEMU_CPU is inherited). dtrn-convert
# may instead be the x86 one (DTRN_ARM64_CONVERTER=host): convert on x86, score on arm64.
TOOLS=$B/qemu-tools
mkdir -p "$TOOLS"
for t in converter/dtrn-convert converter/dtrn-inspect runtime/dtrn-run bench/dtrn-bench examples/dtrn-c-example; do
  [ -x "$B/$t" ] || continue
  name=$(basename "$t")
  {
    echo "#!/bin/sh"
    [ "$name" = dtrn-convert ] && echo "[ \"\${DTRN_ARM64_CONVERTER:-arm64}\" = host ] && exec '$X86_CONVERT' \"\$@\""
    echo "exec '$LAUNCHER' '$B/$t' \"\$@\""
  } > "$TOOLS/$name"
  chmod +x "$TOOLS/$name"
done
[ "$NO_TESTS" = 1 ] && exit 0

# ---------------------------------------------------------------------------------------
# 4. The C++ test suite under qemu-aarch64, once per CPU model, in two ctest runs:
#    - every test but Parity.*: all arm64 code, the tools it starts included (dtrn-convert too);
#    - Parity.*: the reference (PyTorch, x86) makes checkpoints, requests and goldens, the x86
#      dtrn-convert converts (as a server would; under qemu the int8 conversions of `standard`
#      and `large` take over the tests' 600 s limit), and the arm64 runtime scores in the test
#      process. The arm64 converter's output is checked against the x86 one in step 5.
#    Lean (CI): the same non-parity run under each CPU model; parity: the committed example
#    and the `small` variants under `max`, the example and small int8 under the CPU without
#    dot product (`standard` and `large` run only in the full mode).
PARITY_FULL='^Parity\.'
PARITY_LEAN_MAX='^Parity\.(CommittedExample|Small[A-Za-z0-9]*)$'
PARITY_LEAN_OTHER='^Parity\.(CommittedExample|SmallMmoeTarget)$'
export DTRN_TEST_TOOL_DIR=$TOOLS
FAILED=0
summarize_junit() {  # label junit... -> "tests LABEL: N passed, N failed, N skipped", parity lines
  python3 - "$SUMMARY" "$@" <<'EOF'
import re, sys, xml.etree.ElementTree as ET
summary, label, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
n = {"passed": 0, "failed": 0, "skipped": 0}
parity, failed, slow = [], [], []
for path in paths:
    for c in ET.parse(path).getroot().iter("testcase"):
        st = c.get("status", "")
        if c.find("skipped") is not None or st in ("notrun", "disabled"):
            n["skipped"] += 1
        elif c.find("failure") is not None or c.find("error") is not None or st == "fail":
            n["failed"] += 1
            failed.append(c.get("name"))
        else:
            n["passed"] += 1
        slow.append((float(c.get("time", 0) or 0), c.get("name")))
        out = "".join(e.text or "" for e in c.iter("system-out"))
        parity += [l.strip() for l in out.splitlines() if re.search(r"\] (f32 vs reference|int8 vs f32|f16 tables)", l)]
lines = [f"tests {label}: {n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped"]
lines += [f"  FAILED {f}" for f in failed]
lines += [f"  parity {p}" for p in parity]
lines += ["  slowest: " + ", ".join(f"{name} {t:.0f}s" for t, name in sorted(slow, reverse=True)[:4])]
print("\n".join(lines))
open(summary, "a").write("\n".join(lines) + "\n")
EOF
}
run_ctest() {  # cpu label converter ctest-args...
  local cpu=$1 label=$2 converter=$3
  shift 3
  phase_begin "tests $label"
  local rc=0
  QEMU_CPU=$cpu DTRN_ARM64_CONVERTER=$converter run_nice ctest --test-dir "$B" -j"$JOBS" --output-on-failure \
    --output-junit "$B/ctest-$label.xml" "$@" > "$B/ctest-$label.log" 2>&1 || rc=$?
  tail -3 "$B/ctest-$label.log"
  [ "$rc" = 0 ] || { grep -E "\*\*\*|Failed" "$B/ctest-$label.log" | head -20; FAILED=1; }
  phase_end "tests $label"
}
first_cpu=${CPUS%% *}
for cpu in $CPUS; do
  # Lean: the two big bit-flip sweeps (672k loads with the checksum; 15k loads and scores
  # without it: 80 s and 20 s native, 8-10+ minutes each emulated) run in the full mode only;
  # the targeted flip tests of the same file stay in.
  # The docs' checks (docs_examples, cli_docs) run host Python on the tools, and
  # install_package runs the installed tools directly: x86 only.
  if [ "$LEAN" = 0 ]; then run_ctest "$cpu" "$cpu" arm64 -E '^Parity\.|^docs_examples$|^cli_docs$|^install_package$'
  else run_ctest "$cpu" "$cpu" arm64 -E '^Parity\.|^docs_examples$|^cli_docs$|^install_package$|^BitFlip\.(EveryFlipWithTheChecksumIsRefusedOrIdentical|WithoutTheChecksumTheSemanticChecksAlone)$'
  fi
  if [ "$LEAN" = 0 ]; then parity=$PARITY_FULL
  elif [ "$cpu" = "$first_cpu" ]; then parity=$PARITY_LEAN_MAX
  else parity=$PARITY_LEAN_OTHER
  fi
  run_ctest "$cpu" "$cpu-parity" host -R "$parity"
  summarize_junit "-cpu $cpu" "$B/ctest-$cpu.xml" "$B/ctest-$cpu-parity.xml"
done

# ---------------------------------------------------------------------------------------
# 5. Cross-platform checks on the committed example (examples/small).
#    a. The arm64 dtrn-convert (under qemu) and the x86 one write equivalent files: the same
#       constant segment (every tensor byte), the same layers, quantization and int8
#       decisions (dtrn-inspect), identical scores, byte-identical files. Full mode only for int8:
#       the int8 conversion (calibration, per-layer measurements) takes minutes under qemu.
#    b. The x86-converted files scored on arm64 (dtrn-run) under each CPU model: f32 vs the
#       reference's goldens (1e-5 / 1e-4), int8 vs f32 (mean |dp| <= 0.01); int8 and f32
#       scores bit-identical across the CPU models; the difference to x86's own scores.
phase_begin "cross-platform checks"
X=$B/xcheck
rm -rf "$X" && mkdir -p "$X"
EX=$ROOT/examples/small
INT8_ARGS=(--precision int8 --embeddings int8 --calibration "$EX/requests.jsonl")
"$X86_CONVERT" --checkpoint "$EX/model.safetensors" --output "$X/x86-f32.dtrn" --precision f32 >/dev/null
"$X86_CONVERT" --checkpoint "$EX/model.safetensors" --output "$X/x86-int8.dtrn" "${INT8_ARGS[@]}" >/dev/null
xcheck_precisions=(f32); [ "$LEAN" = 1 ] || xcheck_precisions+=(int8)
for p in "${xcheck_precisions[@]}"; do
  args=(--precision f32); [ "$p" = int8 ] && args=("${INT8_ARGS[@]}")
  QEMU_CPU=$first_cpu DTRN_ARM64_CONVERTER=arm64 "$TOOLS/dtrn-convert" --checkpoint "$EX/model.safetensors" \
    --output "$X/arm64-$p.dtrn" "${args[@]}" >/dev/null
  for side in x86 arm64; do
    QEMU_CPU=$first_cpu "$TOOLS/dtrn-run" --model "$X/$side-$p.dtrn" --requests "$EX/requests.jsonl" \
      --output "$X/by-$side-converter-$p.jsonl" --quiet
    "$X86_B/converter/dtrn-inspect" "$X/$side-$p.dtrn" 2>&1 | sed -E '1,2d; s/; segment .*//; s/^(  [a-z][^ ]+ +(INT8|F32)) .*/\1/' \
      > "$X/inspect-$side-$p.txt" || true
  done
  seg=$(grep -o 'segment [0-9]*' <("$X86_B/converter/dtrn-inspect" "$X/x86-$p.dtrn") | head -1 | cut -d' ' -f2)
  same_bytes=no; cmp -s "$X/x86-$p.dtrn" "$X/arm64-$p.dtrn" && same_bytes=yes
  if cmp -s <(tail -c "$seg" "$X/x86-$p.dtrn") <(tail -c "$seg" "$X/arm64-$p.dtrn") &&
     cmp -s "$X/inspect-x86-$p.txt" "$X/inspect-arm64-$p.txt" &&
     cmp -s "$X/by-x86-converter-$p.jsonl" "$X/by-arm64-converter-$p.jsonl"; then
    note "check dtrn-convert $p on arm64 vs x86: equivalent (segment, layers, decisions, scores identical; byte-identical file: $same_bytes)"
    # The writer builds every FlatBuffer child before its parent and every int8 kernel gives
    # the same bits, so the two converters must write the same bytes.
    [ "$same_bytes" = yes ] || { note "FAIL  dtrn-convert $p: arm64 and x86 files differ in bytes"; FAILED=1; }
  else
    note "FAIL  dtrn-convert $p on arm64 vs x86: files not equivalent (see $X)"; FAILED=1
  fi
done
for p in f32 int8; do
  "$X86_RUN" --model "$X/x86-$p.dtrn" --requests "$EX/requests.jsonl" --output "$X/x86-$p.jsonl" --quiet
  for cpu in $CPUS; do
    QEMU_CPU=$cpu "$TOOLS/dtrn-run" --model "$X/x86-$p.dtrn" --requests "$EX/requests.jsonl" \
      --output "$X/arm64-$cpu-$p.jsonl" --quiet
  done
done
python3 - "$X" "$EX/golden.jsonl" "$SUMMARY" $CPUS <<'EOF' || FAILED=1
import json, sys
x, golden, summary, cpus = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def load(p):
    return {r["id"]: r for r in map(json.loads, filter(str.strip, open(p)))}
def diffs(a, b, key):
    assert a.keys() == b.keys(), "different request ids"
    return [abs(u - v) for i in a for ra, rb in zip(a[i][key], b[i][key]) for u, v in zip(ra, rb)]
gold = load(golden)
out, ok = [], True
for cpu in cpus:
    f32, i8 = load(f"{x}/arm64-{cpu}-f32.jsonl"), load(f"{x}/arm64-{cpu}-int8.jsonl")
    dp, dl = max(diffs(f32, gold, "scores")), max(diffs(f32, gold, "logits"))
    d8 = diffs(i8, f32, "scores")
    mi = sum(d8) / len(d8)
    ok &= dp <= 1e-5 and dl <= 1e-4 and mi <= 0.01
    out.append(f"check x86-converted, dtrn-run on arm64 -cpu {cpu}: f32 vs goldens max|dp| {dp:.3g}, max|dlogit| {dl:.3g}; "
               f"int8 vs f32 mean|dp| {mi:.4f}, max|dp| {max(d8):.4f}")
for p in ("f32", "int8"):
    texts = {cpu: open(f"{x}/arm64-{cpu}-{p}.jsonl").read() for cpu in cpus}
    same = len(set(texts.values())) == 1
    ok &= same
    d = diffs(load(f"{x}/arm64-{cpus[0]}-{p}.jsonl"), load(f"{x}/x86-{p}.jsonl"), "scores")
    out.append(f"check {p} scores bit-identical across -cpu {' / '.join(cpus)}: {'yes' if same else 'NO'}; "
               f"vs x86 (this host) max|dp| {max(d):.3g}")
print("\n".join(out))
open(summary, "a").write("\n".join(out) + "\n")
sys.exit(0 if ok else 1)
EOF
phase_end "cross-platform checks"

echo "== summary ($SUMMARY)"
cat "$SUMMARY"
if [ "$FAILED" != 0 ]; then
  echo "arm64: FAILED" >&2
  exit 1
fi
echo "arm64: ok"
