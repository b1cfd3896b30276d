"""Small configs and request helpers shared by the model-side tests (not a conftest: plain imports)."""
import copy
import os

import numpy as np

from dtrn_ref.config import load_config
from dtrn_ref.requests_cli import make_request

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")

# Tiny but complete: two blocks, a shared table, dense fields in two groups, an un-hashed item table.
TINY = {
    "name": "tiny", "d": 8, "tasks": ["a", "b"], "behaviors": ["x", "y", "z"], "L": 6, "blocks": 2, "heads": 2,
    "d_ff": 12,
    "fields": [
        {"name": "user_id", "group": "user", "kind": "sparse", "vocab": 50, "hashed": True},
        {"name": "profile", "group": "user", "kind": "dense", "width": 3},
        {"name": "hour", "group": "context", "kind": "sparse", "vocab": 24},
        {"name": "item_id", "group": "item", "kind": "sparse", "vocab": 40},
        {"name": "similar", "group": "item", "kind": "sparse", "vocab": 40, "table": "item_id"},
        {"name": "stats", "group": "item", "kind": "dense", "width": 2},
    ],
    "pooling": "target", "mtl": "ple", "experts": {"shared": 2, "per_task": 1, "hidden": [10, 6]}, "towers": [5],
}

HEADS = {
    "towers": {"mtl": "towers", "experts": None, "towers": [7, 4]},
    "mmoe": {"mtl": "mmoe", "experts": {"shared": 3, "hidden": [9]}, "towers": [4]},
    "ple": {"mtl": "ple", "experts": {"shared": 2, "per_task": 1, "hidden": [10, 6]}, "towers": [5]},
}


def tiny(**over):
    """TINY with top-level overrides (value None deletes the key), validated."""
    raw = copy.deepcopy(TINY)
    for k, v in over.items():
        if v is None:
            raw.pop(k, None)
        else:
            raw[k] = v
    return load_config(raw)


def config(name):
    return load_config(os.path.join(CONFIGS, f"{name}.json"))


def requests(cfg, count, seed=0, candidates=4, labels=False):
    """Random valid request dicts; request 1 has every sequence empty (make_request's rule)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        n = candidates if isinstance(candidates, int) else candidates[i % len(candidates)]
        out.append(make_request(rng, cfg, i, n, labels))
    return out
