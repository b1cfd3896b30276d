"""python3 -m dtrn_ref compare: train several models on the same data with the same budget, over seeds.

For every seed s = 0 .. --seeds-1 the data is drawn (synthetic) or subsampled (log, store) once with
seed s, and every model is trained on it by the trainer's `fit` with the same options: Adam, the
same batches in the same order, the same epoch budget and early stopping on validation AUC (a
single-task model stops each task on its own), test metrics of the best epoch. Per model and task
the table gives the test AUC and GAUC (mean over seeds +- standard error) and the paired difference
to the first model (DTRN by default): the mean over seeds of (model - DTRN) +- its standard error
(sd of the per-seed differences / sqrt(seeds)), since every seed's models share data and batches.
The negative-transfer gate compares single-task with shared-bottom the same way, and passes when
single-task is better on at least one task by >= 3 standard errors.

Outputs in --out: results.json (every seed, model and task) and table.md (the tables below, also
printed). --quick shrinks everything for a smoke test.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

from . import metrics as MX
from . import train as T
from .config import ConfigError, load_config
from .logs import LogError
from .requests_io import RequestError
from .store import StoreError

DEFAULT_MODELS = "dtrn,mmoe,ple,shared-bottom,single-task"
ABLATIONS = "dtrn-no-hyper,dtrn-no-trm,dtrn-mean,mmoe-ta,ple-ta,shared-bottom-ta,single-task-ta"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python3 -m dtrn_ref compare", description=__doc__.splitlines()[0],
                                epilog="Models: " + ", ".join(T.MODELS) + ". '--models all' = " + DEFAULT_MODELS
                                       + "," + ABLATIONS + ".")
    p.add_argument("--config", required=True, help="model config JSON")
    p.add_argument("--data", required=True,
                   help="'synthetic:negative-transfer', 'synthetic' (positive-transfer), a log (CSV) or a store folder")
    p.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated (default {DEFAULT_MODELS}), or 'all'")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (default 5)")
    p.add_argument("--out", default=None, help="output folder (default runs/compare-<config>-<data>)")
    p.add_argument("--jobs", type=int, default=1,
                   help="seeds trained in parallel processes (default 1; 2 uses both cores of a 2-core machine)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 300 training and 200 evaluation requests, 2 epochs (unless given)")
    T.add_training_args(p)
    a = p.parse_args(argv)
    T.check_training_args(p, a)
    if a.seeds < 1:
        p.error("--seeds must be at least 1")
    if a.models == "all":
        a.models = DEFAULT_MODELS + "," + ABLATIONS
    a.model_list = [m.strip() for m in a.models.split(",") if m.strip()]
    for m in a.model_list:
        if m not in T.MODELS:
            p.error(f"--models: unknown model '{m}' (choose from {', '.join(T.MODELS)})")
    if len(set(a.model_list)) != len(a.model_list):
        p.error("--models: a model is listed twice")
    if a.quick:
        a.train_requests = a.train_requests or 300
        a.eval_requests = a.eval_requests or 200
        if "--epochs" not in argv:
            a.epochs = 2
    return a


def _mean_se(x):
    x = np.asarray([v for v in x if v is not None and not math.isnan(v)], dtype=np.float64)
    if len(x) == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


def _pm(m, se, digits=4):
    if math.isnan(m):
        return "n/a"
    return f"{m:.{digits}f}" + (f" ± {se:.{digits}f}" if not math.isnan(se) else "")


def summarise(results, models, tasks, ref):
    """results[seed][model] = {"test": {task: {auc, gauc}}, ...} -> summary dict."""
    seeds = sorted(results)
    out = {"models": {}, "reference": ref, "seeds": seeds}
    for m in models:
        row = {}
        for t in tasks:
            for metric in ("auc", "gauc"):
                vals = [results[s][m]["test"][t][metric] for s in seeds]
                row[f"{t}.{metric}"] = _mean_se(vals)
                if ref in models:
                    diff = [results[s][m]["test"][t][metric] - results[s][ref]["test"][t][metric] for s in seeds]
                    row[f"{t}.{metric}.diff"] = _mean_se(diff)
        if ref in models and m != ref and all("_group_aucs" in results[s][m] for s in seeds):
            for t in tasks:  # paired GAUC difference, SE by resampling users within each seed
                parts = []
                for s in seeds:
                    g0, a0, w0 = results[s][ref]["_group_aucs"][t]
                    g1, a1, _ = results[s][m]["_group_aucs"][t]
                    assert np.array_equal(g0, g1)
                    parts.append(MX.paired_gauc_bootstrap(a0, a1, w0, seed=s))
                row[f"{t}.gauc.diff_users"] = (float(np.mean([p[0] for p in parts])),
                                               float(math.sqrt(sum(p[1] ** 2 for p in parts)) / len(parts)))
        row["train_s"] = _mean_se([results[s][m]["train_s"] for s in seeds])[0]
        row["epochs"] = [results[s][m]["best_epoch"] for s in seeds]
        out["models"][m] = row
    if "single-task" in models and "shared-bottom" in models:
        gate = {}
        for t in tasks:
            d = [results[s]["single-task"]["test"][t]["auc"] - results[s]["shared-bottom"]["test"][t]["auc"]
                 for s in seeds]
            mean, se = _mean_se(d)
            gate[t] = {"diff": mean, "se": se, "z": mean / se if se and not math.isnan(se) and se > 0 else float("nan")}
        users = {}
        for t in tasks:  # GAUC difference, SE by resampling users (test-set noise only, not training noise)
            v = out["models"]["single-task"].get(f"{t}.gauc.diff_users") if "shared-bottom" == ref else None
            if v is None and all("_group_aucs" in results[s]["single-task"] for s in seeds):
                parts = [MX.paired_gauc_bootstrap(results[s]["shared-bottom"]["_group_aucs"][t][1],
                                                  results[s]["single-task"]["_group_aucs"][t][1],
                                                  results[s]["shared-bottom"]["_group_aucs"][t][2], seed=s)
                         for s in seeds]
                v = (float(np.mean([p[0] for p in parts])), float(math.sqrt(sum(p[1] ** 2 for p in parts)) / len(parts)))
            if v is not None:
                users[t] = {"diff": v[0], "se": v[1], "z": v[0] / v[1] if v[1] > 0 else float("nan")}
        out["gate"] = {"per_task": gate, "gauc_users": users,
                       "passed": any(g["z"] >= 3 for g in gate.values() if not math.isnan(g["z"])),
                       "passed_users": any(g["z"] >= 3 for g in users.values() if not math.isnan(g["z"]))}
    return out


def table(summary, tasks, meta):
    ref = summary["reference"]
    lines = [f"{meta}", ""]
    head = ["model"] + [f"{t} AUC" for t in tasks] + [f"{t} ΔAUC vs {ref}" for t in tasks] + \
        [f"{t} GAUC" for t in tasks] + [f"{t} ΔGAUC vs {ref} (SE seeds; SE users)" for t in tasks] + \
        ["best epochs", "train s"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for m, row in summary["models"].items():
        cells = [m]
        cells += [_pm(*row[f"{t}.auc"]) for t in tasks]
        cells += ["—" if m == ref else _pm(*row.get(f"{t}.auc.diff", (float("nan"),) * 2)) for t in tasks]
        cells += [_pm(*row[f"{t}.gauc"]) for t in tasks]
        cells += ["—" if m == ref else _pm(*row.get(f"{t}.gauc.diff", (float("nan"),) * 2))
                  + (f"; {row[f'{t}.gauc.diff_users'][1]:.4f}" if f"{t}.gauc.diff_users" in row else "")
                  for t in tasks]
        ep = row["epochs"]
        cells.append(", ".join("/".join(map(str, e)) if isinstance(e, list) else str(e) for e in ep))
        cells.append(f"{row['train_s']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    if "gate" in summary:
        g = summary["gate"]
        lines += ["", "Negative-transfer gate (single-task minus shared-bottom, test AUC, paired over seeds; "
                      "passes at >= 3 standard errors on some task): " + ("PASSED" if g["passed"] else "NOT PASSED"),
                  "", "| task | single-task − shared-bottom | SE | z |", "|---|---|---|---|"]
        for t, v in g["per_task"].items():
            lines.append(f"| {t} | {v['diff']:+.4f} | {v['se']:.4f} | {v['z']:.1f} |")
        if g.get("gauc_users"):
            lines += ["", "The same on test GAUC with the standard error from resampling users (test-set noise only; "
                          "the seed SE above also holds training noise): "
                      + ("PASSED" if g["passed_users"] else "NOT PASSED"), "",
                      "| task | single-task − shared-bottom GAUC | SE (users) | z |", "|---|---|---|---|"]
            for t, v in g["gauc_users"].items():
                lines.append(f"| {t} | {v['diff']:+.4f} | {v['se']:.4f} | {v['z']:.1f} |")
    return "\n".join(lines) + "\n"


def run_seed(args, cfg, s, device_name):
    """Draw seed s's data and train every model on it -> (per-model results, oracle metrics, sizes)."""
    from . import metrics as MX
    say = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    torch.set_num_threads(args.threads)
    device = torch.device(device_name)
    t0 = time.time()
    data = T.load_data(args, cfg, seed=s)
    sizes = {k: (len(v), v.num_candidates) for k, v in data.items()}
    say(f"[seed {s}] data: " + ", ".join(f"{k} {n} requests / {m} candidates" for k, (n, m) in sizes.items())
        + f" ({time.time() - t0:.0f} s)")
    oracle = None
    if getattr(data["test"], "oracle", None) is not None:
        lab = np.asarray(data["test"].labels)
        grp = np.repeat(np.arange(len(data["test"])), np.diff(np.asarray(data["test"].cand_off)))
        oracle = MX.task_metrics(cfg["tasks"], lab, data["test"].oracle, grp)
    out = {}
    for i, m in enumerate(args.model_list, 1):
        t1 = time.time()
        r = T.fit(T.build_model_seeded(m, cfg, s), data, cfg, args, device, seed=s)
        out[m] = {k: v for k, v in r.items() if k not in ("model", "test_predictions", "history")}
        out[m]["validation_mean_auc"] = [h["mean_auc"] for h in r["history"]]
        lg, lb, gr = r["test_predictions"]
        # per-request (= per-user) AUCs, for the GAUC bootstrap over users (kept in memory only)
        out[m]["_group_aucs"] = {t: MX.group_aucs(lb[:, k], lg[:, k], gr) for k, t in enumerate(cfg["tasks"])}
        say(f"[seed {s}] {m} ({i}/{len(args.model_list)}): " + "  ".join(
            f"{t} auc {v['auc']:.4f} gauc {v['gauc']:.4f}" for t, v in r["test"].items())
            + f"  (best epoch {r['best_epoch']}, {time.time() - t1:.0f} s)")
    return out, oracle, sizes


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    say = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    try:
        cfg = load_config(args.config)
        device = T._device(args.device, 0)
        out = args.out or os.path.join("runs", f"compare-{cfg.get('name', 'config')}-"
                                               f"{os.path.basename(args.data.rstrip('/')).replace(':', '-')}")
        os.makedirs(out, exist_ok=True)
        t_all = time.time()
        say(f"compare: {len(args.model_list)} models x {args.seeds} seeds on {device}"
            + (f", {args.jobs} seeds at a time" if args.jobs > 1 else "") + f"; results in {out}")
        runs = {}
        if args.jobs > 1:
            import concurrent.futures as cf
            import multiprocessing as mp
            with cf.ProcessPoolExecutor(max_workers=args.jobs, mp_context=mp.get_context("spawn")) as pool:
                futs = {pool.submit(run_seed, args, cfg, s, str(device)): s for s in range(args.seeds)}
                for f in cf.as_completed(futs):
                    runs[futs[f]] = f.result()
                    say(f"compare: seed {futs[f]} done ({len(runs)}/{args.seeds}, {(time.time() - t_all) / 60:.1f} min)")
        else:
            for s in range(args.seeds):
                runs[s] = run_seed(args, cfg, s, str(device))
                say(f"compare: seed {s} done ({s + 1}/{args.seeds}, {(time.time() - t_all) / 60:.1f} min)")
        results = {s: runs[s][0] for s in sorted(runs)}
        sizes = runs[0][2]
        summary = summarise(results, args.model_list, cfg["tasks"], args.model_list[0])
        for s in results:
            for m in results[s]:
                results[s][m].pop("_group_aucs", None)
        meta = (f"config {cfg.get('name', args.config)}, data {args.data}, {args.seeds} seeds; per seed: "
                f"{sizes['train'][0]} training, {sizes['validation'][0]} validation, {sizes['test'][0]} test requests "
                f"({sizes['test'][1]} test candidates); epochs <= {args.epochs}, patience {args.patience}, "
                f"batch {args.batch_size}, lr {args.lr}; wall time {(time.time() - t_all) / 60:.1f} min on {device}"
                + (f" ({args.jobs} processes)" if args.jobs > 1 else ""))
        oracles = [runs[s][1] for s in sorted(runs) if runs[s][1] is not None]
        if oracles:
            orc = {t: _mean_se([o[t]["auc"] for o in oracles])[0] for t in cfg["tasks"]}
            meta += "; the world's true probabilities reach test AUC " + ", ".join(
                f"{t} {v:.4f}" for t, v in orc.items()) + " (the ceiling)"
            summary["oracle_auc"] = orc
        text = table(summary, cfg["tasks"], meta)
        print(text)
        from .checkpoint import atomic_write
        atomic_write(os.path.join(out, "table.md"), text.encode())
        atomic_write(os.path.join(out, "results.json"),
                     (json.dumps(T._finite({"args": {k: v for k, v in vars(args).items()}, "summary": summary,
                                            "results": {str(k): v for k, v in results.items()}}), indent=1)
                      + "\n").encode())
        say(f"compare: wrote {out}/table.md and results.json ({(time.time() - t_all) / 60:.1f} min)")
        return 0
    except (ConfigError, RequestError, LogError, StoreError, T.TrainError, OSError) as e:
        print(f"compare: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
