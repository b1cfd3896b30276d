"""Requests from interaction logs in the UserBehavior layout (user_id,item_id,category_id,behavior_type,timestamp).

A behaviour map names what each raw type means, e.g. "pv=click,cart=cart,buy=purchase,fav=":
a mapped name feeds the behaviour sequence of that name and/or the label of the task of that
name; an empty name drops the type; a type missing from the map is an error naming the line.

Targets: with target="first" (default) each user's first event with an item, of any task's type
(an engagement: the item's first click, or its first cart when no click came before); with
target="task0" every event of the config's first task (each click, repeats included). Each
target becomes one request, in time order:
- sequences: the user's events strictly before the target's timestamp, per behaviour type, the
  most recent L (events in the same second are not "before": their order is unknown);
- candidates: the target item and `negatives` items drawn from the log's events strictly before
  the target (so by popularity as of then; never the target item), in random order; targets in
  the log's first second are warm-up and make no request;
- labels: task k is 1 for a candidate when the user has an event of task k with that item at or
  after the target's timestamp (the target itself counts for its own task);
- split by the target's timestamp: the first `fractions[0]` of targets train, the next
  `fractions[1]` validate, the rest test; a timestamp never straddles two splits.
Fields the loader fills: user.user_id (raw id), context.hour (hour of day, UTC+8 as Taobao's
logs are Beijing time), item.item_id and item.category (raw ids). Other fields are an error.
"""
import bisect
import os
import re
from collections import defaultdict

import numpy as np

from . import config as C

DEFAULT_BEHAVIOR_MAP = "pv=click,cart=cart,buy=purchase,fav="
LOG_FIELDS = {("user", "user_id"), ("context", "hour"), ("item", "item_id"), ("item", "category")}
_INT = re.compile(r"-?[0-9]+\Z")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


class LogError(ValueError):
    """A malformed log, behaviour map or log/config mismatch; the message names the line or key."""


def parse_behavior_map(text):
    """"pv=click,buy=purchase,fav=" -> {"pv": "click", "buy": "purchase", "fav": None}."""
    out = {}
    for part in text.split(","):
        raw, eq, name = part.partition("=")
        raw, name = raw.strip(), name.strip()
        if not eq or not raw:
            raise LogError(f"behavior map: '{part}' is not TYPE=NAME (NAME may be empty to ignore TYPE)")
        if raw in out:
            raise LogError(f"behavior map: type '{raw}' appears twice")
        out[raw] = name or None
    return out


class Events:
    """Parsed log: parallel numpy arrays; `kind` indexes `names` (the mapped names)."""

    def __init__(self, user, item, cat, kind, ts, line, names, source):
        self.user, self.item, self.cat, self.kind, self.ts, self.line = user, item, cat, kind, ts, line
        self.names, self.source = names, source

    def __len__(self):
        return len(self.ts)


def _int(tok, what, where):
    if not _INT.match(tok):
        raise LogError(f"{where}: {what} '{tok}' is not an integer")
    v = int(tok)
    if not INT64_MIN <= v <= INT64_MAX:
        raise LogError(f"{where}: {what} {v} does not fit in int64")
    return v


def read_log(path, behavior_map=DEFAULT_BEHAVIOR_MAP):
    """Parse a log file; every row is checked, ignored types included. -> Events."""
    bmap = parse_behavior_map(behavior_map) if isinstance(behavior_map, str) else dict(behavior_map)
    names = sorted({n for n in bmap.values() if n})
    index = {n: i for i, n in enumerate(names)}
    cols = [[], [], [], [], [], []]
    source = os.fspath(path)
    with open(source, encoding="utf-8") as fh:
        for lineno, text in enumerate(fh, 1):
            where = f"{source} line {lineno}"
            parts = text.rstrip("\r\n").split(",")
            if len(parts) != 5:
                raise LogError(f"{where}: expected 5 comma-separated columns "
                               f"(user_id,item_id,category_id,behavior_type,timestamp), got {len(parts)}")
            btype = parts[3].strip()
            if btype not in bmap:
                raise LogError(f"{where}: behavior type '{btype}' is not in the behavior map "
                               f"(known: {sorted(bmap)}; map it to a name, or to nothing to ignore it)")
            u = _int(parts[0].strip(), "user_id", where)
            it = _int(parts[1].strip(), "item_id", where)
            c = _int(parts[2].strip(), "category_id", where)
            t = _int(parts[4].strip(), "timestamp", where)
            if bmap[btype] is None:
                continue
            for col, v in zip(cols, (u, it, c, index[bmap[btype]], t, lineno)):
                col.append(v)
    arr = [np.asarray(c, dtype=np.int64) for c in cols]
    return Events(*arr, names=names, source=source)


def _check_config(cfg, ev):
    for f in cfg["fields"]:
        if (f["group"], f["name"]) not in LOG_FIELDS or f["kind"] != "sparse":
            raise LogError(f"config field '{f['name']}' ({f['group']}, {f['kind']}): a log provides only the "
                           f"sparse fields user.user_id, context.hour, item.item_id and item.category")
        if f["name"] == "hour" and not f["hashed"] and f["vocab"] < 24:
            raise LogError(f"config field 'hour': vocab {f['vocab']} < 24 hours")
    used = set(cfg["tasks"]) | set(cfg["behaviors"])
    for n in ev.names:
        if n not in used:
            raise LogError(f"behavior map: name '{n}' is neither a task {cfg['tasks']} nor a behaviour "
                           f"{cfg['behaviors']} of the config")
    for what, names in (("task", cfg["tasks"]), ("behaviour", cfg["behaviors"])):
        for n in names:
            if n not in ev.names:
                raise LogError(f"behavior map: no log type maps to the config's {what} '{n}' "
                               f"(mapped names: {ev.names})")


TARGETS = ("first", "task0")


def _targets(ev, task_kinds, mode):
    """Indices of target events in time order."""
    if mode == "task0":
        tgt = np.flatnonzero(ev.kind == task_kinds[0])
    elif mode == "first":
        cand = np.flatnonzero(np.isin(ev.kind, task_kinds))
        o = cand[np.lexsort((ev.line[cand], ev.ts[cand], ev.item[cand], ev.user[cand]))]
        first = np.ones(len(o), dtype=bool)
        first[1:] = (ev.user[o][1:] != ev.user[o][:-1]) | (ev.item[o][1:] != ev.item[o][:-1])
        tgt = o[first]
    else:
        raise LogError(f"target mode '{mode}': expected one of {list(TARGETS)}")
    return tgt[np.lexsort((ev.line[tgt], ev.ts[tgt]))]


def build_requests(ev, cfg, negatives=9, seed=0, fractions=(0.8, 0.1), target="first"):
    """Events -> {"train": [...], "validation": [...], "test": [...]} lists of labelled request dicts."""
    cfg = C.load_config(cfg)
    _check_config(cfg, ev)
    if len(ev) == 0:
        raise LogError(f"{ev.source}: no events after applying the behavior map")
    if negatives < 0:
        raise LogError(f"negatives must be >= 0, got {negatives}")
    rng = np.random.default_rng([seed, 0x10C5])
    L = cfg["L"]
    kind_of = {n: i for i, n in enumerate(ev.names)}
    beh_kind = [kind_of[b] for b in cfg["behaviors"]]
    task_kind = [kind_of[t] for t in cfg["tasks"]]
    first_cat = {}
    for it, c in zip(ev.item.tolist(), ev.cat.tolist()):
        first_cat.setdefault(it, c)

    # Events by (user, kind), time-ordered (file order breaks ties): sequences are slices.
    order = np.lexsort((ev.line, ev.ts, ev.kind, ev.user))
    u_s, k_s, t_s, i_s = (a[order].tolist() for a in (ev.user, ev.kind, ev.ts, ev.item))
    slices = {}
    for pos, key in enumerate(zip(u_s, k_s)):
        a = slices.get(key)
        slices[key] = (pos, pos + 1) if a is None else (a[0], pos + 1)
    # Per user: item -> last time of each task kind; label = that time >= the target's time.
    K = len(task_kind)
    task_pos = {k: j for j, k in enumerate(task_kind)}
    last = defaultdict(dict)
    for u, it, k, t in zip(u_s, i_s, k_s, t_s):
        if k in task_pos:
            row = last[u].setdefault(it, [None] * K)
            row[task_pos[k]] = t  # time-sorted within (user, kind): the final write is the latest

    tgt = _targets(ev, task_kind, target)
    tgt = tgt[ev.ts[tgt] > ev.ts.min()]  # the log's first second is warm-up: nothing earlier to sample
    n = len(tgt)
    if n == 0:
        raise LogError(f"{ev.source}: no target events after the log's first second")
    ts_t = ev.ts[tgt]
    cut = [0]
    for fr in np.cumsum(fractions):
        j = int(round(fr * n))
        j = int(np.searchsorted(ts_t, ts_t[j - 1], side="right")) if 0 < j < n else j  # keep a second whole
        cut.append(max(cut[-1], j))
    cut.append(n)
    split_of = np.searchsorted(np.asarray(cut[1:]), np.arange(n), side="right").tolist()

    # Negatives come from the events strictly before the target (popularity as of then): drawing
    # from the whole log would make items that only appear later look like negatives in training.
    by_time = np.lexsort((ev.line, ev.ts))
    pool_items, pool_ts = ev.item[by_time], ev.ts[by_time]
    pool_end = np.searchsorted(pool_ts, ts_t, side="left")[:, None]
    tgt_items = ev.item[tgt][:, None]
    neg = pool_items[(rng.random((n, negatives)) * pool_end).astype(np.int64)]
    bad = neg == tgt_items
    for _ in range(100):  # a negative is never the target item itself
        if not bad.any():
            break
        rows = np.nonzero(bad)[0]
        neg[bad] = pool_items[(rng.random(len(rows)) * pool_end[rows, 0]).astype(np.int64)]
        bad = neg == tgt_items
    cand = np.concatenate([tgt_items, neg], axis=1)
    keep = np.concatenate([np.ones((n, 1), dtype=bool), ~bad], axis=1)  # a pool of only the target: fewer negatives
    order = rng.permuted(np.tile(np.arange(negatives + 1), (n, 1)), axis=1)
    cand, keep = np.take_along_axis(cand, order, axis=1), np.take_along_axis(keep, order, axis=1)

    has = {g: [f["name"] for f in C.fields(cfg, g)] for g in ("user", "context", "item")}
    with_cat = "category" in has["item"]
    no_labels = [0] * K
    out = {"train": [], "validation": [], "test": []}
    split_names = list(out)
    for j, (e, items, ok) in enumerate(zip(tgt.tolist(), cand.tolist(), keep.tolist())):
        u, t = int(ev.user[e]), int(ev.ts[e])
        items = [it for it, k in zip(items, ok) if k]
        behaviors = {}
        for b, k in zip(cfg["behaviors"], beh_kind):
            a, z = slices.get((u, k), (0, 0))
            stop = bisect.bisect_left(t_s, t, a, z)  # strictly earlier seconds only
            behaviors[b] = i_s[max(a, stop - L):stop]
        mine = last.get(u, {})
        labels = []
        for it in items:
            row = mine.get(it)
            labels.append(no_labels.copy() if row is None else [int(x is not None and x >= t) for x in row])
        vals = {"user_id": u, "hour": (t // 3600 + 8) % 24}
        req = {"id": f"{u}-{t}-{int(ev.line[e])}",
               "user": {f: vals[f] for f in has["user"]},
               "context": {f: vals[f] for f in has["context"]},
               "behaviors": behaviors,
               "candidates": [{"item_id": it, "category": first_cat[it]} if with_cat else {"item_id": it}
                              for it in items],
               "labels": labels}
        out[split_names[split_of[j]]].append(req)
    return out


def load(path, cfg, behavior_map=DEFAULT_BEHAVIOR_MAP, negatives=9, seed=0, fractions=(0.8, 0.1), target="first"):
    """read_log + build_requests."""
    return build_requests(read_log(path, behavior_map), cfg, negatives, seed, fractions, target)
