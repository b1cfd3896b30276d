"""results.json (run_all.py) -> bench/results/<cpu>.md, <cpu>.json and the plot <cpu>-latency.png.

usage: python3 bench/peers/report.py RESULTS.json [--results bench/results] [--venvs /work/peer-venvs]
The plot needs matplotlib: from this interpreter if it has it, else from PEER_VENVS/plot (setup.sh plot).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

HEADLINE_N = {"small": 50, "standard": 100, "large": 500}
ORDER = ("dtrn-edge", "onnxruntime", "openvino", "litert", "executorch", "pytorch")
LABEL = {"dtrn-edge": "dtrn-edge", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO (CPU)",
         "litert": "LiteRT (TFLite interpreter, XNNPACK)", "executorch": "ExecuTorch (XNNPACK)",
         "pytorch": "PyTorch eager"}
VERSION_KEYS = {"onnxruntime": ["onnxruntime"], "openvino": ["openvino", "nncf"],
                "litert": ["ai_edge_litert", "litert_torch"], "executorch": ["executorch", "torchao"],
                "pytorch": ["torch"]}


def _key(ent):
    return (ORDER.index(ent["runtime"]) if ent["runtime"] in ORDER else 99, ent["variant"])


def _fmt(x, nd=3):
    return "–" if x is None else (f"{x:.{nd}f}" if x >= 0.1 else f"{x:.4f}")


def _sci(x):
    return "–" if x is None else f"{x:.1e}"


def _short_version(peer, versions):
    if peer == "dtrn-edge":
        return "this tree"
    v = versions or {}
    parts = []
    for k in VERSION_KEYS.get(peer, []):
        if k in v:
            parts.append(f"{k.replace('_', '-')} {str(v[k]).split('-')[0]}")
    if peer != "pytorch" and "torch" in v:
        parts.append(f"torch {str(v['torch']).split('+')[0]} (export)")
    return ", ".join(parts)


def _acc(ent):
    """Worst max |dp| and mean of mean |dp| over the Ns checked."""
    acc = list(ent.get("accuracy", {}).values())
    acc = [x for x in acc if "max_abs_dp" in x]
    if not acc:
        return None, None
    return max(x["max_abs_dp"] for x in acc), sum(x["mean_abs_dp"] for x in acc) / len(acc)


def workload_md(w, res, ns):
    out = []
    ents = sorted(res["runtimes"].values(), key=_key)
    ref = res["runtimes"].get("dtrn-edge/int8", {}).get("by_n", {})
    hn = HEADLINE_N.get(w, ns[len(ns) // 2])
    if str(hn) not in ref:
        hn = next((n for n in ns if str(n) in ref), hn)
    out.append(f"### {w}: one request of N = {hn} candidates, 1 thread\n")
    run = res.get("run")
    if run and run.get("date_utc"):
        la, lb = run.get("host_load_at_start") or [float("nan")], run.get("host_load_at_end") or [float("nan")]
        out.append(f"Run {run['date_utc']} (git {run.get('git')}), {run.get('duration_s')} s, host load average "
                   f"{la[0]:.2f} at start, {lb[0]:.2f} at end.\n")
    out.append("Ratio = runtime p50 / dtrn-edge int8 p50, same run (above 1: dtrn-edge int8 is faster). "
               "|Δp| = probability error against the float64 reference goldens, worst max and average mean "
               "over every N's held-out requests.\n")
    out.append("| runtime | export | precision | p50 ms | p90 ms | CPU p50 ms | ratio to dtrn-edge int8 | "
               "ratio, CPU time | max \\|Δp\\| | mean \\|Δp\\| | versions |")
    out.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    versions = {p: i.get("versions") for p, i in res.get("peers", {}).items()}
    for e in ents:
        b = e["by_n"].get(str(hn))
        mx, mn = _acc(e)
        ratio = f"{b['p50_ms'] / ref[str(hn)]['p50_ms']:.2f}x" if b and str(hn) in ref else "–"
        cratio = (f"{b['cpu_p50_ms'] / ref[str(hn)]['cpu_p50_ms']:.2f}x" if b and str(hn) in ref else "–")
        if b:
            row = [_fmt(b["p50_ms"]), _fmt(b["p90_ms"]), _fmt(b["cpu_p50_ms"]), ratio, cratio]
        else:
            err = e["errors"].get(str(hn)) or next(iter(e["errors"].values()), "not timed")
            row = ["did not run", "", "", err.replace("|", "/")[:160], ""]
        out.append(f"| {LABEL.get(e['runtime'], e['runtime'])} | {e['export']} | {e['precision']} | "
                   + " | ".join(row) + f" | {_sci(mx)} | {_sci(mn)} | "
                   f"{_short_version(e['runtime'], versions.get(e['runtime']))} |")
    out.append("")
    # wall against CPU: a shared core shows as wall time well above CPU time
    shared = []
    for n in ns:
        rs = [e["by_n"][str(n)]["p50_ms"] / e["by_n"][str(n)]["cpu_p50_ms"] for e in ents
              if str(n) in e["by_n"] and e["by_n"][str(n)]["cpu_p50_ms"] > 0]
        if rs and sorted(rs)[len(rs) // 2] > 1.15:
            shared.append(f"N = {n} (median wall / CPU {sorted(rs)[len(rs) // 2]:.2f})")
    if shared:
        out.append("**The pinned core was shared during part of this run** (wall time well above CPU time at "
                   + ", ".join(shared) + "): there, read the CPU-time figures.\n")
    # N sweeps
    for key, what in (("p50_ms", "p50 ms"), ("cpu_p50_ms", "CPU-time p50 ms")):
        out.append(f"#### {w}: {what} against N (ratio to dtrn-edge int8 in brackets)\n")
        out.append("| runtime | export | precision | " + " | ".join(f"N = {n}" for n in ns) + " |")
        out.append("|---|---|---|" + "---:|" * len(ns))
        for e in ents:
            cells = []
            for n in ns:
                b = e["by_n"].get(str(n))
                if not b:
                    cells.append("–")
                elif (e["runtime"], e["variant"]) == ("dtrn-edge", "int8") or str(n) not in ref:
                    cells.append(_fmt(b[key]))
                else:
                    cells.append(f"{_fmt(b[key])} ({b[key] / ref[str(n)][key]:.2f}x)")
            out.append(f"| {LABEL.get(e['runtime'], e['runtime'])} | {e['export']} | {e['precision']} | "
                       + " | ".join(cells) + " |")
        out.append("")
    # best peer per N
    out.append(f"#### {w}: dtrn-edge against the fastest peer at each N\n")
    out.append("| N | fastest peer f32 (p50 ms) | fastest peer int8 (p50 ms) | fastest peer overall / dtrn-edge int8 "
               "| same, CPU time | fastest peer f32 / dtrn-edge f32 | dtrn-edge int8 p50 / N, µs |")
    out.append("|---:|---|---|---:|---:|---:|---:|")
    f32ref = res["runtimes"].get("dtrn-edge/f32", {}).get("by_n", {})
    for n in ns:
        peers = [e for e in ents if e["runtime"] != "dtrn-edge" and str(n) in e["by_n"]]
        if not peers or str(n) not in ref:
            continue
        best = min(peers, key=lambda e: e["by_n"][str(n)]["p50_ms"])
        bf = [e for e in peers if e["precision"] == "f32"]
        bi = [e for e in peers if e["precision"] != "f32"]
        bf = min(bf, key=lambda e: e["by_n"][str(n)]["p50_ms"]) if bf else None
        bi = min(bi, key=lambda e: e["by_n"][str(n)]["p50_ms"]) if bi else None

        def nm(e, n=n):
            return "–" if e is None else (f"{e['runtime']} {e['variant']} ({_fmt(e['by_n'][str(n)]['p50_ms'])})")
        r_all = best["by_n"][str(n)]["p50_ms"] / ref[str(n)]["p50_ms"]
        r_f32 = (bf["by_n"][str(n)]["p50_ms"] / f32ref[str(n)]["p50_ms"]) if bf and str(n) in f32ref else None
        per_cand = ref[str(n)]["p50_ms"] * 1e3 / n
        best_cpu = min(peers, key=lambda e: e["by_n"][str(n)]["cpu_p50_ms"])
        r_cpu = best_cpu["by_n"][str(n)]["cpu_p50_ms"] / ref[str(n)]["cpu_p50_ms"]
        out.append(f"| {n} | {nm(bf)} | {nm(bi)} | {r_all:.2f}x | {r_cpu:.2f}x ({best_cpu['runtime']} "
                   f"{best_cpu['variant']}) | "
                   f"{'–' if r_f32 is None else f'{r_f32:.2f}x'} | {per_cand:.2f} |")
    out.append("")
    # what did not run
    bad = [(e, n, msg) for e in ents for n, msg in e.get("errors", {}).items()]
    peer_err = [(p, k, v) for p, i in res.get("peers", {}).items() for k, v in i.items() if k.startswith("error")]
    if bad or peer_err:
        out.append(f"#### {w}: what could not run, and why\n")
        seen = set()
        for p, _k, v in peer_err:
            out.append(f"- {LABEL.get(p, p)}: {v}")
        for e, _n, msg in bad:
            key = (e["runtime"], e["variant"], msg)
            if key in seen:
                continue
            seen.add(key)
            ns_bad = sorted(int(m) for m, x in e["errors"].items() if x == msg)
            out.append(f"- {LABEL.get(e['runtime'], e['runtime'])} {e['variant']} (N = {', '.join(map(str, ns_bad))})"
                       f": {msg}")
        out.append("")
    return "\n".join(out)


def markdown(r, png_name):
    ns = r["ns"]
    lines = [f"# Peers bench: {r['cpu']['slug']}\n"]
    label = r.get("label") or ""
    lines.append(f"**{label}**\n" if label else "")
    lines.append(f"- date (UTC): {r['date_utc']}; git {r['git']}; timing runs {r.get('duration_s', '?')} s in all")
    lines.append(f"- CPU: {r['cpu']['model_name']} ({r['cpu'].get('fam_model', '')}; {', '.join(r['cpu']['isa'])}), "
                 f"{r['cpu']['cores']} cores; every runtime pinned to core {r['pinned_cpu']} (taskset), 1 thread")
    la, lb = r.get("host_load_at_start"), r.get("host_load_at_end")
    if la:
        lines.append(f"- host load average at start {la[0]:.2f}, at end {lb[0] if lb else float('nan'):.2f}")
    lines.append(f"- method: {r['requests_per_n']} held-out synthetic requests per N (exactly N candidates each; "
                 "inputs prepared before timing), the same for every runtime; for each N, "
                 f"{r['rounds']} interleaved rounds (the order rotates every round), each round a warm-up then about "
                 f"{r['round_s']} s of timed requests per runtime; figures are medians over rounds of the per-round "
                 "p50 / p90 / CPU-time p50 (peers: process CPU time, all threads; dtrn-bench: thread CPU time)")
    lines.append("- dtrn-edge: `dtrn-convert --precision f32|int8 --embeddings int8 --calibration` and "
                 "`dtrn-bench`; peers: bench/peers (export.py, worker.py); plain = the whole request as one graph, "
                 "split = user stage once + candidate stage batched over N\n")
    if r.get("merged"):
        lines.append(f"- {r['merged']} runs merged, one per workload (each workload's runtimes interleaved within "
                     "its own run; see each workload's run line below)")
    missing = [w for w in HEADLINE_N if w not in r["workloads"]]
    if missing:
        lines.append(f"- not in this run: {', '.join(missing)} (`run_all.sh --workloads "
                     f"{','.join(list(r['workloads']) + missing)}`)")
    lines.append("")
    lines.append(f"![p50 latency and CPU-time p50 against N]({png_name})\n")
    for w, res in r["workloads"].items():
        lines.append(workload_md(w, res, ns))
    lines.append("Reproduce: `bash bench/peers/setup.sh && bash bench/peers/run_all.sh` (see bench/peers/README.md).")
    return "\n".join(lines) + "\n"


def plot(r, path):
    """p50 against N, log-log, one panel per workload; colour = runtime, marker = precision (circle f32, square
    int8; shades for the int8 flavours), line = export (solid plain or native, dashed split)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ws = list(r["workloads"])
    fig, axes = plt.subplots(2, len(ws), figsize=(8 * len(ws), 14), squeeze=False)
    cmaps = {"dtrn-edge": "Greys", "onnxruntime": "Blues", "openvino": "Purples", "litert": "Greens",
             "executorch": "Oranges", "pytorch": "Reds"}
    for row, key, what in ((0, "p50_ms", "p50 latency"), (1, "cpu_p50_ms", "CPU-time p50")):
        for ax, w in zip(axes[row], ws):
            _panel(plt, ax, r, w, cmaps, key, what)
    if r.get("label"):
        fig.suptitle(r["label"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def _panel(plt, ax, r, w, cmaps, key, what):
    if True:
        ents = sorted(r["workloads"][w]["runtimes"].values(), key=_key)
        for e in ents:
            ns = [int(n) for n in sorted(e["by_n"], key=int)]
            if not ns:
                continue
            ys = [e["by_n"][str(n)][key] for n in ns]
            prec = e["precision"]
            shade = 0.95 if prec.startswith("f32") else (0.7 if "dynamic" in prec else 0.5)
            if e["runtime"] == "dtrn-edge":
                shade = 0.95 if prec.startswith("f32") else 0.6
            col = plt.get_cmap(cmaps.get(e["runtime"], "Greys"))(shade)
            ls = "--" if e["export"] == "split" else "-"
            lw = 2.8 if e["runtime"] == "dtrn-edge" else 1.3
            ax.plot(ns, ys, ls, color=col, lw=lw, marker="o" if prec.startswith("f32") else "s", ms=4,
                    label=f"{e['runtime']} {e['variant']}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("candidates per request (N)")
        ax.set_ylabel(f"{what} per request, ms (1 thread, pinned)")
        ax.set_title(f"{w}: {what} ({r['cpu']['slug']}, {r['date_utc'][:8]})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2, loc="upper left")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="results.json of one run; several: their workloads are merged "
                                              "(each workload keeps its own run's date and load)")
    ap.add_argument("--results", dest="out", default=os.path.join(os.path.dirname(__file__), "..", "results"))
    ap.add_argument("--venvs", default=os.environ.get("PEER_VENVS", "/work/peer-venvs"))
    ap.add_argument("--plot-only", metavar="PNG", help="only draw the plot into PNG")
    a = ap.parse_args(argv)
    r = None
    for path in a.results:
        with open(path) as fh:
            one = json.load(fh)
        for res in one["workloads"].values():
            res["run"] = {k: one.get(k) for k in ("date_utc", "host_load_at_start", "host_load_at_end",
                                                   "duration_s", "git")}
        if r is None:
            r = one
        else:
            r["workloads"].update(one["workloads"])
            r["duration_s"] = (r.get("duration_s") or 0) + (one.get("duration_s") or 0)
            r["merged"] = len(a.results)
    merged = os.path.join(os.path.dirname(os.path.abspath(a.results[-1])), "results-merged.json")
    if len(a.results) > 1:
        with open(merged, "w") as fh:
            json.dump(r, fh, indent=1)
    if a.plot_only:
        plot(r, a.plot_only)
        return 0
    os.makedirs(a.out, exist_ok=True)
    slug = r["cpu"]["slug"]
    png = os.path.join(a.out, f"{slug}-latency.png")
    with open(os.path.join(a.out, f"{slug}.md"), "w") as fh:
        fh.write(markdown(r, os.path.basename(png)))
    src = a.results[0] if len(a.results) == 1 else merged
    shutil.copyfile(src, os.path.join(a.out, f"{slug}.json"))
    try:
        import matplotlib  # noqa: F401
        plot(r, png)
    except ImportError:
        py = os.path.join(a.venvs, "plot", "bin", "python")
        if not os.path.exists(py):
            print(f"report: no matplotlib here nor in {py}: run bench/peers/setup.sh plot; plot skipped",
                  file=sys.stderr)
            return 1
        subprocess.run([py, os.path.abspath(__file__), src, "--plot-only", png], check=True)
    print(f"report: wrote {a.out}/{slug}.md, {slug}.json, {os.path.basename(png)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
