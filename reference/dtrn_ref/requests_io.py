"""Requests and scores as JSON Lines (docs/request-format.md), and their batching into tensors.

parse_request checks one request against a config and maps every id to its embedding row;
collate stacks parsed requests into a Batch the model consumes. Errors name line, request, field.
"""
import json
import math
import os
from dataclasses import dataclass
from dataclasses import fields as dc_fields
from typing import Dict, List, Optional

import numpy as np
import torch

from .config import fields as cfg_fields
from .config import item_table, loads_strict, seq_field_defs, tables
from .hashing import INT64_MAX, INT64_MIN, IdError, id_to_row, ids_to_rows

REQUEST_KEYS = ("id", "user", "context", "behaviors", "candidates", "labels", "weights")


class RequestError(ValueError):
    """A request that does not match the format or the config; the message says where."""


@dataclass
class Request:
    """One validated request; ids already mapped to table rows."""
    id: str
    sparse: Dict[str, int]               # user/context sparse field -> row
    dense: Dict[str, np.ndarray]         # user/context dense field -> float32 [w]
    seqs: List[np.ndarray]               # per behaviour type (config order): int64 rows, oldest first, len <= L
    cand_sparse: Dict[str, np.ndarray]   # item sparse field -> int64 rows [N]
    cand_dense: Dict[str, np.ndarray]    # item dense field -> float32 [N, w]
    labels: Optional[np.ndarray]         # float32 [N, K] or None
    weights: np.ndarray                  # float64 [K] (values that are finite in float32)
    seq_side: Optional[List[Dict[str, np.ndarray]]] = None  # per behaviour: seq field -> rows (same length)

    @property
    def num_candidates(self):
        return len(next(iter(self.cand_sparse.values())))


@dataclass
class Batch:
    """R requests, M candidates (all requests' candidates, in request order)."""
    req_sparse: Dict[str, torch.Tensor]   # field -> long [R]
    req_dense: Dict[str, torch.Tensor]    # field -> float [R, w]
    seq: torch.Tensor                     # long [R, B, L], item-table rows, left-aligned oldest first, pad 0
    seq_len: torch.Tensor                 # long [R, B]
    cand_sparse: Dict[str, torch.Tensor]  # field -> long [M]
    cand_dense: Dict[str, torch.Tensor]   # field -> float [M, w]
    cand_req: torch.Tensor                # long [M]: request index of each candidate
    labels: Optional[torch.Tensor]        # float [M, K] or None
    weights: torch.Tensor                 # float [R, K]
    seq_side: Optional[Dict[str, torch.Tensor]] = None  # seq field -> long [R, B, L] rows, laid out as seq

    @property
    def num_requests(self):
        return self.seq.shape[0]

    @property
    def num_candidates(self):
        return self.cand_req.shape[0]

    def to(self, device):
        def mv(v):
            if isinstance(v, dict):
                return {k: t.to(device) for k, t in v.items()}
            return None if v is None else v.to(device, non_blocking=True)
        return Batch(**{f.name: mv(getattr(self, f.name)) for f in dc_fields(self)})


# ---- parsing ----------------------------------------------------------------------------------

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


FLOAT32_MAX = float(np.finfo(np.float32).max)
UINT64_MAX = (1 << 64) - 1


def _finite32(v):
    """A JSON number that is finite once read as float32 (the runtime's type). Integers with hundreds of
    digits and doubles beyond float32 (1e39) are not; values that round to float32's largest are."""
    if not _is_num(v):
        return False
    try:
        x = float(v)
    except OverflowError:  # an integer literal too large for a double
        return False
    if not math.isfinite(x):
        return False
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.float32(x)))


class _Ctx:
    """Where we are, for error messages: source, line, request id."""

    def __init__(self, source, line):
        self.source, self.line, self.rid = source, line, None

    def err(self, field, msg):
        where = []
        if self.source is not None or self.line is not None:
            where.append(f"{self.source or '<requests>'}" + (f" line {self.line}" if self.line is not None else ""))
        where.append(f"request {json.dumps(self.rid) if self.rid is not None else '(no id)'}")
        if field:
            where.append(f"field '{field}'")
        return RequestError(": ".join(where) + ": " + msg)


def _int64(v, ctx, field):
    if not _is_int(v):
        raise ctx.err(field, f"expected a JSON integer id, got {_show(v)}")
    if not INT64_MIN <= v <= INT64_MAX:
        raise ctx.err(field, f"id {_show(v)} does not fit in int64 [-2^63, 2^63)")
    return v


def _row(v, f, ctx, field):
    """JSON id of sparse field f -> table row."""
    try:
        return id_to_row(_int64(v, ctx, field), f["vocab"], f["hashed"], "id")
    except IdError as e:
        raise ctx.err(field, str(e)) from None


def _show(x):
    """A value for an error message, short (nested garbage can be large)."""
    try:
        t = json.dumps(x)
    except (ValueError, RecursionError):
        t = repr(type(x).__name__)
    return t if len(t) <= 60 else t[:57] + "..."


def _big(x):
    """A number too large for float32, for a message (a literal like 1e400 arrives here as inf)."""
    if isinstance(x, float) and not math.isfinite(x):
        return "a number that overflows double (such as 1e400)"
    return _show(x)


def _dense(v, width, ctx, field):
    if not isinstance(v, list) or len(v) != width:
        got = f"{len(v)} values" if isinstance(v, list) else _show(v)
        raise ctx.err(field, f"expected an array of exactly {width} numbers, got {got}")
    for i, x in enumerate(v):
        if not _is_num(x):
            raise ctx.err(f"{field}[{i}]", f"expected a finite number, got {_show(x)}")
        if not _finite32(x):
            raise ctx.err(f"{field}[{i}]", f"{_big(x)} is not a finite float32 (|x| <= {FLOAT32_MAX:.8g})")
    with np.errstate(over="ignore"):
        return np.asarray([float(x) for x in v], dtype=np.float64).astype(np.float32)


def _group(obj, group, cfg, ctx):
    """Validate the keys of a request's user/context object; return it."""
    if not isinstance(obj, dict):
        raise ctx.err(group, "expected an object")
    names = [f["name"] for f in cfg_fields(cfg, group)]
    for k in obj:
        if k not in names:
            raise ctx.err(f"{group}.{k}", f"unknown field (the config's {group} fields: {names})")
    for n in names:
        if n not in obj:
            raise ctx.err(f"{group}.{n}", "missing")
    return obj


def _id_list(s, L, field, table, ctx, where):
    """A behaviour's ids of one field: every entry a JSON integer in int64; the most recent L kept, and
    only those hashed or range-checked by `table`."""
    if not isinstance(s, list):
        raise ctx.err(where, f"expected an array of {field} ids, got {_show(s)}")
    for j, v in enumerate(s):
        _int64(v, ctx, f"{where}[{j}]")
    drop = max(0, len(s) - L)
    try:
        return ids_to_rows(np.asarray(s[drop:], dtype=np.int64), table["vocab"], table["hashed"], "ids")
    except IdError as e:
        raise ctx.err(f"{where}[{e.index + drop}]",
                      f"id {e.value} is outside [0, {table['vocab']}) of the un-hashed table of '{field}'") from None


def _sequences(beh, cfg, ctx):
    """behaviors object -> (item rows per behaviour, per behaviour {seq field: rows} or None)."""
    if not isinstance(beh, dict):
        raise ctx.err("behaviors", "expected an object of behaviour type -> sequence")
    for k in beh:
        if k not in cfg["behaviors"]:
            raise ctx.err(f"behaviors.{k}", f"unknown behaviour type (the config's: {cfg['behaviors']})")
    L, tabs = cfg["L"], tables(cfg)
    itab = tabs[item_table(cfg)]
    sides = seq_field_defs(cfg)
    keys = ["item_id"] + [f["name"] for f in sides]
    seqs, side = [], ([] if sides else None)
    for b in cfg["behaviors"]:
        where = f"behaviors.{b}"
        if b not in beh:
            raise ctx.err(where, "missing (use [] for none)" if not sides else
                          f"missing (use {{{', '.join(json.dumps(k) + ': []' for k in keys)}}} for none)")
        s = beh[b]
        if not sides:
            if isinstance(s, dict):
                raise ctx.err(where, "expected an array of item ids (the object form needs the config's "
                                     "seq_fields, and this config has none)")
            seqs.append(_id_list(s, L, "item_id", itab, ctx, where))
            continue
        if not isinstance(s, dict):
            raise ctx.err(where, f"expected an object {{{', '.join(json.dumps(k) + ': [...]' for k in keys)}}} "
                                 f"(the config's seq_fields: {keys[1:]}), got {_show(s)}")
        for k in s:
            if k not in keys:
                raise ctx.err(f"{where}.{k}", f"unknown key (an event carries {keys})")
        for k in keys:
            if k not in s:
                raise ctx.err(f"{where}.{k}", f"missing (an event carries {keys})")
            if not isinstance(s[k], list):
                raise ctx.err(f"{where}.{k}", f"expected an array of ids, got {_show(s[k])}")
        n = len(s["item_id"])
        for k in keys[1:]:
            if len(s[k]) != n:
                raise ctx.err(f"{where}.{k}", f"has {len(s[k])} ids but {where}.item_id has {n} "
                                              "(one per event: the lengths must be equal)")
        seqs.append(_id_list(s["item_id"], L, "item_id", itab, ctx, f"{where}.item_id"))
        side.append({f["name"]: _id_list(s[f["name"]], L, f["name"], tabs[f["table"]], ctx, f"{where}.{f['name']}")
                     for f in sides})
    return seqs, side


def _candidates(cands, item_fields, ctx):
    """Columns of the candidates' item fields. A fast path checks whole columns at once; the first
    bad value is then located with the same per-value checks the slow path uses."""
    names = [f["name"] for f in item_fields]
    keys = set(names)
    for i, c in enumerate(cands):
        if not isinstance(c, dict):
            raise ctx.err(f"candidates[{i}]", "expected an object")
        if c.keys() != keys:
            for k in c:
                if k not in keys:
                    raise ctx.err(f"candidates[{i}].{k}", f"unknown field (the config's item fields: {names})")
            missing = [n for n in names if n not in c]
            raise ctx.err(f"candidates[{i}].{missing[0]}", "missing")
    sparse, dense = {}, {}
    for f in item_fields:
        n = f["name"]
        col = [c[n] for c in cands]
        if f["kind"] == "sparse":
            if all(type(v) is int for v in col) and INT64_MIN <= min(col) and max(col) <= INT64_MAX:
                try:
                    sparse[n] = ids_to_rows(np.asarray(col, dtype=np.int64), f["vocab"], f["hashed"])
                    continue
                except IdError:
                    pass
            sparse[n] = np.asarray([_row(v, f, ctx, f"candidates[{i}].{n}") for i, v in enumerate(col)],
                                   dtype=np.int64)
        else:
            w = f["width"]
            if all(type(v) is list and len(v) == w and all(type(x) is float for x in v) for v in col):
                with np.errstate(over="ignore", invalid="ignore"):
                    a32 = np.asarray(col, dtype=np.float64).astype(np.float32)
                if np.isfinite(a32).all():
                    dense[n] = a32
                    continue
            dense[n] = np.stack([_dense(v, w, ctx, f"candidates[{i}].{n}") for i, v in enumerate(col)])
    return sparse, dense


def parse_request(obj, cfg, line=None, source=None):
    """Validate one request object (already JSON-decoded) against cfg; return a Request."""
    ctx = _Ctx(source, line)
    if not isinstance(obj, dict):
        raise ctx.err(None, "a request must be a JSON object")
    if "id" not in obj:
        raise ctx.err("id", "missing")
    rid = obj["id"]
    if _is_int(rid):
        # Signed or unsigned 64-bit (trace ids are often printed unsigned): what a 64-bit parser holds
        # exactly. Anything larger has no integer type on the runtime's side: send it as a string.
        if not INT64_MIN <= rid <= UINT64_MAX:
            raise ctx.err("id", f"integer id {_show(rid)} is outside [-2^63, 2^64) (64-bit signed or unsigned); "
                                "send it as a string")
        rid = str(rid)
    if not isinstance(rid, str):
        raise ctx.err("id", f"expected a string (or a 64-bit JSON integer), got {_show(rid)}")
    try:
        rid.encode("utf-8")
    except UnicodeEncodeError:
        raise ctx.err("id", "not valid Unicode (a lone surrogate escape such as \\ud800)") from None
    ctx.rid = rid
    for k in obj:
        if k not in REQUEST_KEYS:
            raise ctx.err(k, f"unknown key (allowed: {list(REQUEST_KEYS)})")
    for k in ("user", "context", "behaviors", "candidates"):
        if k not in obj:
            raise ctx.err(k, "missing")
    K = len(cfg["tasks"])

    sparse, dense = {}, {}
    for group in ("user", "context"):
        g = _group(obj[group], group, cfg, ctx)
        for f in cfg_fields(cfg, group):
            where = f"{group}.{f['name']}"
            if f["kind"] == "sparse":
                sparse[f["name"]] = _row(g[f["name"]], f, ctx, where)
            else:
                dense[f["name"]] = _dense(g[f["name"]], f["width"], ctx, where)

    beh = obj["behaviors"]
    if not isinstance(beh, dict):
        raise ctx.err("behaviors", "expected an object of behaviour type -> id array")
    for k in beh:
        if k not in cfg["behaviors"]:
            raise ctx.err(f"behaviors.{k}", f"unknown behaviour type (the config's: {cfg['behaviors']})")
    seqs, side = _sequences(beh, cfg, ctx)

    cands = obj["candidates"]
    if not isinstance(cands, list) or not cands:
        raise ctx.err("candidates", "expected a non-empty array of candidate objects")
    N = len(cands)
    cand_sparse, cand_dense = _candidates(cands, cfg_fields(cfg, "item"), ctx)

    labels = None
    if "labels" in obj:  # optional, but when present it must be valid (null is not an array)
        lab = obj["labels"]
        if not isinstance(lab, list) or len(lab) != N:
            got = f"{len(lab)} rows" if isinstance(lab, list) else _show(lab)
            raise ctx.err("labels", f"expected {N} arrays (one per candidate) of {K} values, got {got}; "
                                    "omit the key when there are no labels")
        for i, row in enumerate(lab):
            if not isinstance(row, list) or len(row) != K:
                raise ctx.err(f"labels[{i}]", f"expected an array of {K} values (task order)")
            for k, v in enumerate(row):
                if not _is_num(v) or v not in (0, 1):
                    raise ctx.err(f"labels[{i}][{k}]", f"expected 0 or 1, got {_show(v)}")
        labels = np.asarray(lab, dtype=np.float32)
    weights = np.ones(K, dtype=np.float64)
    if "weights" in obj:
        w = obj["weights"]
        if not isinstance(w, list) or len(w) != K:
            got = f"{len(w)} values" if isinstance(w, list) else _show(w)
            raise ctx.err("weights", f"expected an array of {K} numbers (task order), got {got}; "
                                     "omit the key for equal weights")
        for k, v in enumerate(w):
            if not _is_num(v):
                raise ctx.err(f"weights[{k}]", f"expected a finite number, got {_show(v)}")
            if not _finite32(v):
                raise ctx.err(f"weights[{k}]", f"{_big(v)} is not a finite float32 (|w| <= {FLOAT32_MAX:.8g})")
        weights = np.asarray([float(v) for v in w], dtype=np.float64)
    return Request(rid, sparse, dense, seqs, cand_sparse, cand_dense, labels, weights, side)


BOM = "\ufeff"


def parse_line(text, cfg, line=None, source=None):
    """One JSON Lines line (str, or bytes that must be UTF-8) -> Request. Syntax errors, invalid UTF-8, a
    byte order mark and nesting too deep to parse are RequestErrors naming the line."""
    where = f"{source or '<requests>'}" + (f" line {line}" if line is not None else "")
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise RequestError(f"{where}: not valid UTF-8 (byte {e.start}: {bytes(text)[e.start:e.start + 1]!r})") \
                from None
    if text.startswith(BOM):
        raise RequestError(f"{where}: starts with a UTF-8 byte order mark (U+FEFF); JSON Lines text has none "
                           "(RFC 8259 section 8.1): remove it")
    try:
        obj = loads_strict(text)
    except RecursionError:
        raise RequestError(f"{where}: invalid JSON: nested too deeply") from None
    except ValueError as e:
        raise RequestError(f"{where}: invalid JSON: {e}") from None
    try:
        return parse_request(obj, cfg, line=line, source=source)
    except RecursionError:  # deep nesting inside a value, met while describing it
        raise RequestError(f"{where}: a value is nested too deeply") from None


def iter_requests(path, cfg):
    """Yield Requests from a JSON Lines file (blank lines skipped). Read as bytes, decoded per line, so
    invalid UTF-8 is an error naming its line."""
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh, 1):
            if raw.strip():
                yield parse_line(raw, cfg, line=i, source=os.fspath(path))


def read_requests(path, cfg):
    return list(iter_requests(path, cfg))


# ---- batching ---------------------------------------------------------------------------------

def collate(requests, cfg):
    """Requests (Request objects or raw dicts) -> Batch of tensors."""
    reqs = [r if isinstance(r, Request) else parse_request(r, cfg) for r in requests]
    if not reqs:
        raise ValueError("collate: no requests")
    R, B, L = len(reqs), len(cfg["behaviors"]), cfg["L"]
    req_sparse, req_dense = {}, {}
    for g in ("user", "context"):
        for f in cfg_fields(cfg, g):
            n = f["name"]
            if f["kind"] == "sparse":
                req_sparse[n] = torch.tensor([r.sparse[n] for r in reqs], dtype=torch.long)
            else:
                req_dense[n] = torch.from_numpy(np.stack([r.dense[n] for r in reqs]).astype(np.float32))
    seq = np.zeros((R, B, L), dtype=np.int64)
    seq_len = np.zeros((R, B), dtype=np.int64)
    sides = [f["name"] for f in seq_field_defs(cfg)]
    side = {n: np.zeros((R, B, L), dtype=np.int64) for n in sides}
    for i, r in enumerate(reqs):
        for b, s in enumerate(r.seqs):
            seq[i, b, :len(s)] = s
            seq_len[i, b] = len(s)
            for n in sides:
                side[n][i, b, :len(s)] = r.seq_side[b][n]
    counts = [r.num_candidates for r in reqs]
    cand_sparse, cand_dense = {}, {}
    for f in cfg_fields(cfg, "item"):
        n = f["name"]
        if f["kind"] == "sparse":
            cand_sparse[n] = torch.from_numpy(np.concatenate([r.cand_sparse[n] for r in reqs]))
        else:
            cand_dense[n] = torch.from_numpy(np.concatenate([r.cand_dense[n] for r in reqs]).astype(np.float32))
    has = [r.labels is not None for r in reqs]
    if any(has) and not all(has):
        raise RequestError(f"request {json.dumps(reqs[has.index(False)].id)}: field 'labels': missing while "
                           "other requests of the batch have labels")
    labels = torch.from_numpy(np.concatenate([r.labels for r in reqs])) if all(has) else None
    weights = torch.from_numpy(np.stack([r.weights for r in reqs]).astype(np.float32))
    return Batch(req_sparse, req_dense, torch.from_numpy(seq), torch.from_numpy(seq_len),
                 cand_sparse, cand_dense, torch.repeat_interleave(torch.arange(R), torch.tensor(counts)),
                 labels, weights, {n: torch.from_numpy(v) for n, v in side.items()})


# ---- scores -----------------------------------------------------------------------------------

def rank(probs, weights=None):
    """Candidate indices by fused score sum_k w_k p_k (task order), best first, ties to lower index."""
    p = np.asarray(probs.detach().cpu() if torch.is_tensor(probs) else probs, dtype=np.float64)
    K = p.shape[1]
    w = np.ones(K) if weights is None else np.asarray(
        weights.detach().cpu() if torch.is_tensor(weights) else weights, dtype=np.float64)
    fused = np.zeros(p.shape[0])
    for k in range(K):  # summed in task order, as every implementation does
        fused = fused + w[k] * p[:, k]
    return np.argsort(-fused, kind="stable").tolist()


def _num(x):
    if not math.isfinite(x):
        raise ValueError(f"non-finite score {x}")
    return format(float(x), ".9g")


def _matrix(a):
    a = np.asarray(a.detach().cpu() if torch.is_tensor(a) else a, dtype=np.float64)
    return "[" + ",".join("[" + ",".join(_num(x) for x in row) + "]" for row in a) + "]"


def scores_line(rid, probs, logits, weights=None):
    """One scores line (no newline): id, scores, logits, order."""
    order = rank(probs, weights)
    return (f'{{"id":{json.dumps(str(rid))},"scores":{_matrix(probs)},"logits":{_matrix(logits)},'
            f'"order":[{",".join(map(str, order))}]}}')


def write_scores(path, ids, probs, logits, weights=None):
    """Write the scores file: per request i, probs[i]/logits[i] are [N_i, K], weights[i] is [K] (or None).

    Written to a temporary file next to `path`, then renamed: readers never see half a file.
    """
    if weights is None:
        weights = [None] * len(ids)
    if not (len(ids) == len(probs) == len(logits) == len(weights)):
        raise ValueError("write_scores: ids, probs, logits and weights differ in length")
    from .checkpoint import atomic_write  # late: checkpoint imports the model, which this module does not need
    text = "".join(scores_line(rid, p, lg, w) + "\n" for rid, p, lg, w in zip(ids, probs, logits, weights))
    atomic_write(path, text.encode("utf-8"))


def split_by_request(t, batch):
    """[M, ...] tensor -> list of per-request [N_r, ...] tensors (candidates are in request order)."""
    counts = torch.bincount(batch.cand_req.cpu(), minlength=batch.num_requests).tolist()
    return list(torch.split(t, counts))
