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
        out["gate"] = {"per_task": gate,
                       "passed": any(g["z"] >= 3 for g in gate.values() if not math.isnan(g["z"]))}
    return out


def table(summary, tasks, meta):
    ref = summary["reference"]
    lines = [f"{meta}", ""]
    head = ["model"] + [f"{t} AUC" for t in tasks] + [f"{t} ΔAUC vs {ref}" for t in tasks] + \
        [f"{t} GAUC" for t in tasks] + [f"{t} ΔGAUC vs {ref}" for t in tasks] + ["best epochs", "train s"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for m, row in summary["models"].items():
        cells = [m]
        cells += [_pm(*row[f"{t}.auc"]) for t in tasks]
        cells += ["—" if m == ref else _pm(*row.get(f"{t}.auc.diff", (float("nan"),) * 2)) for t in tasks]
        cells += [_pm(*row[f"{t}.gauc"]) for t in tasks]
        cells += ["—" if m == ref else _pm(*row.get(f"{t}.gauc.diff", (float("nan"),) * 2)) for t in tasks]
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
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    say = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    try:
        cfg = load_config(args.config)
        device = T._device(args.device, 0)
        torch.set_num_threads(args.threads)
        out = args.out or os.path.join("runs", f"compare-{cfg.get('name', 'config')}-"
                                               f"{os.path.basename(args.data.rstrip('/')).replace(':', '-')}")
        os.makedirs(out, exist_ok=True)
        results, t_all = {}, time.time()
        extra = {}
        n_runs, done = args.seeds * len(args.model_list), 0
        for s in range(args.seeds):
            t0 = time.time()
            data = T.load_data(args, cfg, seed=s)
            say(f"[seed {s + 1}/{args.seeds}] data: " + ", ".join(f"{k} {len(v)} requests / {v.num_candidates} "
                                                                   "candidates" for k, v in data.items())
                + f" ({time.time() - t0:.0f} s)")
            if getattr(data["test"], "oracle", None) is not None:
                from . import metrics as MX
                o, lab = data["test"].oracle, np.asarray(data["test"].labels)
                grp = np.repeat(np.arange(len(data["test"])), np.diff(np.asarray(data["test"].cand_off)))
                extra.setdefault("oracle", []).append(MX.task_metrics(cfg["tasks"], lab, o, grp))
            results[s] = {}
            for m in args.model_list:
                t1 = time.time()
                torch.manual_seed(s)
                r = T.fit(T.build_model(m, cfg), data, cfg, args, device, seed=s)
                done += 1
                results[s][m] = {k: v for k, v in r.items() if k not in ("model", "test_predictions", "history")}
                results[s][m]["validation_mean_auc"] = [h["mean_auc"] for h in r["history"]]
                elapsed = time.time() - t_all
                say(f"[seed {s + 1}/{args.seeds}] {m}: " + "  ".join(
                    f"{t} auc {v['auc']:.4f} gauc {v['gauc']:.4f}" for t, v in r["test"].items())
                    + f"  (best epoch {r['best_epoch']}, {time.time() - t1:.0f} s; {done}/{n_runs} runs, "
                      f"about {elapsed / done * (n_runs - done) / 60:.0f} min left)")
        summary = summarise(results, args.model_list, cfg["tasks"], args.model_list[0])
        test = data["test"]
        meta = (f"config {cfg.get('name', args.config)}, data {args.data}, {args.seeds} seeds; per seed: "
                f"{len(data['train'])} training, {len(data['validation'])} validation, {len(test)} test requests "
                f"({test.num_candidates} test candidates); epochs <= {args.epochs}, patience {args.patience}, "
                f"batch {args.batch_size}, lr {args.lr}; wall time {(time.time() - t_all) / 60:.1f} min on {device}")
        if "oracle" in extra:
            orc = {t: _mean_se([o[t]["auc"] for o in extra["oracle"]])[0] for t in cfg["tasks"]}
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
