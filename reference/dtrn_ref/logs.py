"""Requests from interaction logs, as a user brings them (CSV: one event per row).

Reading. pyarrow's CSV reader (streaming, block by block) reads the columns the config needs.
`names` gives the file's column names in order when it has no header (default: the UserBehavior
layout `user_id,item_id,category_id,behavior_type,timestamp`); `header=True` reads them from the
first line instead. A column mapping says which column plays which role:

    user=user_id,item=item_id,behavior=behavior_type,time=timestamp,category=category_id

`user`, `item`, `behavior` and `time` (integer seconds) are roles; every other key is a config
field name and reads that column (integers): an item field (e.g. category) takes, for a candidate,
the item's value on its first event and, for a behaviour event (seq_fields), the value on that
event's row; a user or context field takes the value on the target's row. `user_id` and `item_id`
read the user and item columns; a context field `hour` not in the mapping is the hour of day of
the target's time (UTC+8 by default, as Taobao's logs are Beijing time). Every row is checked, ignored
types included; a row that is not as expected is an error naming its line (pyarrow reads fast; on
a conversion or parse error the file is re-read line by line to name the line).

A behaviour map names what each raw type means, e.g. "pv=click,cart=cart,buy=purchase,fav=": a
mapped name feeds the behaviour sequence of that name and/or the label of the task of that name;
"buy=purchase+cart" makes one raw type feed several names; an empty name drops the type; a type
missing from the map is an error naming the line.

Targets: with target="first" (default) each user's first event with an item, of any task's type;
with target="task0" every event of the config's first task. Each target becomes one request, in
time order:
- sequences: the user's events strictly before the target's timestamp, per behaviour type, the
  most recent L (events in the same second are not "before": their order is unknown);
- candidates: the target item and `negatives` items drawn from the log's events strictly before
  the target (so by popularity as of then; never the target item), in random order; targets in
  the log's first second are warm-up and make no request;
- labels: task k is 1 for a candidate when the user has an event of task k with that item at or
  after the target's timestamp (the target itself counts for its own task);
- split by the target's timestamp: the first `fractions[0]` of targets train, the next
  `fractions[1]` validate, the rest test; a timestamp never straddles two splits.

Everything after reading is vectorised numpy over all events and targets (sorts, searchsorted,
gathers), no Python loop per event or request. Requests come out as store.Columns whose sequences
point into one shared, user-sorted event array (nothing is copied per request), ready for
`Columns.save` (the memory-mapped training store) or `write_jsonl` (request files).
"""
import json
import os
import re

import numpy as np

from . import config as C

DEFAULT_BEHAVIOR_MAP = "pv=click,cart=cart,buy=purchase,fav="
DEFAULT_NAMES = "user_id,item_id,category_id,behavior_type,timestamp"
DEFAULT_COLUMNS = "user=user_id,item=item_id,behavior=behavior_type,time=timestamp,category=category_id"
ROLES = ("user", "item", "behavior", "time")
TARGETS = ("first", "task0")
_INT = re.compile(r"-?[0-9]+\Z")
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
BLOCK = 64 << 20  # pyarrow read block size (bytes)


class LogError(ValueError):
    """A malformed log, behaviour map, column mapping or log/config mismatch; the message names the line or key."""


def parse_behavior_map(text):
    """"pv=click,buy=purchase+cart,fav=" -> {"pv": ["click"], "buy": ["purchase", "cart"], "fav": []}."""
    out = {}
    for part in text.split(","):
        raw, eq, names = part.partition("=")
        raw = raw.strip()
        if not eq or not raw:
            raise LogError(f"behavior map: '{part}' is not TYPE=NAME (NAME may be empty to ignore TYPE, or "
                           "NAME+NAME to feed several)")
        if raw in out:
            raise LogError(f"behavior map: type '{raw}' appears twice")
        got = [n.strip() for n in names.split("+")] if names.strip() else []
        if any(not n for n in got) or len(set(got)) != len(got):
            raise LogError(f"behavior map: '{part}': names must be distinct and non-empty")
        out[raw] = got
    return out


def parse_columns(text):
    """"user=uid,item=iid,..." -> {"user": "uid", ...}; the four roles are required."""
    out = {}
    for part in text.split(","):
        key, eq, col = part.partition("=")
        key, col = key.strip(), col.strip()
        if not eq or not key or not col:
            raise LogError(f"column mapping: '{part}' is not KEY=COLUMN")
        if key in out:
            raise LogError(f"column mapping: key '{key}' appears twice")
        out[key] = col
    for r in ROLES:
        if r not in out:
            raise LogError(f"column mapping: role '{r}' is missing (needed: {list(ROLES)})")
    return out


class Events:
    """Parsed log: parallel numpy arrays, one entry per (row, mapped name); `kind` indexes `names`.
    `attr` holds the mapped field columns (field name -> int64 values per event)."""

    def __init__(self, user, item, kind, ts, line, names, source, attr=None):
        self.user, self.item, self.kind, self.ts, self.line = user, item, kind, ts, line
        self.names, self.source, self.attr = names, source, attr or {}

    @property
    def cat(self):
        return self.attr.get("category")

    def __len__(self):
        return len(self.ts)


def _int(tok, what, where):
    if not _INT.match(tok):
        raise LogError(f"{where}: {what} '{tok}' is not an integer")
    v = int(tok)
    if not INT64_MIN <= v <= INT64_MAX:
        raise LogError(f"{where}: {what} {v} does not fit in int64")
    return v


def _locate_error(source, names, header, wanted, bmap):
    """The slow, exact check of every line: raises the LogError naming the first bad line."""
    with open(source, encoding="utf-8", errors="replace") as fh:
        for lineno, text in enumerate(fh, 1):
            if header and lineno == 1:
                continue
            where = f"{source} line {lineno}"
            parts = text.rstrip("\r\n").split(",")
            if len(parts) != len(names):
                raise LogError(f"{where}: expected {len(names)} comma-separated columns ({','.join(names)}), "
                               f"got {len(parts)}")
            for col, tok in zip(names, parts):
                if col in wanted and wanted[col] == "type":
                    if tok.strip() not in bmap:
                        raise LogError(f"{where}: behavior type '{tok.strip()}' is not in the behavior map "
                                       f"(known: {sorted(bmap)}; map it to a name, or to nothing to ignore it)")
                elif col in wanted:
                    _int(tok.strip(), col, where)


class _Reader:
    """A CSV log read block by block with pyarrow: batches() yields each block's events (one per
    (row, mapped name)) as a dict of numpy arrays: user, item, kind, ts, line and attr (field -> values)."""

    def __init__(self, path, behavior_map=DEFAULT_BEHAVIOR_MAP, columns=None, names=None, header=False):
        self.bmap = parse_behavior_map(behavior_map) if isinstance(behavior_map, str) else dict(behavior_map)
        self.cmap = cmap = parse_columns(columns or DEFAULT_COLUMNS)
        self.source = source = os.fspath(path)
        self.header = header
        if header:
            try:
                with open(source, encoding="utf-8") as fh:
                    names = [n.strip() for n in fh.readline().rstrip("\r\n").split(",")]
            except OSError as e:
                raise LogError(f"{source}: cannot read: {e.strerror}") from None
        else:
            names = [n.strip() for n in (names or DEFAULT_NAMES).split(",")]
        self.names = names
        # every mapped column is read and checked (on every row, ignored types included)
        self.attrs = attrs = {k: c for k, c in cmap.items() if k not in ROLES and k not in ("user_id", "item_id")}
        for key, col in list(cmap.items()):
            if col not in names and (key in ROLES or key in attrs):
                raise LogError(f"column mapping: '{key}={col}': the log has no column '{col}' (its columns: {names})")
        wanted = {cmap["user"]: "int", cmap["item"]: "int", cmap["time"]: "int", cmap["behavior"]: "type"}
        for col in attrs.values():
            wanted[col] = "int"
        self.wanted = wanted
        self.kind_names = sorted({n for v in self.bmap.values() for n in v})
        self.index = {n: i for i, n in enumerate(self.kind_names)}

    def batches(self):
        import pyarrow as pa
        import pyarrow.csv as pcsv
        wanted, source = self.wanted, self.source
        types = {c: (pa.dictionary(pa.int32(), pa.string()) if t == "type" else pa.int64()) for c, t in wanted.items()}
        type_names = []  # raw type strings in order of first sight; per-block dictionaries map onto it
        rows_before = 0
        try:
            reader = pcsv.open_csv(
                source,
                read_options=pcsv.ReadOptions(column_names=self.names, skip_rows=1 if self.header else 0,
                                              block_size=BLOCK),
                parse_options=pcsv.ParseOptions(ignore_empty_lines=False),
                convert_options=pcsv.ConvertOptions(column_types=types, include_columns=list(wanted)))
            for batch in reader:
                cols = {c: _column(batch.column(batch.schema.get_field_index(c)), wanted[c]) for c in wanted}
                out = self._expand(cols, rows_before, type_names)
                rows_before += batch.num_rows
                yield out
        except FileNotFoundError:
            raise LogError(f"{source}: no such file") from None
        except OSError as e:
            raise LogError(f"{source}: cannot read: {e}") from None
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            _locate_error(source, self.names, self.header, wanted, self.bmap)
            raise LogError(f"{source}: {e}") from None

    def _expand(self, cols, rows_before, type_names):
        cmap, bmap = self.cmap, self.bmap
        cd, dic = cols[cmap["behavior"]]
        local = []
        for t in dic:
            t = t.strip()
            if t not in type_names:
                type_names.append(t)
            local.append(type_names.index(t))
        types_arr = np.asarray(local, dtype=np.int64)[cd] if len(local) else cd.astype(np.int64)
        unknown = [i for i, t in enumerate(type_names) if t not in bmap]
        if unknown and np.isin(types_arr, unknown).any():
            row = int(np.flatnonzero(np.isin(types_arr, unknown))[0])
            t = type_names[int(types_arr[row])]
            raise LogError(f"{self.source} line {rows_before + row + 1 + int(self.header)}: behavior type '{t}' is "
                           f"not in the behavior map (known: {sorted(bmap)}; map it to a name, or to nothing to "
                           "ignore it)")
        # expand: one event per (row, mapped name)
        per_type = [[self.index[n] for n in bmap[t]] for t in type_names]
        if type_names:
            counts = np.asarray([len(k) for k in per_type], dtype=np.int64)[types_arr]
            rows = np.repeat(np.arange(len(types_arr)), counts)
            flat_kinds = np.concatenate([np.asarray(k, np.int64) for k in per_type])
            starts = np.concatenate([[0], np.cumsum([len(k) for k in per_type])])[:-1].astype(np.int64)
            within = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
            kind = flat_kinds[starts[types_arr[rows]] + within] if len(rows) else np.zeros(0, np.int64)
        else:
            rows, kind = np.zeros(0, np.int64), np.zeros(0, np.int64)
        take = lambda c: cols[c][rows]  # noqa: E731
        return {"user": take(cmap["user"]), "item": take(cmap["item"]), "kind": kind, "ts": take(cmap["time"]),
                "line": rows + (rows_before + 1 + int(self.header)),
                "attr": {f: take(c) for f, c in self.attrs.items()}}


def read_log(path, behavior_map=DEFAULT_BEHAVIOR_MAP, columns=None, names=None, header=False):
    """Read a CSV log with pyarrow -> Events (the roles and every other mapped column), in memory."""
    rd = _Reader(path, behavior_map, columns, names, header)
    parts = list(rd.batches())
    cat = lambda k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, np.int64)  # noqa: E731
    attr = {f: (np.concatenate([p["attr"][f] for p in parts]) if parts else np.zeros(0, np.int64)) for f in rd.attrs}
    return Events(cat("user"), cat("item"), cat("kind"), cat("ts"), cat("line"), rd.kind_names, rd.source, attr)


def _column(arr, what):
    """A pyarrow chunked/array column -> numpy (int64), or (codes, dictionary strings) for the type."""
    import pyarrow as pa
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if what == "type":
        if arr.null_count:
            raise pa.ArrowInvalid("empty behaviour type")
        return arr.indices.to_numpy(zero_copy_only=False).astype(np.int64), arr.dictionary.to_pylist()
    if arr.null_count:
        raise pa.ArrowInvalid("empty value")
    return arr.to_numpy(zero_copy_only=False)


def _check_config(cfg, ev, cmap):
    for f in cfg["fields"]:
        n = f["name"]
        if f["kind"] != "sparse":
            raise LogError(f"config field '{n}' ({f['group']}, dense): a log provides only sparse (integer) fields")
        if n in ("user_id", "item_id") or n in ev.attr:
            if n == "user_id" and f["group"] != "user" or n == "item_id" and f["group"] != "item":
                raise LogError(f"config field '{n}': expected in group {'user' if n == 'user_id' else 'item'}")
            continue
        if f["group"] == "context" and n == "hour":
            if not f["hashed"] and f["vocab"] < 24:
                raise LogError(f"config field 'hour': vocab {f['vocab']} < 24 hours")
            continue
        raise LogError(f"config field '{n}' ({f['group']}): not in the column mapping (map it: {n}=COLUMN; "
                       f"the mapping has {sorted(cmap)}); a log provides user_id, item_id, the hour of day and "
                       "mapped columns")
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


def _ss(a, v, side="left"):
    """np.searchsorted for many unsorted queries: searching them in sorted order is several times faster
    (each search starts where the previous one ended, so memory is read in order)."""
    v = np.asarray(v)
    flat = v.reshape(-1)
    o = np.argsort(flat)
    out = np.empty(len(flat), dtype=np.int64)
    out[o] = np.searchsorted(a, flat[o], side=side)
    return out.reshape(v.shape)


def _dense_index(a):
    """Values -> (dense int64 codes, unique values)."""
    u, inv = np.unique(a, return_inverse=True)
    return inv.astype(np.int64).reshape(-1), u


class _Plan:
    """Everything about a log that does not depend on which targets are being built (sorted events,
    label look-ups, per-item values, split cuts); chunk(lo, hi) builds targets lo .. hi-1."""

    def __init__(self, ev, cfg, negatives, seed, fractions, target, columns, utc_offset_hours, tick):
        cfg = C.load_config(cfg)
        cmap = parse_columns(columns or DEFAULT_COLUMNS)
        _check_config(cfg, ev, cmap)
        if len(ev) == 0:
            raise LogError(f"{ev.source}: no events after applying the behavior map")
        if negatives < 0:
            raise LogError(f"negatives must be >= 0, got {negatives}")
        self.cfg, self.ev, self.negatives, self.seed, self.utc = cfg, ev, negatives, seed, utc_offset_hours
        kind_of = {n: i for i, n in enumerate(ev.names)}
        self.beh_kind = np.asarray([kind_of[b] for b in cfg["behaviors"]], dtype=np.int64)
        self.task_kind = [kind_of[t] for t in cfg["tasks"]]
        self.nk = nk = len(ev.names)
        self.uidx, _ = _dense_index(ev.user)
        iidx, self.items_u = _dense_index(ev.item)
        self.n_items = len(self.items_u)
        tick("factorised users and items")
        # Events by (user, kind), time-ordered (file order breaks ties): each sequence is a slice.
        self.order = np.lexsort((ev.line, ev.ts, ev.kind, self.uidx))
        self.g_key = self.uidx[self.order] * nk + ev.kind[self.order]
        self.ts_sorted = ev.ts[self.order]
        tick("sorted events by (user, behaviour, time)")
        tgt = _targets(ev, self.task_kind, target)
        self.tgt = tgt[ev.ts[tgt] > ev.ts.min()]  # the log's first second is warm-up: nothing earlier to sample
        n = self.n = len(self.tgt)
        if n == 0:
            raise LogError(f"{ev.source}: no target events after the log's first second")
        self.t_ts = ev.ts[self.tgt]
        cut = [0]
        for fr in np.cumsum(fractions):
            j = int(round(fr * n))
            j = int(np.searchsorted(self.t_ts, self.t_ts[j - 1], side="right")) if 0 < j < n else j  # a second whole
            cut.append(max(cut[-1], j))
        cut.append(n)
        self.cut = cut
        # negatives: items of events strictly before the target, by position in time order
        by_time = np.lexsort((ev.line, ev.ts))
        self.pool_items, self.pool_ts = ev.item[by_time], ev.ts[by_time]
        # labels: per (user, item, task kind) the time of the user's last such event
        is_task = np.isin(ev.kind, self.task_kind)
        key_ev = (self.uidx[is_task] * self.n_items + iidx[is_task]) * nk + ev.kind[is_task]
        o2 = np.lexsort((ev.ts[is_task], key_ev))
        key_s, ts_s = key_ev[o2], ev.ts[is_task][o2]
        last = np.ones(len(key_s), dtype=bool)
        last[:-1] = key_s[1:] != key_s[:-1]
        self.key_last, self.ts_last = key_s[last], ts_s[last]
        _, first_of_item = np.unique(iidx[by_time], return_index=True)
        self.item_first_event = by_time[first_of_item]  # per dense item: its first event
        del by_time, key_ev, o2, key_s, ts_s, is_task, iidx
        self.seq_raw = {"seq.item_id": ev.item[self.order]}
        for f in C.seq_field_defs(cfg):
            self.seq_raw["seq." + f["name"]] = ev.attr[f["name"]][self.order]
        # What the chunks read, per target and per item; then the per-event columns can go.
        tg = self.tgt
        self.t_uidx, self.t_user, self.t_item, self.t_line = self.uidx[tg], ev.user[tg], ev.item[tg], ev.line[tg]
        self.t_attr = {k: v[tg] for k, v in ev.attr.items()}
        self.item_attr = {k: v[self.item_first_event] for k, v in ev.attr.items()}  # per dense item
        del self.uidx, self.order, self.item_first_event
        tick(f"{n} targets; label and negative look-ups")

    def chunk(self, lo, hi, rng):
        """Raw-id Columns of targets lo .. hi-1 (their sequences point into self.seq_raw)."""
        from .store import Columns
        cfg, nk, L, K = self.cfg, self.nk, self.cfg["L"], len(self.cfg["tasks"])
        t_ts = self.t_ts[lo:hi]
        n, negatives = len(t_ts), self.negatives
        t_user = self.t_uidx[lo:hi]
        q_key = t_user[:, None] * nk + self.beh_kind[None, :]                          # [n, B]
        g_lo = _ss(self.g_key, q_key, side="left")
        g_hi = _ss(self.g_key, q_key, side="right")
        stop = _search_pairs(self.g_key, self.ts_sorted, q_key, np.broadcast_to(t_ts[:, None], q_key.shape),
                             g_lo, g_hi)
        start = np.maximum(g_lo, stop - L)
        seq_len, seq_start = (stop - start).reshape(-1), start.reshape(-1)
        pool_end = _ss(self.pool_ts, t_ts, side="left")[:, None]
        tgt_items = self.t_item[lo:hi, None]
        neg = self.pool_items[(rng.random((n, negatives)) * pool_end).astype(np.int64)]
        bad = neg == tgt_items
        for _ in range(100):  # a negative is never the target item itself
            if not bad.any():
                break
            rows = np.nonzero(bad)[0]
            neg[bad] = self.pool_items[(rng.random(len(rows)) * pool_end[rows, 0]).astype(np.int64)]
            bad = neg == tgt_items
        cand = np.concatenate([tgt_items, neg], axis=1)
        keep = np.concatenate([np.ones((n, 1), dtype=bool), ~bad], axis=1)  # a pool of only the target: fewer
        perm = rng.permuted(np.tile(np.arange(negatives + 1), (n, 1)), axis=1)
        cand, keep = np.take_along_axis(cand, perm, axis=1), np.take_along_axis(keep, perm, axis=1)
        del neg, bad, perm
        counts = keep.sum(1)
        cand_flat = cand[keep]
        cand_req = np.repeat(np.arange(n), counts)
        cand_item = _ss(self.items_u, cand_flat)
        labels = np.zeros((len(cand_flat), K), dtype=np.int8)
        base = (t_user[cand_req] * self.n_items + cand_item) * nk
        o = np.argsort(base)  # one sort of the queries serves every task (+ kk keeps the order)
        base_s, ts_q = base[o], t_ts[cand_req][o]
        del base
        for k, kk in enumerate(self.task_kind):
            q = base_s + kk
            pos = np.searchsorted(self.key_last, q)
            pos_c = np.minimum(pos, len(self.key_last) - 1)
            found = (pos < len(self.key_last)) & (self.key_last[pos_c] == q)
            labels[o, k] = found & (self.ts_last[pos_c] >= ts_q)
        del base_s, ts_q, o
        req, candc = {}, {}
        for f in C.fields(cfg, "user") + C.fields(cfg, "context"):
            nme = f["name"]
            if nme == "user_id":
                v = self.t_user[lo:hi]
            elif nme in self.t_attr:
                v = self.t_attr[nme][lo:hi]
            else:  # hour of day of the target time
                v = ((t_ts + self.utc * 3600) // 3600) % 24
            req["req." + nme] = v.astype(np.int64)
        for f in C.fields(cfg, "item"):
            nme = f["name"]
            v = cand_flat if nme == "item_id" else self.item_attr[nme][cand_item]
            candc["cand." + nme] = v.astype(np.int64)
        id_bytes, id_off = Columns.encode_ids(
            [f"{u}-{t}-{ln}" for u, t, ln in zip(self.t_user[lo:hi].tolist(), t_ts.tolist(),
                                                  self.t_line[lo:hi].tolist())])
        cand_off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=cand_off[1:])
        return Columns(cfg, id_bytes, id_off, req, seq_start, seq_len, self.seq_raw, cand_off, candc, labels, None,
                       rows=False)


def _ticker(progress):
    import time
    clock = [time.time()]

    def tick(what):
        if progress is not None:
            now = time.time()
            progress(f"{what} ({now - clock[0]:.1f} s)")
            clock[0] = now
    return tick


SPLITS = ("train", "validation", "test")


def build_columns(ev, cfg, negatives=9, seed=0, fractions=(0.8, 0.1), target="first", columns=None,
                  utc_offset_hours=8, progress=None):
    """Events -> {"train", "validation", "test"}: raw-id store.Columns (labels included), in memory.
    `progress`, if given, is called with a line per phase (and its time). For logs whose requests do not
    fit in memory, build_store writes them to disk chunk by chunk."""
    tick = _ticker(progress)
    plan = _Plan(ev, cfg, negatives, seed, fractions, target, columns, utc_offset_hours, tick)
    cols = plan.chunk(0, plan.n, np.random.default_rng([seed, 0x10C5]))
    tick("requests")
    return {s: cols.take(np.arange(plan.cut[i], plan.cut[i + 1])) for i, s in enumerate(SPLITS)}


def build_store(ev, cfg, out, negatives=9, seed=0, fractions=(0.8, 0.1), target="first", columns=None,
                utc_offset_hours=8, chunk=1_000_000, jsonl=("validation", "test"), max_jsonl=None, progress=None):
    """Events -> request stores out/{train,validation,test} (store.Columns.load reads them), built
    `chunk` targets at a time and appended to the stores' files, so memory holds the log's events and
    one chunk, never all requests; also out/<split>.jsonl for the splits in `jsonl` (raw ids, at most
    max_jsonl requests each). Chunk c draws its negatives with the generator [seed, 0x10C5, c].
    Returns {split: requests}."""
    from .store import StoreWriter
    tick = _ticker(progress)
    plan = _Plan(ev, cfg, negatives, seed, fractions, target, columns, utc_offset_hours, tick)
    cfg = plan.cfg
    os.makedirs(out, exist_ok=True)
    # the events' table rows, once (every chunk's sequences point into them)
    seq_rows = StoreWriter.event_rows(cfg, plan.seq_raw)
    if not jsonl:  # the JSON Lines writer needs the raw ids; the stores need only the rows
        plan.seq_raw = {k: v[:0] for k, v in plan.seq_raw.items()}
    plan.ev = ev = None  # every per-event column the chunks need is in the plan
    writers = {s: StoreWriter(os.path.join(out, s), cfg, len(seq_rows["seq.item_id"])) for s in SPLITS}
    js = {}
    for s in jsonl:
        if s not in SPLITS:
            raise LogError(f"jsonl: unknown split '{s}' (train, validation, test)")
        js[s] = [open(os.path.join(out, f"{s}.jsonl.tmp{os.getpid()}"), "w", encoding="utf-8"), 0]
    try:
        for c, lo in enumerate(range(0, plan.n, chunk)):
            hi = min(plan.n, lo + chunk)
            cols = plan.chunk(lo, hi, np.random.default_rng([seed, 0x10C5, c]))
            for i, s in enumerate(SPLITS):
                a, b = max(lo, plan.cut[i]), min(hi, plan.cut[i + 1])
                if a >= b:
                    continue
                part = cols.take(np.arange(a - lo, b - lo))
                writers[s].append(part)
                if s in js:
                    fh, done = js[s]
                    room = len(part) if max_jsonl is None else max(0, min(len(part), max_jsonl - done))
                    for d in part.iter_dicts(0, room):
                        fh.write(json.dumps(d, separators=(",", ":")) + "\n")
                    js[s][1] += room
            tick(f"targets {lo}..{hi - 1} of {plan.n}")
        counts = {s: w.close(seq_rows) for s, w in writers.items()}
        for s, (fh, _) in js.items():
            fh.close()
            os.replace(fh.name, os.path.join(out, f"{s}.jsonl"))
        tick("stores closed")
    finally:
        for fh, _ in js.values():
            if not fh.closed:
                fh.close()
            if os.path.exists(fh.name):
                os.unlink(fh.name)
    return counts


def _search_pairs(g_key, ts_sorted, q_key, q_ts, lo, hi):
    """For each query, lo + (number of entries in [lo, hi) with ts < q_ts); entries sorted by (g_key, ts)."""
    if len(ts_sorted) == 0:
        return lo
    t0 = min(int(ts_sorted.min()), int(np.min(q_ts)))
    span = max(int(ts_sorted.max()), int(np.max(q_ts))) - t0 + 1
    gmax = int(max(g_key.max(), np.max(q_key))) + 1
    if span < (1 << 40) and gmax < (1 << 22):  # one search over (group, time) packed in an int64
        packed = g_key * span + (ts_sorted - t0)
        return _ss(packed, q_key * span + (np.asarray(q_ts) - t0), side="left")
    # a binary search per query, vectorised: ~log2(max group) rounds over all queries at once
    lo, hi = lo.copy(), hi.copy()
    q_ts = np.asarray(q_ts)
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        go_right = active & (ts_sorted[np.minimum(mid, len(ts_sorted) - 1)] < q_ts)
        lo = np.where(go_right, mid + 1, lo)
        hi = np.where(active & ~go_right, mid, hi)


def load_columns(path, cfg, behavior_map=DEFAULT_BEHAVIOR_MAP, negatives=9, seed=0, fractions=(0.8, 0.1),
                 target="first", columns=None, names=None, header=False):
    """read_log + build_columns."""
    ev = read_log(path, behavior_map, columns, names, header)
    return build_columns(ev, cfg, negatives, seed, fractions, target, columns)


def load(path, cfg, behavior_map=DEFAULT_BEHAVIOR_MAP, negatives=9, seed=0, fractions=(0.8, 0.1), target="first",
         columns=None, names=None, header=False):
    """load_columns, as lists of request dicts (docs/request-format.md) per split."""
    out = load_columns(path, cfg, behavior_map, negatives, seed, fractions, target, columns, names, header)
    return {s: list(c.iter_dicts()) for s, c in out.items()}
