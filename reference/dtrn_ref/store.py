"""Requests as columns: the compact binary form training data is kept in (not JSON).

`Columns` holds R requests and their M candidates as flat numpy arrays, either as raw ids (what
a request file carries) or as table rows (ids hashed or range-checked, what the model reads):

    ids        uint8 [bytes] + id_off int64 [R+1]   request ids, UTF-8
    req.<f>    int64 [R] (sparse) / float32 [R, w] (dense)   user and context fields
    seq_start  int64 [R*B]     events of request r, behaviour b: seq.<f>[s : s + n], s = seq_start[r*B+b],
    seq_len    int64 [R*B]     n = seq_len[r*B+b] <= L, oldest first (requests may share events: a log's
    seq.<f>    int64 [T]       events are stored once, each request points at its user's slice)
                               per event: item_id and every seq_fields field
    cand_off   int64 [R+1]     candidates of request r: cand_off[r] .. cand_off[r+1]
    cand.<f>   int64 [M] / float32 [M, w]   item fields
    labels     int8 [M, K]     (optional)
    weights    float32 [R, K]  (optional; default all 1)

`save` writes one .npy file per array (numpy's own header: dtype and shape, never a pickle) and a
manifest.json with the config; `load` memory-maps them (mmap_mode="r", allow_pickle=False) and
verifies every array against the manifest and the config before use: dtypes, shapes, offsets
(monotone, in bounds, at most L events per sequence), rows inside their tables, labels in {0, 1},
finite dense values and weights. A training epoch then gathers each batch straight from the maps
(`batch`), so a training set far larger than memory costs only the pages a batch touches.
"""
import json
import os

import numpy as np
import torch

from .config import ConfigError, config_to_json, load_config, seq_field_defs, tables
from .config import fields as cfg_fields
from .hashing import IdError, ids_to_rows

FORMAT = "dtrn-requests/1"


class StoreError(ValueError):
    """A request store that is malformed or does not match the config; the message names the array."""


def _layout(cfg):
    """Array name -> (dtype, trailing shape) for a config; leading dims are R, R*B+1, T or M."""
    out = {}
    for g in ("user", "context"):
        for f in cfg_fields(cfg, g):
            out["req." + f["name"]] = ("int64", ()) if f["kind"] == "sparse" else ("float32", (f["width"],))
    for f in cfg_fields(cfg, "item"):
        out["cand." + f["name"]] = ("int64", ()) if f["kind"] == "sparse" else ("float32", (f["width"],))
    for n in ["item_id"] + [f["name"] for f in seq_field_defs(cfg)]:
        out["seq." + n] = ("int64", ())
    return out


class Columns:
    def __init__(self, cfg, ids, id_off, req, seq_start, seq_len, seq, cand_off, cand, labels=None, weights=None,
                 rows=False):
        self.cfg = cfg
        self.ids, self.id_off = ids, id_off
        self.req, self.seq_start, self.seq_len, self.seq = req, seq_start, seq_len, seq
        self.cand_off, self.cand = cand_off, cand
        self.labels, self.weights, self.rows = labels, weights, rows

    # ---- sizes -----------------------------------------------------------------------------------
    def __len__(self):
        return len(self.cand_off) - 1

    @property
    def num_candidates(self):
        return int(self.cand_off[-1])

    def request_id(self, i):
        return bytes(self.ids[self.id_off[i]:self.id_off[i + 1]]).decode("utf-8")

    # ---- building ----------------------------------------------------------------------------------
    @staticmethod
    def encode_ids(strings):
        """list of str -> (uint8 bytes, int64 offsets)."""
        enc = [s.encode("utf-8") for s in strings]
        off = np.zeros(len(enc) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in enc], out=off[1:])
        return np.frombuffer(b"".join(enc), dtype=np.uint8).copy(), off

    @classmethod
    def from_requests(cls, reqs, cfg):
        """Parsed Request objects (requests_io.parse_request: rows already) -> row Columns."""
        K = len(cfg["tasks"])
        ids, id_off = cls.encode_ids([r.id for r in reqs])
        req = {}
        for g in ("user", "context"):
            for f in cfg_fields(cfg, g):
                n = f["name"]
                if f["kind"] == "sparse":
                    req["req." + n] = np.asarray([r.sparse[n] for r in reqs], dtype=np.int64)
                else:
                    req["req." + n] = np.stack([r.dense[n] for r in reqs]).astype(np.float32)
        seq_len = np.asarray([len(s) for r in reqs for s in r.seqs], dtype=np.int64).reshape(-1)
        seq_start = np.cumsum(seq_len) - seq_len
        flat = [s for r in reqs for s in r.seqs]
        seq = {"seq.item_id": np.concatenate(flat).astype(np.int64) if flat else np.zeros(0, np.int64)}
        for f in seq_field_defs(cfg):
            parts = [side[f["name"]] for r in reqs for side in r.seq_side]
            seq["seq." + f["name"]] = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        counts = np.asarray([r.num_candidates for r in reqs], dtype=np.int64)
        cand_off = np.zeros(len(reqs) + 1, dtype=np.int64)
        np.cumsum(counts, out=cand_off[1:])
        cand = {}
        for f in cfg_fields(cfg, "item"):
            n = f["name"]
            src = [r.cand_sparse[n] if f["kind"] == "sparse" else r.cand_dense[n] for r in reqs]
            cand["cand." + n] = np.concatenate(src).astype(np.int64 if f["kind"] == "sparse" else np.float32)
        has = [r.labels is not None for r in reqs]
        labels = np.concatenate([r.labels for r in reqs]).astype(np.int8) if reqs and all(has) else None
        weights = np.stack([r.weights for r in reqs]).astype(np.float32) if reqs else np.zeros((0, K), np.float32)
        return cls(cfg, ids, id_off, req, seq_start, seq_len, seq, cand_off, cand, labels, weights, rows=True)

    def to_rows(self):
        """Raw-id Columns -> row Columns (hashed or range-checked per field table). An id outside an
        un-hashed table is a StoreError naming the request and field."""
        if self.rows:
            return self
        tabs = tables(self.cfg)
        by_name = {f["name"]: f for f in self.cfg["fields"]}

        def conv(key, a, owner):
            f = by_name[key.split(".", 1)[1]]  # seq.<f>, req.<f>, cand.<f>: the field's own table
            if f["kind"] != "sparse":
                with np.errstate(over="ignore", invalid="ignore"):
                    a32 = np.asarray(a, dtype=np.float64).astype(np.float32)
                bad = np.flatnonzero(~np.isfinite(a32).all(axis=-1))
                if bad.size:
                    r = int(owner(int(bad[0])))
                    raise StoreError(f"request {json.dumps(self.request_id(r))}: field '{key}': a value is not a "
                                     "finite float32")
                return a32
            t = tabs[f["table"]]
            try:
                return ids_to_rows(a, t["vocab"], t["hashed"])
            except IdError as e:
                r = int(owner(e.index))
                raise StoreError(f"request {json.dumps(self.request_id(r))}: field '{key}': id {e.value} is outside "
                                 f"[0, {t['vocab']}) of the un-hashed table '{f['table']}'") from None

        B = len(self.cfg["behaviors"])
        req = {k: conv(k, v, lambda i: i) for k, v in self.req.items()}

        def seq_owner(i):  # the first request whose sequences hold event i
            hit = np.flatnonzero((self.seq_start <= i) & (i < self.seq_start + self.seq_len))
            return hit[0] // B if hit.size else 0

        seq = {k: conv(k, v, seq_owner) for k, v in self.seq.items()}
        cand_owner = lambda i: np.searchsorted(self.cand_off, i, side="right") - 1  # noqa: E731
        cand = {k: conv(k, v, cand_owner) for k, v in self.cand.items()}
        return Columns(self.cfg, self.ids, self.id_off, req, self.seq_start, self.seq_len, seq, self.cand_off, cand,
                       self.labels, self.weights, rows=True)

    def take(self, idx):
        """Columns holding requests `idx` (in that order); the event arrays are shared, not copied."""
        idx = np.asarray(idx, dtype=np.int64)
        B = len(self.cfg["behaviors"])

        def ragged(off, i):
            s, e = off[i], off[i + 1]
            cnt = e - s
            new = np.zeros(len(i) + 1, dtype=np.int64)
            np.cumsum(cnt, out=new[1:])
            src = np.repeat(s - new[:-1], cnt) + np.arange(new[-1])
            return new, src

        id_off, id_src = ragged(self.id_off, idx)
        sidx = (idx[:, None] * B + np.arange(B)).reshape(-1)
        cand_off, cand_src = ragged(self.cand_off, idx)
        return Columns(self.cfg, np.asarray(self.ids[id_src]), id_off,
                       {k: np.asarray(v[idx]) for k, v in self.req.items()},
                       np.asarray(self.seq_start[sidx]), np.asarray(self.seq_len[sidx]), self.seq, cand_off,
                       {k: np.asarray(v[cand_src]) for k, v in self.cand.items()},
                       None if self.labels is None else np.asarray(self.labels[cand_src]),
                       None if self.weights is None else np.asarray(self.weights[idx]), self.rows)

    @staticmethod
    def concat(parts):
        """Columns of one config -> one Columns."""
        p0 = parts[0]

        def off(name):
            out, base = [np.zeros(1, np.int64)], 0
            for p in parts:
                o = getattr(p, name)
                out.append(o[1:] + base)
                base += int(o[-1])
            return np.concatenate(out)

        cat = lambda key, attr: np.concatenate([getattr(p, attr)[key] for p in parts])  # noqa: E731
        bases = np.cumsum([0] + [len(p.seq["seq.item_id"]) for p in parts[:-1]])
        return Columns(p0.cfg, np.concatenate([p.ids for p in parts]), off("id_off"),
                       {k: cat(k, "req") for k in p0.req},
                       np.concatenate([p.seq_start + b for p, b in zip(parts, bases)]),
                       np.concatenate([p.seq_len for p in parts]), {k: cat(k, "seq") for k in p0.seq},
                       off("cand_off"), {k: cat(k, "cand") for k in p0.cand},
                       None if p0.labels is None else np.concatenate([p.labels for p in parts]),
                       None if p0.weights is None else np.concatenate([p.weights for p in parts]), p0.rows)

    # ---- batching ----------------------------------------------------------------------------------
    def batch(self, idx):
        """Requests `idx` -> requests_io.Batch (row Columns only)."""
        from .requests_io import Batch
        if not self.rows:
            raise StoreError("batch: the columns hold raw ids; call to_rows() first")
        cfg = self.cfg
        idx = np.asarray(idx, dtype=np.int64)
        R, B, L, K = len(idx), len(cfg["behaviors"]), cfg["L"], len(cfg["tasks"])
        t = torch.from_numpy
        req_sparse, req_dense = {}, {}
        for g in ("user", "context"):
            for f in cfg_fields(cfg, g):
                a = np.asarray(self.req["req." + f["name"]][idx])
                (req_sparse if f["kind"] == "sparse" else req_dense)[f["name"]] = t(a)
        sidx = idx[:, None] * B + np.arange(B)
        start, seq_len = np.asarray(self.seq_start[sidx]), np.asarray(self.seq_len[sidx])
        mask = np.arange(L) < seq_len[..., None]
        gather = np.where(mask, start[..., None] + np.arange(L), 0)
        T = len(self.seq["seq.item_id"])

        def seq_col(key):
            if T == 0:
                return np.zeros((R, B, L), dtype=np.int64)
            return np.where(mask, np.asarray(self.seq[key][gather.reshape(-1)]).reshape(R, B, L), 0)

        seq = seq_col("seq.item_id")
        side = {f["name"]: t(seq_col("seq." + f["name"])) for f in seq_field_defs(cfg)}
        cs, ce = self.cand_off[idx], self.cand_off[idx + 1]
        cnt = ce - cs
        first = np.zeros(R + 1, dtype=np.int64)
        np.cumsum(cnt, out=first[1:])
        src = np.repeat(cs - first[:-1], cnt) + np.arange(first[-1])
        cand_sparse, cand_dense = {}, {}
        for f in cfg_fields(cfg, "item"):
            a = np.asarray(self.cand["cand." + f["name"]][src])
            (cand_sparse if f["kind"] == "sparse" else cand_dense)[f["name"]] = t(a)
        labels = None if self.labels is None else t(np.asarray(self.labels[src]).astype(np.float32))
        weights = (np.ones((R, K), np.float32) if self.weights is None else np.asarray(self.weights[idx]))
        return Batch(req_sparse, req_dense, t(seq), t(np.ascontiguousarray(seq_len)), cand_sparse, cand_dense,
                     t(np.repeat(np.arange(R), cnt)), labels, t(np.ascontiguousarray(weights)), side)

    # ---- request dicts and JSON Lines ---------------------------------------------------------------
    def iter_dicts(self, start=0, stop=None):
        """Raw-id Columns -> request dicts (docs/request-format.md), seq_fields in the object form."""
        if self.rows:
            raise StoreError("iter_dicts: the columns hold table rows, not the ids a request carries")
        cfg = self.cfg
        B = len(cfg["behaviors"])
        sides = [f["name"] for f in seq_field_defs(cfg)]
        groups = {g: cfg_fields(cfg, g) for g in ("user", "context", "item")}
        stop = len(self) if stop is None else stop
        for r in range(start, stop):
            d = {"id": self.request_id(r)}
            for g in ("user", "context"):
                d[g] = {f["name"]: self.req["req." + f["name"]][r].tolist() for f in groups[g]}
            beh = {}
            for b, name in enumerate(cfg["behaviors"]):
                s = int(self.seq_start[r * B + b])
                e = s + int(self.seq_len[r * B + b])
                items = self.seq["seq.item_id"][s:e].tolist()
                beh[name] = items if not sides else dict(
                    [("item_id", items)] + [(n, self.seq["seq." + n][s:e].tolist()) for n in sides])
            d["behaviors"] = beh
            s, e = int(self.cand_off[r]), int(self.cand_off[r + 1])
            cols = {f["name"]: self.cand["cand." + f["name"]][s:e].tolist() for f in groups["item"]}
            d["candidates"] = [{n: v[j] for n, v in cols.items()} for j in range(e - s)]
            if self.labels is not None:
                d["labels"] = self.labels[s:e].tolist()
            if self.weights is not None:
                d["weights"] = self.weights[r].tolist()
            yield d

    def write_jsonl(self, path, progress=None):
        """Write raw-id Columns as a JSON Lines request file (atomically: temp file, then rename)."""
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                for i, d in enumerate(self.iter_dicts(), 1):
                    fh.write(json.dumps(d, separators=(",", ":")) + "\n")
                    if progress is not None:
                        progress(i)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    # ---- binary store --------------------------------------------------------------------------------
    def _arrays(self):
        out = {"ids": self.ids, "id_off": self.id_off, "seq_start": self.seq_start, "seq_len": self.seq_len,
               "cand_off": self.cand_off}
        out.update(self.req)
        out.update(self.seq)
        out.update(self.cand)
        if self.labels is not None:
            out["labels"] = self.labels
        if self.weights is not None:
            out["weights"] = self.weights
        return out

    def compact(self):
        """The same requests with only the events their sequences reference (after `take`, the event
        arrays are still the whole log's); every sequence stays one contiguous slice."""
        T = len(self.seq["seq.item_id"])
        start, ln = np.asarray(self.seq_start), np.asarray(self.seq_len)
        mark = np.zeros(T + 1, dtype=np.int64)
        nz = ln > 0
        np.add.at(mark, start[nz], 1)
        np.add.at(mark, start[nz] + ln[nz], -1)
        used = np.cumsum(mark[:-1]) > 0
        if used.all():
            return self
        new_index = np.cumsum(used) - 1
        new_start = np.where(nz, new_index[np.minimum(start, max(T - 1, 0))], 0) if T else start
        seq = {k: np.asarray(v)[used] for k, v in self.seq.items()}
        return Columns(self.cfg, self.ids, self.id_off, self.req, new_start.astype(np.int64), ln, seq,
                       self.cand_off, self.cand, self.labels, self.weights, self.rows)

    def save(self, folder):
        """Write row Columns as a store folder (one .npy per array + manifest.json); only the events the
        sequences reference are written."""
        if not self.rows:
            raise StoreError("save: a store holds table rows; call to_rows() first")
        os.makedirs(folder, exist_ok=True)
        arrays = self.compact()._arrays()
        for name, a in arrays.items():
            np.save(os.path.join(folder, name + ".npy"), np.ascontiguousarray(a), allow_pickle=False)
        manifest = {"format": FORMAT, "config": json.loads(config_to_json(self.cfg)), "rows": self.rows,
                    "requests": len(self), "candidates": self.num_candidates,
                    "events": len(arrays["seq.item_id"]),
                    "arrays": {n: {"dtype": str(a.dtype), "shape": list(a.shape)} for n, a in arrays.items()}}
        from .checkpoint import atomic_write
        atomic_write(os.path.join(folder, "manifest.json"), (json.dumps(manifest, indent=1) + "\n").encode())

    @classmethod
    def load(cls, folder, cfg=None, verify=True):
        """Memory-map a store folder; `cfg` (if given) must describe the same inputs as the store's."""
        mpath = os.path.join(folder, "manifest.json")
        try:
            with open(mpath, encoding="utf-8") as fh:
                man = json.load(fh)
        except OSError as e:
            raise StoreError(f"{mpath}: cannot read: {e.strerror}") from None
        except ValueError as e:
            raise StoreError(f"{mpath}: not valid JSON: {e}") from None
        if not isinstance(man, dict) or man.get("format") != FORMAT:
            raise StoreError(f"{mpath}: 'format' is {man.get('format') if isinstance(man, dict) else None!r}, "
                             f"expected {FORMAT!r}")
        try:
            scfg = load_config(man["config"])
        except (KeyError, ConfigError) as e:
            raise StoreError(f"{mpath}: 'config': {e}") from None
        if cfg is not None:
            cfg = load_config(cfg)
            if _inputs(cfg) != _inputs(scfg):
                raise StoreError(f"{folder}: the store was built for different inputs (fields, behaviours, tasks, L "
                                 f"or seq_fields) than the config '{cfg.get('name', '?')}'")
        else:
            cfg = scfg
        want = _layout(cfg)
        arrays = {}
        listed = man.get("arrays", {})
        for name in ["ids", "id_off", "seq_start", "seq_len", "cand_off"] + list(want) + [n for n in ("labels", "weights")
                                                                           if n in listed]:
            p = os.path.join(folder, name + ".npy")
            try:
                a = np.load(p, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:
                raise StoreError(f"{folder}: array '{name}' is missing ({name}.npy)") from None
            except ValueError as e:  # object arrays (pickles) and malformed headers
                raise StoreError(f"{p}: not a plain .npy array: {e}") from None
            m = listed.get(name)
            if m is None or m.get("dtype") != str(a.dtype) or list(m.get("shape", [])) != list(a.shape):
                raise StoreError(f"{p}: dtype/shape {a.dtype}{list(a.shape)} do not match the manifest {m}")
            arrays[name] = a
        col = cls(cfg, arrays["ids"], arrays["id_off"], {k: arrays[k] for k in want if k.startswith("req.")},
                  arrays["seq_start"], arrays["seq_len"], {k: arrays[k] for k in want if k.startswith("seq.")},
                  arrays["cand_off"],
                  {k: arrays[k] for k in want if k.startswith("cand.")}, arrays.get("labels"),
                  arrays.get("weights"), rows=bool(man.get("rows")))
        if verify:
            col.verify(folder)
        return col

    def verify(self, where="<columns>"):
        """Check every array against the config (see the module doc). Raises StoreError."""
        cfg = self.cfg
        R, B, K, L = len(self), len(cfg["behaviors"]), len(cfg["tasks"]), cfg["L"]
        want = _layout(cfg)

        def bad(name, msg):
            return StoreError(f"{where}: array '{name}': {msg}")

        def offsets(name, a, n, total_name, total):
            if a.dtype != np.int64 or a.ndim != 1 or len(a) != n:
                raise bad(name, f"expected int64 [{n}], got {a.dtype}{list(a.shape)}")
            if a[0] != 0 or a[-1] != total or (len(a) > 1 and (np.diff(a) < 0).any()):
                raise bad(name, f"offsets must start at 0, never decrease and end at len({total_name}) = {total}")

        if R < 0 or self.cand_off.ndim != 1:
            raise bad("cand_off", "expected a 1-D array")
        offsets("id_off", self.id_off, R + 1, "ids", len(self.ids))
        offsets("cand_off", self.cand_off, R + 1, "cand.*", len(self.cand["cand.item_id"]))
        T = len(self.seq["seq.item_id"])
        for name in ("seq_start", "seq_len"):
            a = getattr(self, name)
            if a.dtype != np.int64 or a.shape != (R * B,):
                raise bad(name, f"expected int64 [{R * B}], got {a.dtype}{list(a.shape)}")
        if R and (np.diff(self.cand_off) < 1).any():
            raise bad("cand_off", "every request needs at least one candidate")
        if R and (self.seq_len.min() < 0 or self.seq_len.max() > L):
            raise bad("seq_len", f"a sequence length is outside [0, L = {L}]")
        if R and (self.seq_start.min() < 0 or (self.seq_start + self.seq_len).max() > T):
            raise bad("seq_start", f"a sequence reaches outside the {T} stored events")
        M = self.num_candidates
        tabs = tables(cfg)
        by_name = {f["name"]: f for f in cfg["fields"]}
        for key, (dt, tail) in want.items():
            a = {"req": self.req, "seq": self.seq, "cand": self.cand}[key.split(".")[0]][key]
            n = {"req": R, "seq": T, "cand": M}[key.split(".")[0]]
            if str(a.dtype) != dt or tuple(a.shape) != (n,) + tail:
                raise bad(key, f"expected {dt} {[n] + list(tail)}, got {a.dtype}{list(a.shape)}")
            f = by_name[key.split(".", 1)[1]]
            if f["kind"] == "dense":
                if a.size and not np.isfinite(a).all():
                    raise bad(key, "holds NaN or Inf")
            elif self.rows and a.size:
                v = tabs[f["table"]]["vocab"]
                if a.min() < 0 or a.max() >= v:
                    raise bad(key, f"rows must lie in [0, {v}) of table '{f['table']}'")
        if self.labels is not None:
            if self.labels.dtype != np.int8 or tuple(self.labels.shape) != (M, K):
                raise bad("labels", f"expected int8 [{M}, {K}], got {self.labels.dtype}{list(self.labels.shape)}")
            if M and (self.labels.min() < 0 or self.labels.max() > 1):
                raise bad("labels", "values must be 0 or 1")
        if self.weights is not None:
            if self.weights.dtype != np.float32 or tuple(self.weights.shape) != (R, K):
                raise bad("weights", f"expected float32 [{R}, {K}], got {self.weights.dtype}{list(self.weights.shape)}")
            if R and not np.isfinite(self.weights).all():
                raise bad("weights", "holds NaN or Inf")
        return self


def _inputs(cfg):
    """What a store depends on: the fields (names, groups, kinds, tables, widths), behaviours, tasks, L, seq_fields."""
    return (json.dumps(cfg["fields"], sort_keys=True), cfg["behaviors"], cfg["tasks"], cfg["L"],
            cfg.get("seq_fields", []))


class _NpyAppender:
    """A .npy file written block by block: a fixed-size header (rewritten with the final shape on close),
    then the raw little-endian data. np.load reads it like any .npy (format 1.0)."""
    HEADER = 256

    def __init__(self, path, dtype, tail=()):
        self.path, self.dtype, self.tail, self.rows = path, np.dtype(dtype), tuple(tail), 0
        self.fh = open(path, "wb")
        self.fh.write(b"\0" * self.HEADER)

    def append(self, a):
        a = np.ascontiguousarray(a, dtype=self.dtype)
        if a.shape[1:] != self.tail:
            raise StoreError(f"{self.path}: appending {list(a.shape)} to rows of {list(self.tail)}")
        self.fh.write(a.tobytes())
        self.rows += a.shape[0]

    def close(self):
        d = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
             "shape": (self.rows,) + self.tail}
        text = repr(d).encode("latin1")
        pad = self.HEADER - 10 - len(text) - 1
        if pad < 0:
            raise StoreError(f"{self.path}: header too long")
        header = b"\x93NUMPY\x01\x00" + (self.HEADER - 10).to_bytes(2, "little") + text + b" " * pad + b"\n"
        self.fh.seek(0)
        self.fh.write(header)
        self.fh.close()


class StoreWriter:
    """Writes a store folder from raw-id Columns appended chunk by chunk (dtrn_ref.logs.build_store).
    The chunks' sequences index one shared array of the log's events; close() keeps only the events the
    requests reference and re-points the sequences at them."""

    def __init__(self, folder, cfg, n_events=None):
        self.folder, self.cfg = os.fspath(folder), cfg
        os.makedirs(self.folder, exist_ok=True)
        K = len(cfg["tasks"])
        self.files = {"ids": _NpyAppender(self._p("ids"), np.uint8), "id_off": _NpyAppender(self._p("id_off"), np.int64),
                      "seq_start": _NpyAppender(self._p("seq_start"), np.int64),
                      "seq_len": _NpyAppender(self._p("seq_len"), np.int64),
                      "cand_off": _NpyAppender(self._p("cand_off"), np.int64),
                      "labels": _NpyAppender(self._p("labels"), np.int8, (K,))}
        for key, (dt, tail) in _layout(cfg).items():
            if not key.startswith("seq."):
                self.files[key] = _NpyAppender(self._p(key), dt, tail)
        self.files["id_off"].append(np.zeros(1, np.int64))
        self.files["cand_off"].append(np.zeros(1, np.int64))
        self.n_ids = self.n_cand = self.n_req = 0
        # n_events given: one event array for every append, close(seq_rows) writes it. None: sharded,
        # begin_shard(rows) .. append .. end_shard() per shard of events, each written as it ends.
        self.sharded = n_events is None
        self.n_events, self.pending, self.shard_rows = 0, None, None
        if self.sharded:
            self.seq_files = {k: _NpyAppender(self._p(k), dt, tail) for k, (dt, tail) in _layout(cfg).items()
                              if k.startswith("seq.")}
            self.mark = None
        else:
            self.mark = np.zeros(n_events + 1, dtype=np.int32)  # +1 at a sequence's start, -1 after its end

    def begin_shard(self, seq_rows):
        """Sharded: the next appends' sequences point into these events (table rows, per seq array)."""
        self.shard_rows = seq_rows
        self.mark = np.zeros(len(seq_rows["seq.item_id"]) + 1, dtype=np.int32)
        self.pending = []

    def end_shard(self):
        """Sharded: write the shard's events that its requests use, and their sequences re-pointed at them."""
        used = np.cumsum(self.mark[:-1]) > 0
        self.mark = None
        new_index = np.cumsum(used) - 1 + self.n_events
        for k, v in self.shard_rows.items():
            self.seq_files[k].append(v[used])
        for s, n in self.pending:
            self.files["seq_start"].append(np.where(n > 0, new_index[np.minimum(s, max(len(new_index) - 1, 0))], 0))
            self.files["seq_len"].append(n)
        self.n_events += int(used.sum())
        self.pending, self.shard_rows = None, None

    def _p(self, name):
        return os.path.join(self.folder, name + ".npy")

    @staticmethod
    def event_rows(cfg, seq_raw):
        """The log's event ids -> table rows, per seq array (item_id and the seq_fields)."""
        tabs, by_name = tables(cfg), {f["name"]: f for f in cfg["fields"]}
        out = {}
        for key, a in seq_raw.items():
            f = by_name[key.split(".", 1)[1]]
            t = tabs[f["table"]]
            try:
                out[key] = ids_to_rows(a, t["vocab"], t["hashed"])
            except IdError as e:
                raise StoreError(f"a behaviour event's '{f['name']}' id {e.value} is outside [0, {t['vocab']}) of the "
                                 f"un-hashed table '{f['table']}'") from None
        return out

    def append(self, part):
        rows = Columns(part.cfg, part.ids, part.id_off, part.req, part.seq_start, part.seq_len,
                       {k: v[:0] for k, v in part.seq.items()}, part.cand_off, part.cand, part.labels, None).to_rows()
        f = self.files
        f["ids"].append(rows.ids)
        f["id_off"].append(rows.id_off[1:] + self.n_ids)
        f["cand_off"].append(rows.cand_off[1:] + self.n_cand)
        for k, v in list(rows.req.items()) + list(rows.cand.items()):
            f[k].append(v)
        f["labels"].append(rows.labels)
        start, ln = np.asarray(part.seq_start), np.asarray(part.seq_len)
        if self.sharded:
            if self.pending is None:
                raise StoreError(f"{self.folder}: append outside begin_shard .. end_shard")
            self.pending.append((start, ln))
        else:
            f["seq_start"].append(start)
            f["seq_len"].append(ln)
        nz = ln > 0
        m = len(self.mark)
        self.mark += np.bincount(start[nz], minlength=m)[:m].astype(np.int32)
        self.mark -= np.bincount(start[nz] + ln[nz], minlength=m)[:m].astype(np.int32)
        self.n_ids += int(rows.id_off[-1])
        self.n_cand += int(rows.cand_off[-1])
        self.n_req += len(rows)

    def close(self, seq_rows=None, block=1 << 22):
        if self.sharded:
            if self.pending is not None:
                raise StoreError(f"{self.folder}: close inside begin_shard .. end_shard")
            for a in list(self.files.values()) + list(self.seq_files.values()):
                a.close()
            return self._manifest(list(self.files) + list(self.seq_files), self.n_events)
        for a in self.files.values():
            a.close()
        used = np.cumsum(self.mark[:-1]) > 0
        self.mark = None
        new_index = np.cumsum(used) - 1
        for k, v in seq_rows.items():
            np.save(self._p(k), np.ascontiguousarray(v[used]), allow_pickle=False)
        st = np.load(self._p("seq_start"), mmap_mode="r+")
        ln = np.load(self._p("seq_len"), mmap_mode="r")
        for i in range(0, len(st), block):
            s, n = np.asarray(st[i:i + block]), np.asarray(ln[i:i + block])
            st[i:i + block] = np.where(n > 0, new_index[np.minimum(s, max(len(new_index) - 1, 0))], 0)
        st.flush()
        del st, ln
        return self._manifest(list(self.files) + list(seq_rows), int(used.sum()))

    def _manifest(self, names, n_events):
        arrays = {n: np.load(self._p(n), mmap_mode="r") for n in names}
        manifest = {"format": FORMAT, "config": json.loads(config_to_json(self.cfg)), "rows": True,
                    "requests": self.n_req, "candidates": self.n_cand, "events": n_events,
                    "arrays": {n: {"dtype": str(a.dtype), "shape": list(a.shape)} for n, a in arrays.items()}}
        from .checkpoint import atomic_write
        atomic_write(os.path.join(self.folder, "manifest.json"), (json.dumps(manifest, indent=1) + "\n").encode())
        return self.n_req
