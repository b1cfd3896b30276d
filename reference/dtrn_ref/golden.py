"""`golden`: score requests with a checkpoint (the float oracle); `init`: export a randomised checkpoint."""
import argparse
import sys
import time

import torch
from safetensors.torch import save as st_save

from .checkpoint import CheckpointError, atomic_write, load_checkpoint, save_checkpoint
from .config import ConfigError, load_config
from .model import DTRN, fold_hypernetwork, randomize_for_tests
from .requests_io import RequestError, collate, iter_requests, write_scores

# A chunk holds at most this many candidates (or requests): memory stays bounded on big files.
CHUNK_CANDIDATES = 4096
CHUNK_REQUESTS = 256


def score(model, requests, cfg):
    """Requests -> (ids, probs, logits, weights), per-request lists, in the model's dtype."""
    ids, probs, logits, weights = [], [], [], []
    with torch.no_grad():
        lg = model(collate(requests, cfg))
        for r, lr in zip(requests, torch.split(lg, [r.num_candidates for r in requests])):
            ids.append(r.id)
            logits.append(lr)
            probs.append(torch.sigmoid(lr))
            weights.append(r.weights)
    return ids, probs, logits, weights


def _chunks(reqs):
    chunk, n = [], 0
    for r in reqs:
        if chunk and (n + r.num_candidates > CHUNK_CANDIDATES or len(chunk) >= CHUNK_REQUESTS):
            yield chunk
            chunk, n = [], 0
        chunk.append(r)
        n += r.num_candidates
    if chunk:
        yield chunk


def main(argv=None):
    ap = argparse.ArgumentParser(prog="dtrn_ref golden",
                                 description="Score every request of a JSON Lines file with a checkpoint and write "
                                             "the scores file (docs/request-format.md): the oracle for parity tests.")
    ap.add_argument("--checkpoint", required=True, help="safetensors checkpoint with dtrn_config metadata")
    ap.add_argument("--requests", required=True, help="requests, JSON Lines")
    ap.add_argument("--out", required=True, help="scores file to write, JSON Lines")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                    help="arithmetic of the reference (default float64: the most accurate oracle)")
    args = ap.parse_args(argv)
    t0 = time.time()
    try:
        model, cfg = load_checkpoint(args.checkpoint)
        model = model.to(torch.float64 if args.dtype == "float64" else torch.float32)
        out = ([], [], [], [])
        n_req = 0
        for chunk in _chunks(iter_requests(args.requests, cfg)):
            for acc, part in zip(out, score(model, chunk, cfg)):
                acc.extend(part)
            n_req += len(chunk)
            print(f"golden: {n_req} requests scored", file=sys.stderr)
        if n_req == 0:
            raise RequestError(f"{args.requests}: no requests")
        write_scores(args.out, *out)
    except (CheckpointError, ConfigError, RequestError) as e:
        print(f"golden: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"golden: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"golden: wrote {n_req} requests to {args.out} ({args.dtype}, {time.time() - t0:.1f} s)", file=sys.stderr)
    return 0


def init_main(argv=None):
    ap = argparse.ArgumentParser(prog="dtrn_ref init",
                                 description="Export a checkpoint for a config with randomised, non-trivial weights "
                                             "(hypernetwork, TRM and positions included) for parity tests.")
    ap.add_argument("--config", required=True, help="model config JSON")
    ap.add_argument("--out", required=True, help="checkpoint to write (.safetensors)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--cln-out", help="also write the folded hypernetwork: safetensors with one F32 tensor 'cln' "
                                      "[K, B, n_ln, 2, d] = (gamma, beta) per (task, behaviour, LayerNorm)")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
        model = randomize_for_tests(DTRN(cfg), args.seed)
        save_checkpoint(model, cfg, args.out)
        if args.cln_out:
            cln = fold_hypernetwork(model, torch.float64).to(torch.float32).contiguous()
            atomic_write(args.cln_out, st_save({"cln": cln}, metadata={"layout": "K,B,n_ln,(gamma,beta),d"}))
    except (ConfigError, CheckpointError) as e:
        print(f"init: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"init: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"init: wrote {args.out}", file=sys.stderr)
    return 0
