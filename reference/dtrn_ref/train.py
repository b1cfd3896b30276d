"""python3 -m dtrn_ref train: train DTRN or a baseline, validate per epoch, early-stop, test, export.

Single process by default; under torchrun (WORLD_SIZE > 1) it trains with DistributedDataParallel
(gloo on CPU, nccl on CUDA), every rank building the same data and taking its share of each
epoch's batches; rank 0 writes the outputs. Loss: sum over tasks of the mean BCEWithLogits.
Outputs in --out: metrics.json (per-epoch validation and final test metrics per task, timings)
and, for --model dtrn, model.safetensors (the best epoch's weights, config in the metadata).
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
from .baselines import BASELINES, Baseline
from .config import ConfigError, load_config
from .logs import TARGETS, LogError
from .requests_io import RequestError, collate, parse_request

MODELS = ("dtrn",) + BASELINES


class TrainError(ValueError):
    """A usage problem the trainer reports in one line (no device, an empty split)."""


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python3 -m dtrn_ref train", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="model config JSON")
    p.add_argument("--data", required=True, help="'synthetic' or a log file in the UserBehavior layout")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--model", default="dtrn", choices=MODELS)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="data, initialisation and shuffling")
    p.add_argument("--batch-size", type=int, default=64, help="requests per step (per process)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--patience", type=int, default=2,
                   help="epochs without a better mean validation AUC tolerated; the next one stops training")
    p.add_argument("--train-requests", type=int, default=None,
                   help="synthetic: how many (default 4000); log: random subset of the training split")
    p.add_argument("--eval-requests", type=int, default=None,
                   help="synthetic: validation and test size each (default 1000); log: cap on each")
    p.add_argument("--candidates", type=int, default=None,
                   help="candidates per request (synthetic default 20; log: target + 9 negatives)")
    p.add_argument("--behavior-map", default=None, help="log: raw type -> name, e.g. pv=click,cart=cart,buy=purchase,fav=")
    p.add_argument("--target", default="first", choices=TARGETS,
                   help="log: 'first' (each user's first event with an item) or 'task0' (every event of the first task)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads per process (default 1: the ops are small, more threads mostly spin)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    for k in ("epochs", "batch_size", "train_requests", "eval_requests", "candidates", "threads"):
        v = getattr(a, k)
        if v is not None and v < 1:
            p.error(f"--{k.replace('_', '-')} must be at least 1")
    if a.patience < 0 or not (a.lr > 0 and math.isfinite(a.lr)):
        p.error("--patience must be >= 0 and --lr a positive number")
    return a


# ---- data -------------------------------------------------------------------------------------

def load_data(args, cfg):
    """-> {"train", "validation", "test"}: lists of parsed Requests (ids already mapped to rows)."""
    if args.data == "synthetic":
        from .synthetic import generate
        n_tr, n_ev = args.train_requests or 4000, args.eval_requests or 1000
        reqs = generate(cfg, n_tr + 2 * n_ev, seed=args.seed, n_candidates=args.candidates or 20)
        raw = {"train": reqs[:n_tr], "validation": reqs[n_tr:n_tr + n_ev], "test": reqs[n_tr + n_ev:]}
    else:
        from .logs import DEFAULT_BEHAVIOR_MAP, load
        neg = (args.candidates or 10) - 1
        raw = load(args.data, cfg, args.behavior_map or DEFAULT_BEHAVIOR_MAP, negatives=neg, seed=args.seed,
                   target=args.target)
        rng = np.random.default_rng(args.seed)
        for split, cap in (("train", args.train_requests), ("validation", args.eval_requests),
                           ("test", args.eval_requests)):
            if cap is not None and len(raw[split]) > cap:
                keep = np.sort(rng.choice(len(raw[split]), cap, replace=False))
                raw[split] = [raw[split][i] for i in keep]
    for split, reqs in raw.items():
        if not reqs:
            raise TrainError(f"data '{args.data}': the {split} split is empty")
    return {s: [parse_request(r, cfg, source=f"{args.data}:{s}") for r in reqs] for s, reqs in raw.items()}


def batches(n, size, seed, epoch, rank, world):
    """This rank's request-index batches for an epoch: same shuffle on every rank, equal counts."""
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    chunks = [perm[i:i + size] for i in range(0, n, size)]
    per_rank = len(chunks) // world if world > 1 else len(chunks)
    return chunks[rank::world][:per_rank] if world > 1 else chunks


# ---- model ------------------------------------------------------------------------------------

def build_model(name, cfg):
    if name == "dtrn":
        from .model import DTRN
        return DTRN(cfg)
    return Baseline(cfg, name)


def loss_fn(logits, labels):
    """Sum over tasks of the mean BCEWithLogits (never BCE on probabilities)."""
    return Fn.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(0).sum()


@torch.no_grad()
def evaluate(model, reqs, cfg, device, rank, world, batch_size=256):
    """Per-task metrics on a split; ranks score disjoint shares and all-gather the results."""
    model.eval()
    mine = np.arange(rank, len(reqs), world)
    logit_parts, label_parts, group_parts = [], [], []
    for i in range(0, len(mine), batch_size):
        idx = mine[i:i + batch_size]
        b = collate([reqs[j] for j in idx], cfg).to(device)
        logit_parts.append(model(b).float())
        label_parts.append(b.labels.float())
        group_parts.append(torch.as_tensor(idx, device=device)[b.cand_req])
    K = len(cfg["tasks"])
    cat = lambda parts, shape, dt: torch.cat(parts) if parts else torch.zeros(shape, dtype=dt, device=device)
    logits, labels = cat(logit_parts, (0, K), torch.float32), cat(label_parts, (0, K), torch.float32)
    groups = cat(group_parts, (0,), torch.long)
    if world > 1:
        logits, labels, groups = (_gather(t) for t in (logits, labels, groups))
    model.train()
    return MX.task_metrics(cfg["tasks"], labels.cpu().numpy(), logits.cpu().numpy(), groups.cpu().numpy())


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
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        try:
            return _train(args, device, rank, world)
        finally:
            if world > 1:
                dist.destroy_process_group()
    except (ConfigError, RequestError, LogError, TrainError, OSError) as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 1


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
        f"model {args.model} on {device}" + (f" x {world} processes" if world > 1 else ""))

    model = build_model(args.model, cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)

    history, best, best_state, best_epoch, stale = [], -math.inf, None, 0, 0
    t_train = time.time()
    for epoch in range(1, args.epochs + 1):
        net.train()
        mine = batches(len(data["train"]), args.batch_size, args.seed, epoch, rank, world)
        if not mine:
            raise TrainError(f"{len(data['train'])} training requests make fewer batches of {args.batch_size} "
                             f"than the {world} processes")
        bar = Progress(len(mine), f"epoch {epoch}/{args.epochs}", lead and not args.no_progress)
        total, steps = 0.0, 0
        for idx in mine:
            b = collate([data["train"][i] for i in idx], cfg).to(device)
            loss = loss_fn(net(b), b.labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
            bar.update(total / steps)
        bar.close()
        val = evaluate(model, data["validation"], cfg, device, rank, world)
        score = MX.mean_auc(val)
        history.append({"epoch": epoch, "train_loss": total / max(1, steps), "validation": val,
                        "mean_auc": score, "elapsed_s": time.time() - t_train})
        say(f"epoch {epoch}: train loss {total / max(1, steps):.4f}  validation {_fmt(val)}  mean auc {score:.4f}")
        if score > best or best_state is None:
            best, best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        else:
            stale += 1
            if stale > args.patience:
                say(f"early stop: no better mean validation AUC for {stale} epochs (best: epoch {best_epoch})")
                break
    train_s = time.time() - t_train
    model.load_state_dict(best_state)
    test = evaluate(model, data["test"], cfg, device, rank, world)
    say(f"test (epoch {best_epoch}): {_fmt(test)}  mean auc {MX.mean_auc(test):.4f}")

    if lead:
        os.makedirs(args.out, exist_ok=True)
        result = {"model": args.model, "config": cfg.get("name", args.config), "data": args.data,
                  "device": str(device), "world_size": world, "seed": args.seed, "parameters": n_params,
                  "requests": {k: len(v) for k, v in data.items()},
                  "candidates": {k: sum(r.num_candidates for r in v) for k, v in data.items()},
                  "epochs_run": len(history), "best_epoch": best_epoch, "data_s": data_s, "train_s": train_s,
                  "history": history, "test": test, "test_mean_auc": MX.mean_auc(test)}
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
