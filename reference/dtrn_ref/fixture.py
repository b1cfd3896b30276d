"""`fixture`: a trained checkpoint with requests and float64 goldens in one folder, for parity tests.

    python3 -m dtrn_ref fixture --config configs/small-seq.json --out DIR [--epochs 1] [--seed 0]

Trains the config with the ordinary trainer (`train`, synthetic data: the positive-transfer world,
--train-requests requests, --epochs epochs, CPU, one thread) and writes into DIR:
  model.safetensors   the trained checkpoint (dtrn_config metadata, seq_fields included)
  requests.jsonl      --count held-out labelled requests from the same synthetic world (AUC-able)
  golden.jsonl        the reference's float64 scores of requests.jsonl
  edge.jsonl          --count random requests that exercise every input path (empty and over-long
                      sequences, extreme hashed ids, weights; `requests` without --log)
  edge-golden.jsonl   their float64 scores
Deterministic by seed. Exit 0 on success, 2 on a usage or data error.
"""
import argparse
import json
import os
import sys
import tempfile

from .config import ConfigError, load_config


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m dtrn_ref fixture", description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="model config JSON")
    ap.add_argument("--out", required=True, help="folder to write (created)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-requests", type=int, default=2000)
    ap.add_argument("--count", type=int, default=40, help="requests per file (default 40)")
    ap.add_argument("--candidates", type=int, default=None, help="candidates per request (default the workload's N)")
    args = ap.parse_args(argv)
    if min(args.epochs, args.train_requests, args.count) < 1:
        ap.error("--epochs, --train-requests and --count must be at least 1")
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"fixture: error: {e}", file=sys.stderr)
        return 2
    from . import golden, requests_cli, train
    from .synthetic import generate
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rc = train.main(["--config", args.config, "--data", "synthetic", "--out", tmp, "--epochs", str(args.epochs),
                         "--seed", str(args.seed), "--train-requests", str(args.train_requests),
                         "--eval-requests", "200", "--device", "cpu", "--no-progress"])
        if rc != 0:
            return 2
        os.replace(os.path.join(tmp, "model.safetensors"), os.path.join(args.out, "model.safetensors"))
    n = args.candidates or requests_cli.WORKLOAD_N.get(cfg.get("name"), 50)
    reqs = generate(cfg, args.count, seed=args.seed + 1_000_003, n_candidates=n)
    path = os.path.join(args.out, "requests.jsonl")
    with open(path, "w", encoding="utf-8") as fh:
        for r in reqs:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    if requests_cli.main(["--config", args.config, "--count", str(args.count), "--seed", str(args.seed),
                          "--out", os.path.join(args.out, "edge.jsonl")] +
                         (["--candidates", str(args.candidates)] if args.candidates else [])) != 0:
        return 2
    ckpt = os.path.join(args.out, "model.safetensors")
    for req, gold in (("requests.jsonl", "golden.jsonl"), ("edge.jsonl", "edge-golden.jsonl")):
        if golden.main(["--checkpoint", ckpt, "--requests", os.path.join(args.out, req),
                        "--out", os.path.join(args.out, gold)]) != 0:
            return 2
    print(f"fixture: wrote {args.out}/{{model.safetensors,requests.jsonl,golden.jsonl,edge.jsonl,edge-golden.jsonl}}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
