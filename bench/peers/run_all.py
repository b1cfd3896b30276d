"""Peers bench driver: same checkpoint, same requests, every runtime, interleaved with dtrn-bench in one run.

usage: python3 bench/peers/run_all.py [options]     (bench/peers/run_all.sh sets PYTHONPATH and the defaults)

For each workload: train a checkpoint briefly (cached), generate held-out requests with exactly N candidates for
every N, score them with the float64 reference (goldens), convert to .dtrn (f32 and int8), export to every peer
whose environment exists (bench/peers/setup.sh), then for each N start one worker per peer (pinned to one core,
every variant of the peer loaded, each checked against the goldens) and rotate through all runtimes for several
rounds, dtrn-bench included, so drift hits all of them alike. Each round of a runtime: a warm-up, then timed
requests (one whole request, N candidates, inputs prepared beforehand); per round p50/p90/CPU-p50; the result of a
runtime is the median over rounds. Writes OUT/runs/STAMP/results.json and, unless --no-report, the markdown table
and the plot in bench/results/ (report.py).
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import prep  # noqa: E402

PEERS = ("onnxruntime", "openvino", "litert", "executorch", "pytorch")
CALIB_SEED, CALIB_REQUESTS, CALIB_N = 8001, 64, 100
REQ_SEED = 9000  # + N


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd, **kw):
    log("$ " + " ".join(map(str, cmd)))
    return subprocess.run(cmd, check=True, **kw)


def nice():
    return ["nice", "-n", str(os.environ.get("PEER_NICE", "10"))]


def cpu_slug():
    """A short slug of this CPU from /proc/cpuinfo, e.g. amd-epyc-zen4."""
    info = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if ":" in line:
                    k, v = (x.strip() for x in line.split(":", 1))
                    info.setdefault(k, v)
    except OSError:
        return platform.machine().lower()
    name = info.get("model name", platform.processor() or platform.machine())
    vendor = info.get("vendor_id", "")
    if vendor == "AuthenticAMD":
        fam, model = int(info.get("cpu family", 0)), int(info.get("model", 0))
        zen = {23: "zen2" if model >= 0x30 else "zen", 26: "zen5"}.get(fam)
        if fam == 25:
            zen = "zen4" if (0x10 <= model <= 0x1f or 0x60 <= model <= 0xaf) else "zen3"
        base = "amd-epyc" if "EPYC" in name else "amd-" + "-".join(name.lower().split()[1:3])
        return f"{base}-{zen}" if zen else base
    slug = "".join(c if c.isalnum() else "-" for c in name.lower())
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug.strip("-")[:40] or platform.machine()


def cpu_description():
    flags, name = "", ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and not name:
                    name = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8") if f in flags]
    return {"model_name": name, "isa": isa, "slug": cpu_slug(), "cores": os.cpu_count(),
            "fam_model": _fam_model()}


def _fam_model():
    try:
        out = {}
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                for k in ("cpu family", "model"):
                    if line.startswith(k + "\t") or line.startswith(k + " "):
                        out.setdefault(k, line.split(":", 1)[1].strip())
        return f"family {out.get('cpu family')} model {out.get('model')}"
    except OSError:
        return ""


# ---- data -----------------------------------------------------------------------------------------------

def write_requests(cfg_path, n_req, seed, n_cand, path):
    from dtrn_ref.synthetic import generate
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        for r in generate(cfg_path, n_req, seed=seed, n_candidates=n_cand):
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    os.replace(tmp, path)


def prepare_workload(a, w):
    """Checkpoint, requests, goldens, prepared inputs, .dtrn models for workload w -> dict of paths."""
    from dtrn_ref.checkpoint import load_checkpoint
    from dtrn_ref.requests_io import read_requests
    wd = os.path.join(a.out, w)
    os.makedirs(wd, exist_ok=True)
    cfg_path = os.path.join(REPO, "reference", "configs", f"{w}.json")
    ckpt = os.path.join(wd, "ckpt", "model.safetensors")
    if not os.path.exists(ckpt):
        sh(nice() + [sys.executable, "-m", "dtrn_ref", "train", "--config", cfg_path, "--data", "synthetic",
                     "--out", os.path.join(wd, "ckpt"), "--epochs", str(a.epochs), "--seed", "0", "--no-progress"],
           cwd=os.path.join(REPO, "reference"))
    _, cfg = load_checkpoint(ckpt)
    paths = {"dir": wd, "config": cfg_path, "checkpoint": ckpt, "ns": {}}
    calib = os.path.join(wd, "calib.jsonl")
    if not os.path.exists(calib):
        write_requests(cfg_path, CALIB_REQUESTS, CALIB_SEED, CALIB_N, calib)
    calib_npz = os.path.join(wd, "calib.npz")
    if not os.path.exists(calib_npz):
        np.savez(calib_npz, **prep.prepare_requests(cfg, read_requests(calib, cfg)))
    paths["calib"], paths["calib_npz"] = calib, calib_npz
    for n in a.ns:
        req = os.path.join(wd, f"requests-N{n}.jsonl")
        if not os.path.exists(req):
            write_requests(cfg_path, a.requests, REQ_SEED + n, n, req)
        gold = os.path.join(wd, f"golden-N{n}.jsonl")
        if not os.path.exists(gold):
            sh(nice() + [sys.executable, "-m", "dtrn_ref", "golden", "--checkpoint", ckpt, "--requests", req,
                         "--out", gold, "--dtype", "float64"], stderr=subprocess.DEVNULL)
        gnpy, inp = os.path.join(wd, f"golden-N{n}.npy"), os.path.join(wd, f"inputs-N{n}.npz")
        if not os.path.exists(gnpy):
            np.save(gnpy, prep.read_golden(gold)[1])
        if not os.path.exists(inp):
            np.savez(inp, **prep.prepare_requests(cfg, read_requests(req, cfg)))
        paths["ns"][n] = {"requests": req, "golden": gold, "golden_npy": gnpy, "inputs": inp}
    # dtrn-edge models
    conv = os.path.join(a.build, "converter", "dtrn-convert")
    paths["dtrn"] = {}
    for prec in ("f32", "int8"):
        m = os.path.join(wd, f"dtrn-{prec}.dtrn")
        if not os.path.exists(m) or os.path.getmtime(m) < os.path.getmtime(conv):
            cmd = [conv, "--checkpoint", ckpt, "--output", m, "--precision", prec]
            if prec == "int8":
                cmd += ["--embeddings", "int8", "--calibration", calib]
            sh(nice() + cmd, stdout=subprocess.DEVNULL)
        paths["dtrn"][prec] = m
    return paths


def export_peers(a, w, paths):
    """Run each installed peer's exporter (cached by checkpoint and Ns) -> {peer: manifest path or error}."""
    out = {}
    for peer in a.peers:
        py = os.path.join(a.venvs, peer, "bin", "python")
        if not os.path.exists(py):
            out[peer] = {"error": f"not installed ({py} missing: run bench/peers/setup.sh {peer})"}
            continue
        d = os.path.join(paths["dir"], "peers", peer)
        man = os.path.join(d, "manifest.json")
        # cached by checkpoint and Ns; --reexport PEERS (or all) forces a fresh export after code changes
        stamp = {"checkpoint_mtime": os.path.getmtime(paths["checkpoint"]), "ns": a.ns}
        stamp_path = os.path.join(d, "stamp.json")
        cached = False
        if os.path.exists(man) and os.path.exists(stamp_path) and not (peer in a.reexport or "all" in a.reexport):
            with open(stamp_path) as fh:
                old = json.load(fh)
            cached = old["checkpoint_mtime"] == stamp["checkpoint_mtime"] and set(a.ns) <= set(old["ns"])
        if not cached:
            if os.path.exists(d):
                shutil.rmtree(d)
            os.makedirs(d)
            t0 = time.time()
            with open(os.path.join(d, "export.log"), "w") as lf:
                r = subprocess.run(nice() + [py, os.path.join(HERE, "export.py"), peer, "--checkpoint",
                                             paths["checkpoint"], "--calib", paths["calib_npz"], "--out", d,
                                             "--ns", ",".join(map(str, a.ns))],
                                   stdout=lf, stderr=subprocess.STDOUT, env=_env())
            log(f"{w}: export {peer}: rc {r.returncode} in {time.time() - t0:.0f} s (log {d}/export.log)")
            if r.returncode != 0 or not os.path.exists(man):
                out[peer] = {"error": f"exporter failed (rc {r.returncode}): {_tail(os.path.join(d, 'export.log'))}"}
                continue
            with open(stamp_path, "w") as fh:
                json.dump(stamp, fh)
        out[peer] = {"manifest": man}
    return out


def _tail(path, n=1):
    try:
        with open(path) as fh:
            lines = [x.strip() for x in fh if x.strip()]
        return " | ".join(lines[-n:])[:400]
    except OSError:
        return "?"


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(REPO, "reference"), HERE] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    # one thread everywhere, whatever a library's default
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
              "TF_NUM_INTEROP_THREADS"):
        env[k] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def dtrn_accuracy(a, paths, prec, n):
    """Score the N-candidate requests with dtrn-run and compare with the goldens."""
    run = os.path.join(a.build, "runtime", "dtrn-run")
    if not os.path.exists(run):
        cand = [os.path.join(a.build, x, "dtrn-run") for x in ("tools", "runtime/tools", "bin")]
        run = next((c for c in cand if os.path.exists(c)), None)
        if run is None:
            return {"error": "dtrn-run not found in the build"}
    out = os.path.join(paths["dir"], f"dtrn-{prec}-N{n}.scores.jsonl")
    subprocess.run([run, "--model", paths["dtrn"][prec], "--requests", paths["ns"][n]["requests"], "--output", out,
                    "--quiet"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return prep.accuracy(prep.read_golden(out)[1], np.load(paths["ns"][n]["golden_npy"]))


# ---- timing ---------------------------------------------------------------------------------------------

class Worker:
    def __init__(self, a, peer, manifest, n, paths):
        py = os.path.join(a.venvs, peer, "bin", "python")
        cmd = ["taskset", "-c", str(a.cpu), py, os.path.join(HERE, "worker.py"), peer, "--manifest", manifest,
               "--inputs", paths["ns"][n]["inputs"], "--golden", paths["ns"][n]["golden_npy"], "--n", str(n)]
        self.errlog = open(os.path.join(paths["dir"], f"worker-{peer}-N{n}.log"), "w")
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errlog, text=True,
                                  env=_env())
        line = self.p.stdout.readline()
        if not line:
            self.p.wait()
            raise RuntimeError(f"worker {peer} died at start (rc {self.p.returncode}): "
                               f"{_tail(self.errlog.name, 2)}")
        self.hello = json.loads(line)

    def run(self, variant, warmup, runs):
        self.p.stdin.write(json.dumps({"run": variant, "warmup": warmup, "runs": runs}) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"worker died: {_tail(self.errlog.name, 2)}")
        r = json.loads(line)
        return r["wall_ms"], r["cpu_ms"]

    def close(self):
        try:
            self.p.stdin.write('{"quit": true}\n')
            self.p.stdin.flush()
            self.p.wait(timeout=30)
        except Exception:  # noqa: BLE001
            self.p.kill()
        self.errlog.close()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run_dtrn_bench(a, model, requests, warmup, runs, tmp):
    cmd = ["taskset", "-c", str(a.cpu), os.path.join(a.build, "bench", "dtrn-bench"), "--model", model,
           "--requests", requests, "--warmup", str(warmup), "--runs", str(runs), "--json", tmp]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(tmp) as fh:
        j = json.load(fh)
    return {"p50": j["total"]["p50_ms"], "p90": j["total"]["p90_ms"], "cpu_p50": j["total_cpu"]["p50_ms"],
            "runs": runs}


def time_n(a, w, paths, manifests, n, res):
    """Interleaved rounds over every runtime at N candidates; fills res['runtimes'] entries for this N."""
    workers, runtimes = {}, []
    for prec in ("f32", "int8"):
        runtimes.append(("dtrn-edge", f"{prec}", None))
    for peer, m in manifests.items():
        key = f"{peer}"
        if "error" in m:
            res["peers"].setdefault(peer, {"error": m["error"]})
            continue
        try:
            wk = Worker(a, peer, m["manifest"], n, paths)
        except Exception as e:  # noqa: BLE001
            log(f"{w} N={n}: {peer}: {e}")
            res["peers"].setdefault(peer, {})["error_N%d" % n] = str(e)[:400]
            continue
        workers[peer] = wk
        info = res["peers"].setdefault(peer, {})
        info["versions"] = wk.hello["versions"]
        if "xnnpack_threads" in wk.hello:
            info["xnnpack_threads"] = wk.hello["xnnpack_threads"]
        with open(m["manifest"]) as fh:
            man = {v["name"]: v for v in json.load(fh)["variants"]}
        for vname, st in wk.hello["ready"].items():
            ent = res["runtimes"].setdefault(f"{key}/{vname}", {
                "runtime": peer, "variant": vname, "export": man[vname]["export"],
                "precision": man[vname]["precision"], "by_n": {}, "accuracy": {}, "errors": {}})
            if st["ok"]:
                ent["accuracy"][str(n)] = {"max_abs_dp": st["max_abs_dp"], "mean_abs_dp": st["mean_abs_dp"]}
                runtimes.append((peer, vname, wk))
            else:
                ent["errors"][str(n)] = st["error"]
                log(f"{w} N={n}: {peer}/{vname} cannot run: {st['error']}")
    for prec in ("f32", "int8"):
        ent = res["runtimes"].setdefault(f"dtrn-edge/{prec}", {
            "runtime": "dtrn-edge", "variant": prec, "export": "native (.dtrn)",
            "precision": f"{prec}" + (" (int8 embeddings)" if prec == "int8" else ""), "by_n": {},
            "accuracy": {}, "errors": {}})
        try:
            ent["accuracy"][str(n)] = dtrn_accuracy(a, paths, prec, n)
        except Exception as e:  # noqa: BLE001
            ent["errors"][str(n)] = f"accuracy: {e}"
    tmp = os.path.join(paths["dir"], f"bench-N{n}.json")
    req_file = paths["ns"][n]["requests"]

    def one(rt, warmup, runs):
        peer, vname, wk = rt
        if peer == "dtrn-edge":
            return run_dtrn_bench(a, paths["dtrn"][vname], req_file, warmup, runs, tmp)
        wall, cpu = wk.run(vname, warmup, runs)
        return {"p50": pct(wall, 0.5), "p90": pct(wall, 0.9), "cpu_p50": pct(cpu, 0.5), "runs": runs}

    # size each runtime's rounds to about round_s seconds of timed requests
    plan = {}
    for rt in runtimes:
        try:
            probe = one(rt, 3, 10)
            runs = int(min(a.max_runs, max(a.min_runs, a.round_s * 1e3 / max(probe["p50"], 1e-3))))
            plan[rt[:2]] = (max(3, runs // 5), runs)
        except Exception as e:  # noqa: BLE001
            log(f"{w} N={n}: {rt[0]}/{rt[1]} probe failed: {e}")
            res["runtimes"][f"{rt[0]}/{rt[1]}"]["errors"][str(n)] = f"timing: {e}"[:400]
    live = [rt for rt in runtimes if rt[:2] in plan]
    rounds = {rt[:2]: [] for rt in live}
    t0 = time.time()
    for r in range(a.rounds):
        k = r % max(1, len(live))
        order = live[k:] + live[:k]   # rotate: each runtime takes every position in turn
        if r % 2:
            order = order[::-1]
        for rt in order:
            warmup, runs = plan[rt[:2]]
            rounds[rt[:2]].append(one(rt, warmup, runs))
    log(f"{w} N={n}: {len(live)} runtimes x {a.rounds} rounds in {time.time() - t0:.0f} s")
    for wk in workers.values():
        wk.close()
    for rt in live:
        rs = rounds[rt[:2]]
        res["runtimes"][f"{rt[0]}/{rt[1]}"]["by_n"][str(n)] = {
            "p50_ms": statistics.median(x["p50"] for x in rs), "p90_ms": statistics.median(x["p90"] for x in rs),
            "cpu_p50_ms": statistics.median(x["cpu_p50"] for x in rs),
            "rounds": [{k: x[k] for k in ("p50", "p90", "cpu_p50")} for x in rs], "runs_per_round": rs[0]["runs"]}
        e = res["runtimes"][f"{rt[0]}/{rt[1]}"]["by_n"][str(n)]
        log(f"{w} N={n}: {rt[0]:12s} {rt[1]:20s} p50 {e['p50_ms']:.4f} ms  p90 {e['p90_ms']:.4f}  "
            f"cpu {e['cpu_p50_ms']:.4f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="standard,small", help="comma-separated: small, standard, large")
    ap.add_argument("--ns", default="10,50,100,300,1000")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--round-s", type=float, default=0.5, help="seconds of timed requests per runtime per round")
    ap.add_argument("--min-runs", type=int, default=10)
    ap.add_argument("--max-runs", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=20, help="held-out requests per N (cycled while timing)")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs of the cached checkpoint")
    ap.add_argument("--cpu", type=int, default=int(os.environ.get("PEER_CPU", "1")), help="core to pin to")
    ap.add_argument("--out", default=os.environ.get("PEER_OUT", "/work/peer-bench"))
    ap.add_argument("--venvs", default=os.environ.get("PEER_VENVS", "/work/peer-venvs"))
    ap.add_argument("--build", default=os.environ.get("BUILD_DIR", os.path.join(REPO, "build")))
    ap.add_argument("--results", default=os.path.join(REPO, "bench", "results"))
    ap.add_argument("--label", default="", help="free text for the report header (e.g. 'quiet machine')")
    ap.add_argument("--reexport", default="", help="comma-separated peers (or 'all') whose cached exports to redo")
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--prepare-only", action="store_true", help="data, goldens, .dtrn models and exports; no timing")
    a = ap.parse_args(argv)
    a.ns = [int(x) for x in a.ns.split(",") if x]
    a.peers = [p for p in a.peers.split(",") if p]
    a.reexport = {p for p in a.reexport.split(",") if p}
    a.build = os.path.abspath(a.build)
    a.out = os.path.abspath(a.out)
    if os.path.realpath(a.out).startswith(os.path.realpath(REPO) + os.sep):
        sys.exit("run_all: --out must be outside the repository")
    for tool in ("converter/dtrn-convert", "bench/dtrn-bench"):
        if not os.path.exists(os.path.join(a.build, tool)):
            sys.exit(f"run_all: {a.build}/{tool} missing: build first (bash scripts/build.sh) or set BUILD_DIR")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = os.path.join(a.out, "runs", stamp)
    os.makedirs(run_dir, exist_ok=True)
    t_start = time.time()
    try:
        git = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
    except OSError:
        git = "?"
    results = {"date_utc": stamp, "label": a.label, "cpu": cpu_description(), "git": git,
               "host_load_at_start": os.getloadavg(), "pinned_cpu": a.cpu, "rounds": a.rounds, "round_s": a.round_s,
               "requests_per_n": a.requests, "ns": a.ns, "workloads": {}}
    for w in [x for x in a.workloads.split(",") if x]:
        log(f"== {w}: prepare")
        paths = prepare_workload(a, w)
        manifests = export_peers(a, w, paths)
        if a.prepare_only:
            continue
        res = {"checkpoint": paths["checkpoint"], "runtimes": {}, "peers": {}}
        results["workloads"][w] = res
        for n in a.ns:
            log(f"== {w}: N = {n}")
            time_n(a, w, paths, manifests, n, res)
            with open(os.path.join(run_dir, "results.json"), "w") as fh:
                json.dump(results, fh, indent=1)
    if a.prepare_only:
        return 0
    results["host_load_at_end"] = os.getloadavg()
    results["duration_s"] = round(time.time() - t_start)
    path = os.path.join(run_dir, "results.json")
    with open(path, "w") as fh:
        json.dump(results, fh, indent=1)
    log(f"results: {path} ({results['duration_s']} s)")
    if not a.no_report:
        import report
        report.main([path, "--results", a.results, "--venvs", a.venvs])
    return 0


if __name__ == "__main__":
    sys.exit(main())
