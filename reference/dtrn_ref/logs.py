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

Everything after reading is vectorised numpy (sorts, searchsorted, gathers), no Python loop per
event or request. Requests come out as store.Columns whose sequences point into one shared,
user-sorted event array (nothing is copied per request), ready for `Columns.save` (the
memory-mapped training store) or `write_jsonl` (request files). build_columns and build_store work
on in-memory Events; build_store_from_log (`requests --log`) streams the log and builds it shard by
shard of users, so memory holds one shard plus a few bytes per event of log-wide arrays. A target's
negatives come from a counter-based generator keyed by (seed, its data row), so the requests do not
depend on chunks or shards.
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
BLOCK = 16 << 20  # pyarrow read block size (bytes): memory while reading is a few times this


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

    def __init__(self, user, item, kind, ts, line, names, source, attr=None, first_line=1):
        self.user, self.item, self.kind, self.ts, self.line = user, item, kind, ts, line
        self.names, self.source, self.attr = names, source, attr or {}
        self.first_line = first_line  # the line of the first data row (2 with a header)

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
    return Events(cat("user"), cat("item"), cat("kind"), cat("ts"), cat("line"), rd.kind_names, rd.source, attr,
                  1 + int(header))


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


def _targets(user, item, kind, ts, line, task_kinds, mode):
    """Indices of target events, in time order (file order breaks ties)."""
    if mode == "task0":
        tgt = np.flatnonzero(kind == task_kinds[0])
    elif mode == "first":
        cand = np.flatnonzero(np.isin(kind, task_kinds))
        o = cand[np.lexsort((line[cand], ts[cand], item[cand], user[cand]))]
        first = np.ones(len(o), dtype=bool)
        first[1:] = (user[o][1:] != user[o][:-1]) | (item[o][1:] != item[o][:-1])
        tgt = o[first]
    else:
        raise LogError(f"target mode '{mode}': expected one of {list(TARGETS)}")
    return tgt[np.lexsort((line[tgt], ts[tgt]))]


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
    """Values -> (dense int32 codes, unique values)."""
    u, inv = np.unique(a, return_inverse=True)
    return inv.reshape(-1).astype(np.int32 if len(u) < (1 << 31) else np.int64), u


def _narrow(a):
    """An int64 array as int32 when its values fit (the global per-event arrays are kept narrow)."""
    if a.dtype == np.int64 and (len(a) == 0 or (int(a.min()) >= -(1 << 31) and int(a.max()) < (1 << 31))):
        return a.astype(np.int32)
    return a


# ---- counter-based randomness: a target's negatives depend only on (seed, its line), never on chunks
# or shards (splitmix64's finaliser over 64-bit counters)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _mix(x):
    x = np.asarray(x, dtype=np.uint64).copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _uniform(key):
    """uint64 keys -> floats in [0, 1)."""
    return (_mix(key) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _target_keys(seed, line):
    """Per target: a 64-bit key from (seed, its row: line less the header) that its draws count up from."""
    s = _mix(np.uint64(int(seed) % (1 << 64)) ^ np.uint64(0x10C5))
    with np.errstate(over="ignore"):
        return _mix(np.asarray(line).astype(np.uint64) * _GOLD + s)


def _decimal_ids(parts, sep=b"-"):
    """Request ids f"{a}-{b}-{c}" for int64 arrays a, b, c, vectorised: (uint8 bytes, int64 offsets),
    byte for byte what Columns.encode_ids makes of the Python strings."""
    n = len(parts[0])
    mags, negs, lens = [], [], []
    for a in parts:
        a = np.asarray(a, dtype=np.int64)
        neg = a < 0
        with np.errstate(over="ignore"):
            m = np.where(neg, np.uint64(0) - a.astype(np.uint64), a.astype(np.uint64))
        nd = np.ones(n, dtype=np.int64)
        for k in range(1, 20):
            nd += m >= np.uint64(10 ** k)
        mags.append(m)
        negs.append(neg)
        lens.append(nd + neg)
    total = sum(lens) + (len(parts) - 1)
    off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(total, out=off[1:])
    buf = np.empty(int(off[-1]), dtype=np.uint8)
    pos = off[:-1].copy()
    for j, (m, neg, ln) in enumerate(zip(mags, negs, lens)):
        buf[pos[neg]] = ord("-")
        end = pos + ln - 1  # the last digit
        k, live, m = 0, np.arange(n), m.copy()
        while live.size:
            buf[end[live] - k] = (m[live] % np.uint64(10)).astype(np.uint8) + 48
            m[live] //= np.uint64(10)
            k += 1
            live = live[m[live] > 0]
        pos = pos + ln
        if j < len(parts) - 1:
            buf[pos] = sep[0]
            pos = pos + 1
    return buf, off


class _Meta:
    """What _check_config reads of a log: the mapped names and attribute fields."""

    def __init__(self, names, attr_names):
        self.names, self.attr = names, dict.fromkeys(attr_names)


class _Global:
    """The log-wide part of a build (everything else depends only on one user's events): the pool the
    negatives are drawn from (every event's item in time order, file order breaking ties; per second,
    how many events come before it), each item's values on its first event, the log's first second and
    the split's cuts. Built from every event's (ts, item, item attributes), in file order."""

    def __init__(self, ts, item, item_attr, block=1 << 22):
        # (transient memory: about 30 bytes per event, the narrow inputs included)
        self.items_u = np.unique(item).astype(np.int64)
        self.n_items = n_items = len(self.items_u)
        code_t = np.int32 if n_items < (1 << 31) else np.int64
        codes = np.empty(len(item), dtype=code_t)
        for a in range(0, len(item), block):  # dense item codes, a block at a time
            codes[a:a + block] = _ss(self.items_u, item[a:a + block])
        by_time = np.argsort(ts, kind="stable")
        ts_s = ts[by_time]
        edges = np.flatnonzero(ts_s[1:] != ts_s[:-1]) + 1
        starts = np.concatenate([[0], edges]).astype(np.int64)
        self.secs = ts_s[starts].astype(np.int64)  # distinct seconds, ascending
        self.before = np.append(starts, len(ts_s))  # events before each second (+ the total)
        self.min_ts = int(ts_s[0]) if len(ts_s) else 0
        del ts_s, edges, starts
        self.pool = codes[by_time]  # dense item codes in time order
        del codes
        first = np.full(n_items, len(self.pool), dtype=np.int64)  # each item's first position in the pool
        for a in range(0, len(self.pool), block):
            np.minimum.at(first, self.pool[a:a + block], np.arange(a, min(a + block, len(self.pool))))
        ev_first = by_time[first]
        del by_time, first
        self.item_attr = {k: v[ev_first].astype(np.int64) for k, v in item_attr.items()}  # per dense item

    def pool_end(self, t):
        """Events strictly before second t (the negatives' pool of a target at t)."""
        return self.before[np.searchsorted(self.secs, t, side="left")]

    def set_cuts(self, t_secs, t_counts, fractions):
        """The split from every target's second (distinct, ascending) and count: the first fractions[0]
        of targets train, ... and a second never straddles two splits."""
        n = int(t_counts.sum())
        self.t_secs = t_secs
        self.t_before = np.concatenate([[0], np.cumsum(t_counts)]).astype(np.int64)
        cut = [0]
        for fr in np.cumsum(fractions):
            j = int(round(fr * n))
            if 0 < j < n:  # to the end of the second of target j-1
                j = int(self.t_before[np.searchsorted(self.t_before, j - 1, side="right")])
            cut.append(max(cut[-1], j))
        cut.append(n)
        self.cut, self.n_targets = cut, n

    def split_of(self, t_ts):
        """Split index (0 train, 1 validation, 2 test) of targets at seconds t_ts."""
        below = self.t_before[np.searchsorted(self.t_secs, t_ts, side="left")]
        return np.searchsorted(np.asarray(self.cut), below, side="right") - 1


def _hist(t):
    """Distinct values (ascending) and their counts."""
    if len(t) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    s = np.sort(t)
    edges = np.flatnonzero(s[1:] != s[:-1]) + 1
    starts = np.concatenate([[0], edges])
    return s[starts].astype(np.int64), np.diff(np.append(starts, len(s)))


def _merge_hist(parts):
    secs = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    cnts = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    u, inv = np.unique(secs, return_inverse=True)
    return u, np.bincount(inv.reshape(-1), weights=cnts, minlength=len(u)).astype(np.int64)


class _Settings:
    def __init__(self, cfg, meta, negatives, seed, fractions, target, columns, utc_offset_hours, first_line=1):
        cfg = C.load_config(cfg)
        self.first_line = first_line
        cmap = parse_columns(columns or DEFAULT_COLUMNS)
        _check_config(cfg, meta, cmap)
        if negatives < 0:
            raise LogError(f"negatives must be >= 0, got {negatives}")
        if target not in TARGETS:
            raise LogError(f"target mode '{target}': expected one of {list(TARGETS)}")
        self.cfg, self.negatives, self.seed, self.utc = cfg, negatives, seed, utc_offset_hours
        self.fractions, self.target = fractions, target
        kind_of = {n: i for i, n in enumerate(meta.names)}
        self.beh_kind = np.asarray([kind_of[b] for b in cfg["behaviors"]], dtype=np.int64)
        self.task_kind = [kind_of[t] for t in cfg["tasks"]]
        self.nk = len(meta.names)
        self.item_attrs = [f["name"] for f in C.fields(cfg, "item") if f["name"] in meta.attr]

    def targets(self, user, item, kind, ts, line, g):
        """A shard's targets (indices into its events), time-ordered; the log's first second is warm-up."""
        tgt = _targets(user, item, kind, ts, line, self.task_kind, self.target)
        return tgt[ts[tgt] > g.min_ts]


class _Plan:
    """One shard's build: every user's events are all in one shard, so sequences and labels need only
    the shard; the negatives' pool, the items' values and the split come from the _Global.
    chunk(lo, hi) builds the shard's targets lo .. hi-1 (time-ordered)."""

    def __init__(self, st, g, user, item, kind, ts, line, attr, tgt):
        cfg, nk = st.cfg, st.nk
        self.st, self.g, self.cfg, self.nk = st, g, cfg, nk
        uidx, users_u = _dense_index(user)
        kind = kind.astype(np.int64)
        # Events by (user, kind), time-ordered (file order breaks ties): each sequence is a slice.
        order = np.lexsort((line, ts, kind, uidx))
        self.g_key = uidx[order].astype(np.int64) * nk + kind[order]
        self.ts_sorted = ts[order]
        self.seq_raw = {"seq.item_id": item[order]}
        for f in C.seq_field_defs(cfg):
            self.seq_raw["seq." + f["name"]] = attr[f["name"]][order]
        del order
        # each (user, kind) group's first event: group q is g_key's slice group_start[q] .. group_start[q + 1]
        self.group_start = np.searchsorted(self.g_key, np.arange(len(users_u) * nk + 1))
        del users_u
        # labels: per (user, item, task kind) the time of the user's last such event
        is_task = np.flatnonzero(np.isin(kind, st.task_kind))
        iidx = _ss(g.items_u, item[is_task])
        key_ev = (uidx[is_task].astype(np.int64) * g.n_items + iidx) * nk + kind[is_task]
        del iidx
        ts_task = ts[is_task]
        o2 = np.lexsort((ts_task, key_ev))
        key_s, ts_s = key_ev[o2], ts_task[o2]
        del key_ev, ts_task, o2
        last = np.ones(len(key_s), dtype=bool)
        last[:-1] = key_s[1:] != key_s[:-1]
        self.key_last, self.ts_last = key_s[last], ts_s[last]
        del key_s, ts_s, last, is_task
        self.n = len(tgt)
        self.t_ts = ts[tgt]
        self.t_uidx, self.t_user, self.t_line = uidx[tgt], user[tgt], line[tgt]
        self.t_item = _ss(g.items_u, item[tgt]).astype(g.pool.dtype)  # dense item codes
        self.t_attr = {k: v[tgt] for k, v in attr.items()
                       if k in {f["name"] for f in C.fields(cfg, "user") + C.fields(cfg, "context")}}
        s = g.split_of(self.t_ts)
        self.cut = [int(np.searchsorted(s, i, side="left")) for i in range(3)] + [self.n]  # splits are contiguous

    def chunk(self, lo, hi):
        """Raw-id Columns of targets lo .. hi-1 (their sequences point into self.seq_raw)."""
        from .store import Columns
        cfg, nk, L, K, g = self.cfg, self.nk, self.cfg["L"], len(self.cfg["tasks"]), self.g
        t_ts = self.t_ts[lo:hi]
        n, negatives = len(t_ts), self.st.negatives
        t_user = self.t_uidx[lo:hi].astype(np.int64)
        q_key = t_user[:, None] * nk + self.st.beh_kind[None, :]                          # [n, B]
        g_lo, g_hi = self.group_start[q_key], self.group_start[q_key + 1]
        stop = _search_pairs(self.g_key, self.ts_sorted, q_key, np.broadcast_to(t_ts[:, None], q_key.shape),
                             g_lo, g_hi)
        start = np.maximum(g_lo, stop - L)
        seq_len, seq_start = (stop - start).reshape(-1), start.reshape(-1)
        del q_key, g_lo, g_hi, stop, start
        pool_end = g.pool_end(t_ts)[:, None]
        tgt_items = self.t_item[lo:hi, None]
        key = _target_keys(self.st.seed, self.t_line[lo:hi] - self.st.first_line)        # [n]
        step = np.arange(1, negatives + 1, dtype=np.uint64) * _GOLD
        with np.errstate(over="ignore"):
            neg = g.pool[(_uniform(key[:, None] + step[None, :]) * pool_end).astype(np.int64)]
            bad = neg == tgt_items
            for r in range(1, 101):  # a negative is never the target item itself
                if not bad.any():
                    break
                rows, cols = np.nonzero(bad)
                draw = _uniform(key[rows] + (np.uint64(r * (negatives + 1)) + cols.astype(np.uint64) + np.uint64(1))
                                * _GOLD)
                neg[rows, cols] = g.pool[(draw * pool_end[rows, 0]).astype(np.int64)]
                bad = neg == tgt_items
            # the draws are exchangeable, so the target at a uniform slot among them is a uniform order
            at = (_uniform(key ^ np.uint64(0x5DEECE66D)) * (negatives + 1)).astype(np.int64)[:, None]
        slot = np.arange(negatives + 1)[None, :]
        if negatives:
            src = np.maximum(np.where(slot < at, slot, slot - 1), 0)
            cand = np.where(slot == at, tgt_items, np.take_along_axis(neg, src, axis=1))
            keep = (slot == at) | ~np.take_along_axis(bad, src, axis=1)  # a pool of only the target: fewer
            del src
        else:
            cand, keep = tgt_items, np.ones((n, 1), dtype=bool)
        del neg, bad, key
        counts = keep.sum(1)
        cand_item = cand[keep].astype(np.int64)  # dense item codes
        del cand, keep
        cand_flat = g.items_u[cand_item]
        cand_req = np.repeat(np.arange(n), counts)
        labels = np.zeros((len(cand_flat), K), dtype=np.int8)
        base = (t_user[cand_req] * g.n_items + cand_item) * nk
        o = np.argsort(base)  # one sort of the queries serves every task (+ kk keeps the order)
        base_s, ts_q = base[o], t_ts[cand_req][o]
        del base, cand_req
        for k, kk in enumerate(self.st.task_kind):
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
                v = ((t_ts + self.st.utc * 3600) // 3600) % 24
            req["req." + nme] = v.astype(np.int64)
        for f in C.fields(cfg, "item"):
            nme = f["name"]
            v = cand_flat if nme == "item_id" else g.item_attr[nme][cand_item]
            candc["cand." + nme] = v.astype(np.int64)
        id_bytes, id_off = _decimal_ids([self.t_user[lo:hi], t_ts, self.t_line[lo:hi]])
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
            import resource
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
            progress(f"{what} ({now - clock[0]:.1f} s; peak memory so far {peak:.0f} MiB)")
            clock[0] = now
    return tick


SPLITS = ("train", "validation", "test")
NB = 1024  # user buckets: shard s holds the buckets [ceil(s * NB / S), ceil((s + 1) * NB / S))
SHARD_EVENTS = 2_000_000  # default events per shard


def _bucket(user):
    """User -> bucket in [0, NB): a hash, so that shards are balanced whatever the ids look like."""
    return (_mix(np.asarray(user).astype(np.uint64) + _GOLD) % np.uint64(NB)).astype(np.int16)


def _in_memory(ev, cfg, negatives, seed, fractions, target, columns, utc_offset_hours, tick):
    """Settings, _Global and the one-shard _Plan of in-memory Events."""
    st = _Settings(cfg, ev, negatives, seed, fractions, target, columns, utc_offset_hours,
                   getattr(ev, "first_line", 1))
    if len(ev) == 0:
        raise LogError(f"{ev.source}: no events after applying the behavior map")
    g = _Global(ev.ts, ev.item, {k: ev.attr[k] for k in st.item_attrs})
    tick("time-ordered pool of items")
    tgt = st.targets(ev.user, ev.item, ev.kind, ev.ts, ev.line, g)
    if len(tgt) == 0:
        raise LogError(f"{ev.source}: no target events after the log's first second")
    g.set_cuts(*_hist(ev.ts[tgt]), fractions)
    plan = _Plan(st, g, ev.user, ev.item, ev.kind, ev.ts, ev.line, ev.attr, tgt)
    tick(f"{plan.n} targets; sequences and label look-ups")
    return st, g, plan


def build_columns(ev, cfg, negatives=9, seed=0, fractions=(0.8, 0.1), target="first", columns=None,
                  utc_offset_hours=8, progress=None):
    """Events -> {"train", "validation", "test"}: raw-id store.Columns (labels included), in memory, in
    time order. `progress`, if given, is called with a line per phase (and its time). For logs whose
    requests do not fit in memory, build_store_from_log writes them to disk shard by shard."""
    tick = _ticker(progress)
    st, g, plan = _in_memory(ev, cfg, negatives, seed, fractions, target, columns, utc_offset_hours, tick)
    cols = plan.chunk(0, plan.n)
    tick("requests")
    return {s: cols.take(np.arange(plan.cut[i], plan.cut[i + 1])) for i, s in enumerate(SPLITS)}


class _Out:
    """The stores out/{train,validation,test} and the JSON Lines files, written shard by shard."""

    def __init__(self, cfg, out, jsonl, max_jsonl):
        from .store import StoreWriter
        self.cfg, self.out, self.max_jsonl = cfg, out, max_jsonl
        os.makedirs(out, exist_ok=True)
        for s in jsonl:
            if s not in SPLITS:
                raise LogError(f"jsonl: unknown split '{s}' (train, validation, test)")
        self.writers = {s: StoreWriter(os.path.join(out, s), cfg) for s in SPLITS}
        self.js = {s: [open(os.path.join(out, f"{s}.jsonl.tmp{os.getpid()}"), "w", encoding="utf-8"), 0]
                   for s in jsonl}

    def shard(self, plan, chunk, tick, what=""):
        from .store import StoreWriter
        rows = StoreWriter.event_rows(self.cfg, plan.seq_raw)
        for w in self.writers.values():
            w.begin_shard(rows)
        if not self.js:  # the JSON Lines writer needs the raw ids; the stores need only the rows
            plan.seq_raw = {k: v[:0] for k, v in plan.seq_raw.items()}
        for lo in range(0, plan.n, chunk):
            hi = min(plan.n, lo + chunk)
            cols = plan.chunk(lo, hi)
            for i, s in enumerate(SPLITS):
                a, b = max(lo, plan.cut[i]), min(hi, plan.cut[i + 1])
                if a >= b:
                    continue
                part = cols.take(np.arange(a - lo, b - lo)) if (a, b) != (lo, hi) else cols
                self.writers[s].append(part)
                if s in self.js:
                    fh, done = self.js[s]
                    room = len(part) if self.max_jsonl is None else max(0, min(len(part), self.max_jsonl - done))
                    for d in part.iter_dicts(0, room):
                        fh.write(json.dumps(d, separators=(",", ":")) + "\n")
                    self.js[s][1] += room
            del cols
            tick(f"{what}targets {lo}..{hi - 1} of {plan.n}")
        for w in self.writers.values():
            w.end_shard()

    def close(self):
        counts = {s: w.close() for s, w in self.writers.items()}
        for s, (fh, _) in self.js.items():
            fh.close()
            os.replace(fh.name, os.path.join(self.out, f"{s}.jsonl"))
        return counts

    def cleanup(self):
        for fh, _ in self.js.values():
            if not fh.closed:
                fh.close()
            if os.path.exists(fh.name):
                os.unlink(fh.name)


def build_store(ev, cfg, out, negatives=9, seed=0, fractions=(0.8, 0.1), target="first", columns=None,
                utc_offset_hours=8, chunk=200_000, jsonl=("validation", "test"), max_jsonl=None, progress=None):
    """In-memory Events -> request stores out/{train,validation,test} (store.Columns.load reads them),
    built `chunk` targets at a time and appended to the stores' files; also out/<split>.jsonl for the
    splits in `jsonl` (raw ids, at most max_jsonl requests each). The same requests, in the same order,
    as build_columns. Returns {split: requests}."""
    tick = _ticker(progress)
    st, g, plan = _in_memory(ev, cfg, negatives, seed, fractions, target, columns, utc_offset_hours, tick)
    o = _Out(st.cfg, out, jsonl, max_jsonl)
    try:
        o.shard(plan, chunk, tick)
        counts = o.close()
        tick("stores closed")
    finally:
        o.cleanup()
    return counts


class _Spill:
    """A log's events on disk, grouped by user bucket: each block of the log is written (per column,
    one raw file each) in bucket order, with its per-bucket counts; load(b0, b1) reads back the events
    of buckets b0 .. b1-1 (every block's slice), in block order."""
    COLS = {"user": np.int64, "item": np.int64, "kind": np.int8, "ts": np.int64, "line": np.int64}

    def __init__(self, folder, attr_names):
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self.cols = dict(self.COLS, **{"attr." + a: np.int64 for a in attr_names})
        self.fh = {c: open(self._p(c), "wb") for c in self.cols}
        self.counts = []

    def _p(self, c):
        return os.path.join(self.folder, c + ".bin")

    def add(self, b):
        bucket = _bucket(b["user"])
        o = np.argsort(bucket, kind="stable")
        for c, dt in self.cols.items():
            a = b["attr"][c[5:]] if c.startswith("attr.") else b[c]
            np.ascontiguousarray(a[o], dtype=dt).tofile(self.fh[c])
        self.counts.append(np.bincount(bucket, minlength=NB).astype(np.int64))

    def finish(self):
        for f in self.fh.values():
            f.close()
        cnt = np.asarray(self.counts, dtype=np.int64).reshape(-1, NB)
        self.base = np.concatenate([[0], np.cumsum(cnt.sum(1))])[:-1]  # first event of each block
        self.off = np.concatenate([np.zeros((len(cnt), 1), np.int64), np.cumsum(cnt, axis=1)], axis=1)
        self.per_bucket = cnt.sum(0)

    def load(self, b0, b1, cols):
        out = {}
        for c in cols:
            dt = np.dtype(self.cols[c])
            parts = []
            with open(self._p(c), "rb") as fh:
                for blk in range(len(self.base)):
                    lo, hi = int(self.off[blk, b0]), int(self.off[blk, b1])
                    if hi > lo:
                        fh.seek((int(self.base[blk]) + lo) * dt.itemsize)
                        parts.append(np.fromfile(fh, dtype=dt, count=hi - lo))
            out[c] = np.concatenate(parts) if parts else np.zeros(0, dt)
        return out


def build_store_from_log(path, cfg, out, behavior_map=DEFAULT_BEHAVIOR_MAP, columns=None, names=None,
                         header=False, negatives=9, seed=0, fractions=(0.8, 0.1), target="first",
                         utc_offset_hours=8, chunk=200_000, shards=0, jsonl=("validation", "test"), max_jsonl=None,
                         progress=None):
    """A CSV log -> request stores out/{train,validation,test} and JSON Lines (as build_store), with
    memory bounded by one shard of users plus a few bytes per event for the log-wide pool.

    The log is read block by block; each block's events are spilled to out/.spill<pid>/ grouped by
    user bucket (a hash of the user id, NB buckets), and each event's (time, item, item attributes)
    kept, narrowed to int32 where they fit, for the _Global (pool, items, first second). Shards are
    runs of buckets (`shards`, or one per SHARD_EVENTS events); a first pass over them finds the
    targets (and so the split's cuts), a second builds each shard's requests and appends them.

    Every request is the same whatever the shard count (sequences and labels need only the user's
    events; negatives come from a counter-based generator keyed by (seed, the target's row)); with one
    shard the requests are in time order within each split, with several they are in shard order
    and in time order within a shard (training shuffles). Returns {split: requests}."""
    import shutil
    tick = _ticker(progress)
    rd = _Reader(path, behavior_map, columns, names, header)
    st = _Settings(cfg, _Meta(rd.kind_names, rd.attrs), negatives, seed, fractions, target, columns,
                   utc_offset_hours, 1 + int(header))
    tmp = os.path.join(out, f".spill{os.getpid()}")
    os.makedirs(out, exist_ok=True)
    o = None
    try:
        spill = _Spill(tmp, list(rd.attrs))
        g_ts, g_item, g_attr, rows = [], [], {k: [] for k in st.item_attrs}, 0
        for b in rd.batches():
            spill.add(b)
            g_ts.append(_narrow(b["ts"]))
            g_item.append(_narrow(b["item"]))
            for k in st.item_attrs:
                g_attr[k].append(_narrow(b["attr"][k]))
            rows += len(b["ts"])
            del b
        spill.finish()
        tick(f"read and spilled {rows} events")
        if rows == 0:
            raise LogError(f"{rd.source}: no events after applying the behavior map")
        cat = lambda xs: np.concatenate(xs) if len(xs) > 1 else xs[0]  # noqa: E731
        ts_all, item_all = cat(g_ts), cat(g_item)
        del g_ts, g_item
        attr_all = {k: cat(v) for k, v in g_attr.items()}
        del g_attr
        g = _Global(ts_all, item_all, attr_all)
        del ts_all, item_all, attr_all
        tick(f"time-ordered pool of {rows} events, {g.n_items} items")
        S = int(shards) if shards else max(1, -(-rows // SHARD_EVENTS))
        S = max(1, min(S, NB))
        bounds = [-(-s * NB // S) for s in range(S + 1)]
        # pass 1: every shard's targets (their seconds give the split's cuts)
        tgts, hists = [], []
        for s in range(S):
            e = spill.load(bounds[s], bounds[s + 1], ("user", "item", "kind", "ts", "line"))
            t = st.targets(e["user"], e["item"], e["kind"], e["ts"], e["line"], g)
            tgts.append(t.astype(np.int32) if len(e["ts"]) < (1 << 31) else t)
            hists.append(_hist(e["ts"][t]))
            del e, t
        if sum(len(t) for t in tgts) == 0:
            raise LogError(f"{rd.source}: no target events after the log's first second")
        g.set_cuts(*_merge_hist(hists), fractions)
        del hists
        tick(f"{g.n_targets} targets in {S} shard(s)")
        # pass 2: each shard's requests
        o = _Out(st.cfg, out, jsonl, max_jsonl)
        for s in range(S):
            e = spill.load(bounds[s], bounds[s + 1], list(spill.cols))
            attr = {c[5:]: e.pop(c) for c in list(e) if c.startswith("attr.")}
            plan = _Plan(st, g, e["user"], e["item"], e["kind"], e["ts"], e["line"], attr, tgts[s])
            tgts[s] = None
            del e, attr
            tick(f"shard {s + 1}/{S}: {plan.n} targets; sequences and label look-ups")
            o.shard(plan, chunk, tick, f"shard {s + 1}/{S}: " if S > 1 else "")
            del plan
        counts = o.close()
        tick("stores closed")
    finally:
        if o is not None:
            o.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
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
