"""python3 -m dtrn_ref train: train DTRN or a baseline, validate per epoch, early-stop, test, export.

Single process by default; under torchrun (WORLD_SIZE > 1) it trains with DistributedDataParallel
(gloo on CPU, nccl on CUDA, or --backend), every rank building the same data and taking its share of
each epoch's batches; rank 0 writes the outputs. Loss: sum over tasks of the mean BCEWithLogits.
Data: 'synthetic' (the positive-transfer world), 'synthetic:negative-transfer', a behaviour log
(CSV, read by dtrn_ref.logs), or a folder written by `python3 -m dtrn_ref requests --log ... --store`
(train/validation/test request stores, memory-mapped). Outputs in --out: metrics.json (per-epoch
validation and final test metrics per task, timings, throughput, peak GPU memory) and, for --model
dtrn, model.safetensors (the best epoch's weights, config in the metadata).
"""
import argparse
import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as Fn

from . import metrics as MX
from .baselines import BASELINES, Baseline, SingleTask
from .config import ConfigError, load_config
from .logs import TARGETS, LogError
from .requests_io import RequestError
from .store import StoreError

# Models the trainer builds. The '-ta' baselines pool each sequence with DTRN's target attention
# instead of a mean; the 'dtrn-*' ones are DTRN ablations (training only: they do not export).
MODELS = ("dtrn", "dtrn-no-hyper", "dtrn-no-trm", "dtrn-mean") + BASELINES + ("single-task",) + tuple(
    m + "-ta" for m in BASELINES + ("single-task",))


class TrainError(ValueError):
    """A usage problem the trainer reports in one line (no device, an empty split)."""


def add_training_args(p):
    """Options shared by `train` and `compare`."""
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64, help="requests per step (per process)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--patience", type=int, default=2,
                   help="epochs without a better mean validation AUC tolerated; the next one stops training")
    p.add_argument("--train-requests", type=int, default=None,
                   help="synthetic: how many (default 4000); log or store: random subset of the training split")
    p.add_argument("--eval-requests", type=int, default=None,
                   help="synthetic: validation and test size each (default 1000); log or store: cap on each")
    p.add_argument("--test-requests", type=int, default=None,
                   help="synthetic: test size (default: --eval-requests); log or store: cap on the test split")
    p.add_argument("--candidates", type=int, default=None,
                   help="candidates per request (synthetic default 20, negative-transfer 10; log: target + 9 "
                        "negatives)")
    p.add_argument("--behavior-map", default=None,
                   help="log: raw type -> names, e.g. pv=click,cart=cart,buy=purchase,fav= (NAME+NAME feeds several)")
    p.add_argument("--columns", default=None,
                   help="log: column mapping, e.g. user=user_id,item=item_id,category=category_id,"
                        "behavior=behavior_type,time=timestamp (see dtrn_ref.logs)")
    p.add_argument("--target", default="first", choices=TARGETS,
                   help="log: 'first' (each user's first event with an item) or 'task0' (every event of the first task)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads per process (default 1: the ops are small, more threads mostly spin)")
    p.add_argument("--amp", default="off", choices=("off", "bf16"),
                   help="autocast the forward pass to bfloat16 (default off: float32 throughout)")
    p.add_argument("--backend", default="auto", choices=("auto", "gloo", "nccl"),
                   help="torch.distributed backend under torchrun (auto: nccl on CUDA, gloo on CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_training_args(p, a):
    for k in ("epochs", "batch_size", "train_requests", "eval_requests", "test_requests", "candidates", "threads"):
        v = getattr(a, k)
        if v is not None and v < 1:
            p.error(f"--{k.replace('_', '-')} must be at least 1")
    if a.patience < 0 or not (a.lr > 0 and math.isfinite(a.lr)):
        p.error("--patience must be >= 0 and --lr a positive number")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python3 -m dtrn_ref train", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="model config JSON")
    p.add_argument("--data", required=True,
                   help="'synthetic', 'synthetic:negative-transfer', a log file (CSV) or a request-store folder")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--model", default="dtrn", choices=MODELS)
    p.add_argument("--seed", type=int, default=0, help="data, initialisation and shuffling")
    add_training_args(p)
    a = p.parse_args(argv)
    check_training_args(p, a)
    return a


# ---- data -------------------------------------------------------------------------------------

def load_data(args, cfg, seed=None):
    """-> {"train", "validation", "test"}: store.Columns holding table rows."""
    from .store import Columns
    seed = args.seed if seed is None else seed
    if args.data == "synthetic" or args.data.startswith("synthetic:"):
        from .synthetic import WORLDS, generate_nt_columns, make_columns
        world = args.data.partition(":")[2] or "positive-transfer"
        if world not in WORLDS:
            raise TrainError(f"--data {args.data}: unknown synthetic world '{world}' (choose from {list(WORLDS)})")
        n_tr, n_ev = args.train_requests or 4000, args.eval_requests or 1000
        n_te = getattr(args, "test_requests", None) or n_ev
        oracle = None
        if world == "negative-transfer":
            cols, oracle = generate_nt_columns(cfg, n_tr + n_ev + n_te, seed, args.candidates or 10, with_oracle=True)
        else:
            cols = make_columns(cfg, world, n_tr + n_ev + n_te, seed, args.candidates)
        cols = cols.to_rows()
        out = {"train": cols.take(np.arange(n_tr)), "validation": cols.take(np.arange(n_tr, n_tr + n_ev)),
               "test": cols.take(np.arange(n_tr + n_ev, n_tr + n_ev + n_te))}
        if oracle is not None:  # the world's true logits of the test candidates (the ceiling)
            out["test"].oracle = oracle[int(cols.cand_off[n_tr + n_ev]):]
    elif os.path.isdir(args.data):
        out = {s: Columns.load(os.path.join(args.data, s), cfg) for s in ("train", "validation", "test")}
        for s, c in out.items():
            if not c.rows:
                raise TrainError(f"data '{args.data}/{s}': the store holds raw ids, not table rows")
    else:
        from .logs import DEFAULT_BEHAVIOR_MAP, load_columns
        neg = (args.candidates or 10) - 1
        out = load_columns(args.data, cfg, args.behavior_map or DEFAULT_BEHAVIOR_MAP, negatives=neg, seed=seed,
                           target=args.target, columns=getattr(args, "columns", None))
        out = {k: v.to_rows() for k, v in out.items()}
    if not (args.data == "synthetic" or args.data.startswith("synthetic:")):
        rng = np.random.default_rng(seed)
        for split, cap in (("train", args.train_requests), ("validation", args.eval_requests),
                           ("test", getattr(args, "test_requests", None) or args.eval_requests)):
            if cap is not None and len(out[split]) > cap:
                out[split] = out[split].take(np.sort(rng.choice(len(out[split]), cap, replace=False)))
    for split, cols in out.items():
        if len(cols) == 0:
            raise TrainError(f"data '{args.data}': the {split} split is empty")
        if cols.labels is None:
            raise TrainError(f"data '{args.data}': the {split} split has no labels")
    return out


def batches(n, size, seed, epoch, rank, world):
    """This rank's request-index batches for an epoch: same shuffle on every rank, equal counts."""
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    chunks = [perm[i:i + size] for i in range(0, n, size)]
    per_rank = len(chunks) // world if world > 1 else len(chunks)
    return chunks[rank::world][:per_rank] if world > 1 else chunks


# ---- model ------------------------------------------------------------------------------------

def build_model(name, cfg):
    if name not in MODELS:
        raise TrainError(f"unknown model '{name}' (choose from {list(MODELS)})")
    if name.startswith("dtrn"):
        from .model import DTRN
        if name == "dtrn-mean":
            return DTRN(dict(cfg, pooling="mean"))
        return DTRN(cfg, variant=None if name == "dtrn" else name[len("dtrn-"):])
    ta = name.endswith("-ta")
    base = name[:-3] if ta else name
    if base == "single-task":
        return SingleTask(cfg, target_attention=ta)
    return Baseline(cfg, base, target_attention=ta)


def build_model_seeded(name, cfg, seed):
    """build_model after seeding torch: a model's initialisation depends only on (name, seed)."""
    torch.manual_seed(seed)
    return build_model(name, cfg)


def loss_fn(logits, labels):
    """Sum over tasks of the mean BCEWithLogits (never BCE on probabilities)."""
    return Fn.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(0).sum()


def _autocast(device, amp):
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return torch.autocast(device_type=device.type, enabled=False)


@torch.no_grad()
def predict(model, cols, cfg, device, rank, world, batch_size=256, amp="off"):
    """(logits [M, K] float32, labels [M, K], groups [M] = request index) over a split; ranks score
    disjoint shares and all-gather the results."""
    was = model.training
    model.eval()
    mine = np.arange(rank, len(cols), world)
    logit_parts, label_parts, group_parts = [], [], []
    for i in range(0, len(mine), batch_size):
        idx = mine[i:i + batch_size]
        b = cols.batch(idx).to(device)
        with _autocast(device, amp):
            lg = model(b)
        logit_parts.append(lg.float())
        label_parts.append(b.labels.float())
        group_parts.append(torch.as_tensor(idx, device=device)[b.cand_req])
    K = len(cfg["tasks"])
    cat = lambda parts, shape, dt: torch.cat(parts) if parts else torch.zeros(shape, dtype=dt, device=device)  # noqa
    logits, labels = cat(logit_parts, (0, K), torch.float32), cat(label_parts, (0, K), torch.float32)
    groups = cat(group_parts, (0,), torch.long)
    if world > 1:
        logits, labels, groups = (_gather(t) for t in (logits, labels, groups))
    model.train(was)
    return logits.cpu().numpy(), labels.cpu().numpy(), groups.cpu().numpy()


def evaluate(model, cols, cfg, device, rank, world, batch_size=256, amp="off"):
    """Per-task metrics on a split."""
    lg, lb, gr = predict(model, cols, cfg, device, rank, world, batch_size, amp)
    return MX.task_metrics(cfg["tasks"], lb, lg, gr)


def _gather(t):
    """all_gather of tensors whose first dimension differs by rank."""
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    m = int(max(s.item() for s in sizes))
    pad = torch.zeros((m - t.shape[0],) + tuple(t.shape[1:]), dtype=t.dtype, device=t.device)
    bufs = [torch.zeros((m,) + tuple(t.shape[1:]), dtype=t.dtype, device=t.device) for _ in sizes]
    dist.all_gather(bufs, torch.cat([t, pad]))
    return torch.cat([b[:int(s.item())] for b, s in zip(bufs, sizes)])


# ---- progress ---------------------------------------------------------------------------------

class Progress:
    """tqdm when installed, else a one-line bar on stderr; silent when disabled."""

    def __init__(self, total, desc, enabled):
        self.total, self.desc, self.n, self.enabled, self.bar = total, desc, 0, enabled, None
        self.last = 0.0
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=True)
            except ImportError:
                pass

    def update_to(self, n, loss):
        """Advance to step n (progress is drawn every few steps: a bar update per step costs time)."""
        if self.bar is not None and self.enabled:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update(n - self.n)
            self.n = n
            return
        self.n = n - 1
        self.update(loss)

    def update(self, loss):
        self.n += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update(1)
            return
        now = time.monotonic()
        if now - self.last >= 0.5 or self.n == self.total:
            self.last = now
            done = int(30 * self.n / max(1, self.total))
            sys.stderr.write(f"\r{self.desc} [{'#' * done}{'.' * (30 - done)}] {self.n}/{self.total} loss {loss:.4f}")
            sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")


def _fmt(per_task):
    return "  ".join(f"{t}: auc {m['auc']:.4f} gauc {m['gauc']:.4f} logloss {m['logloss']:.4f}"
                     for t, m in per_task.items())


# ---- main -------------------------------------------------------------------------------------

def _device(choice, local_rank):
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainError("--device cuda: no CUDA device is available to this PyTorch")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    try:
        device = _device(args.device, local_rank)
        if world > 1:
            backend = ("nccl" if device.type == "cuda" else "gloo") if args.backend == "auto" else args.backend
            if backend == "nccl" and device.type != "cuda":
                raise TrainError("--backend nccl needs CUDA devices (use --device cuda, or gloo on CPU)")
            dist.init_process_group(backend)
        try:
            return _train(args, device, rank, world)
        finally:
            if world > 1:
                dist.destroy_process_group()
    except (ConfigError, RequestError, LogError, StoreError, TrainError, OSError) as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 1


def fit(model, data, cfg, args, device, rank=0, world=1, say=lambda *a: None, seed=0):
    """Train `model` on data["train"], early-stopping on data["validation"]; returns a result dict with
    the history, the test metrics and the test predictions of the best epoch's weights, throughput
    (training requests per second, per process) and, on CUDA, the peak GPU memory.

    A model with `task_modules` (single-task) is K independent models: each task keeps the epoch of its
    own best validation AUC, and training stops when every task has run out of patience."""
    torch.manual_seed(seed)
    model = model.to(device)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    per_task = hasattr(model, "task_modules")
    units = list(model.task_modules) if per_task else [model]
    best = [-math.inf] * len(units)
    best_state, best_epoch, stale = [None] * len(units), [0] * len(units), [0] * len(units)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    history = []
    t_train, train_loop_s, n_trained = time.time(), 0.0, 0
    for epoch in range(1, args.epochs + 1):
        net.train()
        mine = batches(len(data["train"]), args.batch_size, seed, epoch, rank, world)
        if not mine:
            raise TrainError(f"{len(data['train'])} training requests make fewer batches of {args.batch_size} "
                             f"than the {world} processes")
        bar = Progress(len(mine), f"epoch {epoch}/{args.epochs}", rank == 0 and not args.no_progress)
        total, steps = torch.zeros((), device=device), 0
        t_ep = time.time()
        for idx in mine:
            b = data["train"].batch(idx).to(device)
            with _autocast(device, args.amp):
                logits = net(b)
            loss = loss_fn(logits.float(), b.labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps = total + loss.detach(), steps + 1
            n_trained += len(idx)
            if bar.enabled and (steps % 10 == 0 or steps == len(mine)):
                bar.update_to(steps, float(total) / steps)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        ep_s = time.time() - t_ep
        train_loop_s += ep_s
        bar.close()
        val = evaluate(model, data["validation"], cfg, device, rank, world, amp=args.amp)
        score = MX.mean_auc(val)
        train_loss = float(total) / max(1, steps)
        history.append({"epoch": epoch, "train_loss": train_loss, "validation": val, "mean_auc": score,
                        "train_requests_per_s": len(mine) * args.batch_size / ep_s if ep_s > 0 else None,
                        "elapsed_s": time.time() - t_train})
        say(f"epoch {epoch}: train loss {train_loss:.4f}  validation {_fmt(val)}  mean auc {score:.4f}  "
            f"({len(mine) * args.batch_size / max(ep_s, 1e-9):.0f} requests/s)")
        scores = [val[t]["auc"] for t in cfg["tasks"]] if per_task else [score]
        for u, sc in enumerate(scores):
            if stale[u] > args.patience:
                continue  # this task has stopped: its best weights are kept
            if sc > best[u] or best_state[u] is None:
                best[u], best_epoch[u], stale[u] = sc, epoch, 0
                best_state[u] = copy.deepcopy({k: v.detach().cpu() for k, v in units[u].state_dict().items()})
            else:
                stale[u] += 1
        if all(st > args.patience for st in stale):
            say(f"early stop: no better validation AUC for {args.patience + 1} epochs (best: epoch "
                f"{', '.join(map(str, best_epoch))})")
            break
    train_s = time.time() - t_train
    for u, st in zip(units, best_state):
        u.load_state_dict(st)
    lg, lb, gr = predict(model, data["test"], cfg, device, rank, world, amp=args.amp)
    test = MX.task_metrics(cfg["tasks"], lb, lg, gr)
    out = {"epochs_run": len(history), "best_epoch": best_epoch[0] if not per_task else best_epoch,
           "train_s": train_s, "train_loop_s": train_loop_s,
           "train_requests_per_s": n_trained / train_loop_s if train_loop_s > 0 else None,
           "history": history, "test": test, "test_mean_auc": MX.mean_auc(test),
           "test_predictions": (lg, lb, gr), "model": model}
    if device.type == "cuda":
        out["peak_gpu_memory_bytes"] = int(torch.cuda.max_memory_allocated(device))
    return out


def _train(args, device, rank, world):
    lead = rank == 0
    torch.set_num_threads(args.threads)
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if lead else (lambda *a: None)
    cfg = load_config(args.config)
    torch.manual_seed(args.seed)
    t0 = time.time()
    data = load_data(args, cfg)
    data_s = time.time() - t0
    say(f"data: {', '.join(f'{k} {len(v)} requests' for k, v in data.items())} ({data_s:.1f}s); "
        f"model {args.model} on {device}" + (f" x {world} processes" if world > 1 else "")
        + (f", autocast {args.amp}" if args.amp != "off" else ""))
    torch.manual_seed(args.seed)
    model = build_model(args.model, cfg)
    n_params = sum(p.numel() for p in model.parameters())
    r = fit(model, data, cfg, args, device, rank, world, say, seed=args.seed)
    model = r["model"]
    say(f"test (epoch {r['best_epoch']}): {_fmt(r['test'])}  mean auc {r['test_mean_auc']:.4f}")
    say(f"throughput: {r['train_requests_per_s']:.0f} training requests/s per process"
        + (f"; peak GPU memory {r['peak_gpu_memory_bytes'] / 2**20:.1f} MiB" if "peak_gpu_memory_bytes" in r else ""))

    if lead:
        os.makedirs(args.out, exist_ok=True)
        result = {"model": args.model, "config": cfg.get("name", args.config), "data": args.data,
                  "device": str(device), "world_size": world, "seed": args.seed, "amp": args.amp,
                  "parameters": n_params,
                  "requests": {k: len(v) for k, v in data.items()},
                  "candidates": {k: v.num_candidates for k, v in data.items()}, "data_s": data_s}
        result.update({k: v for k, v in r.items() if k not in ("model", "test_predictions")})
        if args.model == "dtrn":
            from .checkpoint import save_checkpoint
            path = os.path.join(args.out, "model.safetensors")
            save_checkpoint(model.cpu(), cfg, path)
            result["checkpoint"] = path
            say(f"checkpoint: {path}")
        from .checkpoint import atomic_write
        atomic_write(os.path.join(args.out, "metrics.json"),
                     (json.dumps(_finite(result), indent=1) + "\n").encode())
    return 0


def _finite(x):
    """NaN (an undefined AUC) -> null, so metrics.json stays strict JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


if __name__ == "__main__":
    sys.exit(main())
