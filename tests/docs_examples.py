"""Runs every code example of the docs, so none goes stale.

usage: python3 tests/docs_examples.py --build BUILD_DIR [--require-python] [FILE.md ...]

Fenced blocks are run by language: ```cpp and ```c are compiled against the build tree and
libdtrn.so and run (each must be a whole program); a file's ```python blocks run in order
as one script (one session: later blocks may use earlier names; skipped with a note when
the bindings are not importable, unless --require-python); ```bash blocks run with
`set -euo pipefail`; ```json blocks must parse, and a JSON request is scored by dtrn-run
against the example model. Everything runs in a scratch folder holding the committed
example (model.safetensors, requests.jsonl, golden.jsonl) and its conversions small.dtrn
(f32) and small-int8.dtrn, with the build's tools on PATH; `build` and `examples` in it
link to the build folder and the tree's examples/, so commands written for the repository
root (build/converter/dtrn-convert --checkpoint examples/small/...) run as shown and write
their outputs into the scratch folder, not the tree. A block fenced with a
`no-run` tag (```kotlin no-run) is only shown: languages this machine cannot run.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FILES = ["README.md", "python/README.md"] + sorted(
    os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
RUNNABLE = {"cpp", "c", "python", "bash", "sh", "json"}
SHOWN_ONLY = {"cmake", "kotlin", "groovy", "java", "swift", "text", "", "console"}


def blocks(path):
    """(line, language, tags, code) of every fenced block."""
    out, cur = [], None
    for i, line in enumerate(open(path, encoding="utf-8"), 1):
        m = re.match(r"^```\s*([A-Za-z0-9+_-]*)\s*(.*)$", line.rstrip("\n"))
        if cur is None and m:
            cur = (i, m.group(1).lower(), m.group(2).split(), [])
        elif cur is not None and line.startswith("```"):
            out.append((cur[0], cur[1], cur[2], "".join(cur[3])))
            cur = None
        elif cur is not None:
            cur[3].append(line)
    if cur is not None:
        raise SystemExit(f"{path}:{cur[0]}: unterminated code block")
    return out


def run(cmd, cwd, env, what, timeout=300):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{what}: exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


def prepare(build, work):
    ex = os.path.join(ROOT, "examples", "small")
    for f in ("model.safetensors", "requests.jsonl", "golden.jsonl"):
        shutil.copy(os.path.join(ex, f), work)
    conv = os.path.join(build, "converter", "dtrn-convert")
    run([conv, "--checkpoint", "model.safetensors", "--output", "small.dtrn", "--quiet"], work, None, "convert f32")
    run([conv, "--checkpoint", "model.safetensors", "--output", "small-int8.dtrn", "--precision", "int8",
         "--embeddings", "int8", "--calibration", "requests.jsonl", "--quiet"], work, None, "convert int8")


def compile_and_run(lang, code, where, build, work, env):
    if not re.search(r"\bmain\s*\(", code):
        raise RuntimeError(f"{where}: a {lang} example must be a whole program (no main()); fence it `no-run` if not")
    src = os.path.join(work, "example." + ("cc" if lang == "cpp" else "c"))
    open(src, "w").write(code)
    exe = os.path.join(work, "example")
    incs = [os.path.join(ROOT, p) for p in ("runtime/include", "runtime/io/include", "runtime/c_api")]
    incs.append(os.path.join(build, "generated"))
    lib = os.path.join(build, "lib")
    comp = ["g++", "-std=c++17"] if lang == "cpp" else ["gcc", "-std=c99"]
    run(comp + [src, "-o", exe] + [f"-I{i}" for i in incs] + [f"-L{lib}", "-ldtrn", f"-Wl,-rpath,{lib}"],
        work, env, f"{where}: compile")
    return run([exe], work, env, f"{where}: run")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--require-python", action="store_true")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args(argv)
    build = os.path.abspath(a.build)
    files = a.files or DEFAULT_FILES
    work = tempfile.mkdtemp(prefix="dtrn-docs-")
    env = dict(os.environ)
    tools = [os.path.join(build, d) for d in ("converter", "runtime", "bench", "examples")]
    env["PATH"] = os.pathsep.join(tools + [env.get("PATH", "")])
    env["DTRN_BUILD"] = build
    env["DTRN_SOURCE"] = ROOT
    # The bindings: a DTRN_PYTHON=ON build's module, else an installed one (pip install ./python);
    # the reference (dtrn_ref) for compare_with_reference.
    pypath = [p for p in (os.path.join(build, "python"), os.path.join(ROOT, "reference")) if os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(pypath + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    prepare(build, work)
    # Commands in the docs are written from the repository root: give them its two folders.
    os.symlink(build, os.path.join(work, "build"))
    os.symlink(os.path.join(ROOT, "examples"), os.path.join(work, "examples"))
    have_python = subprocess.run([sys.executable, "-c", "import dtrn, numpy"], env=env, cwd=work,
                                 capture_output=True).returncode == 0
    if a.require_python and not have_python:
        raise SystemExit("docs_examples: --require-python, but `import dtrn` fails")
    counts = {"run": 0, "shown": 0, "skipped": 0}
    failures = []
    for f in files:
        path = os.path.join(ROOT, f)
        py = []
        for line, lang, tags, code in blocks(path):
            where = f"{f}:{line}"
            if "no-run" in tags or lang in SHOWN_ONLY:
                if lang in RUNNABLE and "no-run" not in tags:
                    failures.append(f"{where}: {lang} block neither run nor marked no-run")
                counts["shown"] += 1
                continue
            if lang not in RUNNABLE:
                failures.append(f"{where}: unknown language '{lang}' (run it or mark it no-run)")
                continue
            try:
                if lang in ("cpp", "c"):
                    compile_and_run(lang, code, where, build, work, env)
                elif lang in ("bash", "sh"):
                    run(["bash", "-c", "set -euo pipefail\n" + code], work, env, where, timeout=900)
                elif lang == "json":
                    obj = json.loads(code)
                    if isinstance(obj, dict) and "candidates" in obj:  # a request: the runtime must score it
                        open(os.path.join(work, "doc-request.jsonl"), "w").write(json.dumps(obj) + "\n")
                        run([os.path.join(build, "runtime", "dtrn-run"), "--model", "small.dtrn", "--requests",
                             "doc-request.jsonl", "--quiet"], work, env, f"{where}: dtrn-run on the example request")
                elif lang == "python":
                    py.append((where, code))
                    continue
                counts["run"] += 1
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                failures.append(str(e))
        if py and not have_python:
            counts["skipped"] += len(py)
            print(f"docs_examples: {f}: {len(py)} python blocks skipped (the bindings are not importable)")
        elif py:
            script = "".join(f"# {w}\n{c}\n" for w, c in py)
            try:
                run([sys.executable, "-c", script], work, env, f"{f}: python blocks {py[0][0]}..")
                counts["run"] += len(py)
            except RuntimeError as e:
                failures.append(str(e))
    shutil.rmtree(work, ignore_errors=True)
    for msg in failures:
        print("docs_examples: FAIL " + msg, file=sys.stderr)
    print(f"docs_examples: {counts['run']} run, {counts['shown']} shown only, {counts['skipped']} skipped, "
          f"{len(failures)} failed ({len(files)} files)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
