"""`requests`: write requests for a config.

Without --log: random but valid requests (parity tests, benchmarks), deterministic by seed. No
planted structure (that is synthetic.py's job): the point is variety that exercises every input
path: empty and over-long sequences, ids over the whole int64 range for hashed tables, candidates
that also occur in the history, per-request ranking weights; with seq_fields, sequences in the
object form with each event's side ids.

With --log: the labelled requests dtrn_ref.logs builds from an interaction log (column mapping,
behaviour map, targets, time split), written to --out as a folder: train/, validation/, test/
(the binary request stores the trainer memory-maps: `train --data FOLDER`) and JSON Lines files of
the splits named by --jsonl (default validation,test; for calibration and goldens).
"""
import argparse
import json
import os
import sys

import numpy as np

from .config import ConfigError, fields, item_table, load_config, seq_field_defs, tables

# Default candidates per request: the spec's workload table (N), by config name.
WORKLOAD_N = {"small": 50, "standard": 100, "large": 500}


def _sparse_id(rng, f):
    if f["hashed"]:
        r = rng.random()
        if r < 0.05:  # the extremes of int64 and small values near zero
            return int(rng.choice([-(1 << 63), (1 << 63) - 1, -1, 0, 1]))
        return int(rng.integers(-(1 << 63), (1 << 63) - 1, dtype=np.int64, endpoint=True))
    return int(rng.integers(0, f["vocab"]))


def _dense(rng, w):
    scale = float(rng.choice([0.1, 1.0, 3.0]))
    return [round(float(x), 6) for x in rng.normal(0.0, scale, size=w)]


def _seq_len(rng, L):
    r = rng.random()
    if r < 0.15:
        return 0
    if r < 0.25:
        return int(rng.integers(L + 1, 2 * L + 1))  # longer than L: the reader keeps the most recent L
    return int(rng.integers(1, L + 1))


def make_request(rng, cfg, i, n_candidates, labels):
    K, L = len(cfg["tasks"]), cfg["L"]
    item = fields(cfg, "item")
    itab = tables(cfg)[item_table(cfg)]
    item_id_field = item[0]
    sides = seq_field_defs(cfg)

    def group(g):
        return {f["name"]: (_sparse_id(rng, f) if f["kind"] == "sparse" else _dense(rng, f["width"]))
                for f in fields(cfg, g)}

    # A pool of item ids shared by history and candidates, so target attention sees matches.
    pool = [_sparse_id(rng, item_id_field) for _ in range(max(8, n_candidates // 2))]
    behaviors = {}
    for b in cfg["behaviors"]:
        n = 0 if i == 1 else _seq_len(rng, L)  # request 1 has every sequence empty
        seq = [pool[int(rng.integers(len(pool)))] if rng.random() < 0.3 else _sparse_id(rng, item_id_field)
               for _ in range(n)]
        if not itab["hashed"] and n > L:  # ids that are dropped by truncation may be anything
            seq[0] = -1 - int(rng.integers(1000))
        if sides:  # the object form: every event also carries its seq_fields ids
            ev = {"item_id": seq}
            for f in sides:
                vals = [_sparse_id(rng, f) for _ in range(n)]
                if not f["hashed"] and n > L:  # dropped by truncation: out of range is fine
                    vals[0] = f["vocab"] + int(rng.integers(1000))
                ev[f["name"]] = vals
            behaviors[b] = ev
        else:
            behaviors[b] = seq
    cands = []
    for _ in range(n_candidates):
        c = {f["name"]: (_sparse_id(rng, f) if f["kind"] == "sparse" else _dense(rng, f["width"])) for f in item}
        if rng.random() < 0.3:
            c["item_id"] = pool[int(rng.integers(len(pool)))]
        cands.append(c)
    req = {"id": f"r{i}", "user": group("user"), "context": group("context"), "behaviors": behaviors,
           "candidates": cands}
    if labels:
        req["labels"] = rng.integers(0, 2, size=(n_candidates, K)).tolist()
    if rng.random() < 0.5:
        req["weights"] = [round(float(w), 3) for w in rng.uniform(0.0, 3.0, size=K)]
    return req


def generate(cfg, count, seed=0, candidates=None, labels=False):
    """Yield `count` request dicts."""
    rng = np.random.default_rng(seed)
    n = candidates or WORKLOAD_N.get(cfg.get("name"), 50)
    for i in range(count):
        yield make_request(rng, cfg, i, n, labels)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="dtrn_ref requests",
                                 description="Write requests for a config: random valid ones as JSON Lines "
                                             "(docs/request-format.md), deterministic by seed; or, with --log, the "
                                             "labelled requests built from an interaction log (stores + JSON Lines).")
    ap.add_argument("--config", required=True, help="model config JSON")
    ap.add_argument("--out", required=True, help="JSON Lines file to write (with --log: a folder)")
    ap.add_argument("--count", type=int, help="number of random requests (without --log)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--candidates", type=int, default=None,
                    help="candidates per request (default: the workload's N: small 50, standard 100, "
                         "large 500; otherwise 50; with --log: target + 9 negatives)")
    ap.add_argument("--labels", action="store_true", help="add random 0/1 labels per candidate and task")
    lg = ap.add_argument_group("from a log")
    lg.add_argument("--log", help="interaction log (CSV) to build requests from")
    lg.add_argument("--behavior-map", default=None, help="raw type -> names (default pv=click,cart=cart,buy=purchase,"
                                                         "fav=; NAME+NAME feeds several names)")
    lg.add_argument("--columns", default=None, help="column mapping (default user=user_id,item=item_id,"
                                                    "behavior=behavior_type,time=timestamp,category=category_id)")
    lg.add_argument("--names", default=None, help="the log's column names in order, when it has no header "
                                                  "(default user_id,item_id,category_id,behavior_type,timestamp)")
    lg.add_argument("--header", action="store_true", help="the log's first line names its columns")
    lg.add_argument("--target", default="first", help="'first' or 'task0' (see dtrn_ref.logs)")
    lg.add_argument("--jsonl", default="validation,test",
                    help="splits also written as JSON Lines (comma-separated; '' for none; default validation,test)")
    lg.add_argument("--max-jsonl", type=int, default=None, help="at most this many requests per JSON Lines file")
    lg.add_argument("--chunk", type=int, default=200_000,
                    help="targets built at a time (memory: one shard's events plus one chunk; default 200000)")
    lg.add_argument("--shards", type=int, default=0,
                    help="user shards the build goes through one at a time (memory: one shard; default one per "
                         "2,000,000 events); the requests are the same whatever the count, in time order "
                         "within a shard")
    args = ap.parse_args(argv)
    if args.candidates is not None and args.candidates < 1:
        ap.error("--candidates must be at least 1")
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"requests: error: {e}", file=sys.stderr)
        return 2
    if args.log:
        return _from_log(args, cfg)
    if args.count is None or args.count < 1:
        ap.error("--count must be at least 1 (or give --log)")
    tmp = f"{args.out}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for i, r in enumerate(generate(cfg, args.count, args.seed, args.candidates, args.labels), 1):
                fh.write(json.dumps(r, separators=(",", ":")) + "\n")
                if i % 1000 == 0:
                    print(f"requests: {i}/{args.count}", file=sys.stderr)
        os.replace(tmp, args.out)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        print(f"requests: error: {e.filename or args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"requests: wrote {args.count} requests to {args.out}", file=sys.stderr)
    return 0


def _from_log(args, cfg):
    import time

    from .logs import DEFAULT_BEHAVIOR_MAP, LogError, build_store_from_log
    from .store import StoreError
    t0 = time.time()
    say = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    if args.chunk < 1 or args.shards < 0:
        say("requests: error: --chunk must be at least 1 and --shards at least 0")
        return 2
    try:
        neg = (args.candidates or 10) - 1
        counts = build_store_from_log(args.log, cfg, args.out, args.behavior_map or DEFAULT_BEHAVIOR_MAP,
                                      args.columns, args.names, args.header, negatives=neg, seed=args.seed,
                                      target=args.target, chunk=args.chunk, shards=args.shards,
                                      jsonl=[x.strip() for x in args.jsonl.split(",") if x.strip()],
                                      max_jsonl=args.max_jsonl, progress=lambda m: say(f"requests: {m}"))
        say("requests: wrote " + ", ".join(f"{s} {n}" for s, n in counts.items()) + f" requests to {args.out} "
            f"(stores {{train,validation,test}}/, JSON Lines: {args.jsonl or 'none'}) in {time.time() - t0:.1f} s")
    except (LogError, StoreError) as e:
        print(f"requests: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"requests: error: {e.filename or args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 0
