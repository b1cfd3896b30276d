"""Model config: load, fill defaults, validate strictly (shared/spec/dtrn-model.md, "Config keys").

`load_config` returns a plain dict with every default filled in; that dict is what
checkpoints carry as `dtrn_config`. Every rejected config raises ConfigError naming the key.
"""
import copy
import json
import math
import re
from collections import OrderedDict

GROUPS = ("user", "context", "item")
KINDS = ("sparse", "dense")
POOLINGS = ("target", "mean")
HEADS = ("towers", "mmoe", "ple")

TOP_KEYS = ("name", "d", "tasks", "behaviors", "L", "blocks", "heads", "d_ff", "fields", "pooling",
            "mtl", "experts", "towers", "hyper_dim", "hyper_hidden", "trm_hidden", "seq_fields", "dropout")
REQUIRED_TOP = ("d", "tasks", "behaviors", "L", "blocks", "heads", "d_ff", "fields", "mtl", "towers")
SPARSE_KEYS = ("name", "group", "kind", "table", "vocab", "hashed")
DENSE_KEYS = ("name", "group", "kind", "width")
EXPERT_KEYS = ("shared", "per_task", "hidden")
# Names become tensor-name components (emb.<table>.weight): keep them free of dots and spaces.
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INT64_MAX = 2**63 - 1


class ConfigError(ValueError):
    """A config that is malformed or contradicts itself; the message names the key."""


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _pos_int(v, key, minimum=1, maximum=INT64_MAX):
    if not _is_int(v):
        raise ConfigError(f"config key '{key}': expected an integer, got {json.dumps(v)}")
    if v < minimum or v > maximum:
        raise ConfigError(f"config key '{key}': {v} is out of range [{minimum}, {maximum}]")
    return v


def _name(v, key):
    if not isinstance(v, str) or not NAME_RE.match(v):
        raise ConfigError(f"config key '{key}': expected a name matching [A-Za-z_][A-Za-z0-9_]*, got {json.dumps(v)}")
    return v


def _names(v, key):
    if not isinstance(v, list) or not v:
        raise ConfigError(f"config key '{key}': expected a non-empty array of names")
    out = [_name(x, f"{key}[{i}]") for i, x in enumerate(v)]
    seen = set()
    for i, x in enumerate(out):
        if x in seen:
            raise ConfigError(f"config key '{key}[{i}]': duplicate name '{x}'")
        seen.add(x)
    return out


def _widths(v, key, allow_empty):
    if not isinstance(v, list) or (not v and not allow_empty):
        raise ConfigError(f"config key '{key}': expected {'an' if allow_empty else 'a non-empty'} array of layer widths")
    return [_pos_int(x, f"{key}[{i}]", maximum=1 << 20) for i, x in enumerate(v)]


def _check_keys(obj, allowed, where):
    if not isinstance(obj, dict):
        raise ConfigError(f"config key '{where}': expected an object")
    for k in obj:
        if k not in allowed:
            raise ConfigError(f"config key '{where + '.' if where else ''}{k}': unknown key")


def _field(f, i, seen):
    where = f"fields[{i}]"
    if not isinstance(f, dict):
        raise ConfigError(f"config key '{where}': expected an object")
    for req in ("name", "group", "kind"):
        if req not in f:
            raise ConfigError(f"config key '{where}.{req}': missing")
    name = _name(f["name"], f"{where}.name")
    where = f"fields[{i}] ('{name}')"
    if name in seen:
        raise ConfigError(f"config key '{where}.name': duplicate field name '{name}'")
    if f["group"] not in GROUPS:
        raise ConfigError(f"config key '{where}.group': expected one of {list(GROUPS)}, got {json.dumps(f['group'])}")
    if f["kind"] not in KINDS:
        raise ConfigError(f"config key '{where}.kind': expected one of {list(KINDS)}, got {json.dumps(f['kind'])}")
    out = {"name": name, "group": f["group"], "kind": f["kind"]}
    if f["kind"] == "sparse":
        for k in f:
            if k not in SPARSE_KEYS:
                raise ConfigError(f"config key '{where}.{k}': " + (
                    "a sparse field has no width" if k == "width" else "unknown key"))
        if "vocab" not in f:
            raise ConfigError(f"config key '{where}.vocab': missing (a sparse field needs its vocabulary size)")
        out["table"] = _name(f.get("table", name), f"{where}.table")
        out["vocab"] = _pos_int(f["vocab"], f"{where}.vocab", maximum=1 << 40)
        hashed = f.get("hashed", False)
        if not isinstance(hashed, bool):
            raise ConfigError(f"config key '{where}.hashed': expected true or false")
        out["hashed"] = hashed
    else:
        for k in f:
            if k not in DENSE_KEYS:
                raise ConfigError(f"config key '{where}.{k}': " + (
                    "a dense field has no embedding table" if k in ("table", "vocab", "hashed") else "unknown key"))
        if "width" not in f:
            raise ConfigError(f"config key '{where}.width': missing (a dense field needs its width)")
        out["width"] = _pos_int(f["width"], f"{where}.width", maximum=1 << 20)
    return out


def load_config(src):
    """Path, JSON text or dict -> validated dict with every default filled in."""
    if isinstance(src, dict):
        raw = copy.deepcopy(src)
    else:
        text = str(src)
        if text.lstrip().startswith("{"):
            where = "<config text>"
        else:
            where = text
            try:
                with open(text, encoding="utf-8") as fh:
                    text = fh.read()
            except OSError as e:
                raise ConfigError(f"cannot read config '{where}': {e.strerror}") from None
        try:
            raw = loads_strict(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config '{where}': invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
        except ValueError as e:
            raise ConfigError(f"config '{where}': {e}") from None
    return _validate(raw)


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key '{k}': appears twice in one object")
        out[k] = v
    return out


def _no_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(text):
    """json.loads that rejects NaN/Infinity literals and duplicate keys (configs and requests alike)."""
    return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)


def _validate(raw):
    _check_keys(raw, TOP_KEYS, "")
    for k in REQUIRED_TOP:
        if k not in raw:
            raise ConfigError(f"config key '{k}': missing")
    cfg = OrderedDict()
    if "name" in raw:
        if not isinstance(raw["name"], str):
            raise ConfigError("config key 'name': expected a string")
        cfg["name"] = raw["name"]
    d = cfg["d"] = _pos_int(raw["d"], "d", maximum=1 << 16)
    cfg["tasks"] = _names(raw["tasks"], "tasks")
    cfg["behaviors"] = _names(raw["behaviors"], "behaviors")
    cfg["L"] = _pos_int(raw["L"], "L", maximum=1 << 20)
    cfg["blocks"] = _pos_int(raw["blocks"], "blocks", maximum=64)
    heads = cfg["heads"] = _pos_int(raw["heads"], "heads", maximum=d)
    if d % heads != 0:
        raise ConfigError(f"config key 'heads': d = {d} is not divisible by heads = {heads}")
    cfg["d_ff"] = _pos_int(raw["d_ff"], "d_ff", maximum=1 << 20)

    if not isinstance(raw["fields"], list) or not raw["fields"]:
        raise ConfigError("config key 'fields': expected a non-empty array of field objects")
    fields, seen = [], set()
    for i, f in enumerate(raw["fields"]):
        fields.append(_field(f, i, seen))
        seen.add(fields[-1]["name"])
    cfg["fields"] = fields
    items = [f for f in fields if f["group"] == "item"]
    if not items or items[0]["name"] != "item_id":
        raise ConfigError("config key 'fields': the first item field must be 'item_id'")
    if items[0]["kind"] != "sparse":
        raise ConfigError("config key 'fields' ('item_id').kind: item_id must be a sparse field")
    tabs = {}
    for i, f in enumerate(fields):
        if f["kind"] != "sparse":
            continue
        t = tabs.setdefault(f["table"], (f["vocab"], f["hashed"], f["name"]))
        if (t[0], t[1]) != (f["vocab"], f["hashed"]):
            raise ConfigError(
                f"config key 'fields[{i}] ('{f['name']}').table': table '{f['table']}' is shared with field "
                f"'{t[2]}' but vocab/hashed differ ({f['vocab']}/{str(f['hashed']).lower()} vs "
                f"{t[0]}/{str(t[1]).lower()})")

    pooling = raw.get("pooling", "target")
    if pooling not in POOLINGS:
        raise ConfigError(f"config key 'pooling': expected one of {list(POOLINGS)}, got {json.dumps(pooling)}")
    cfg["pooling"] = pooling
    mtl = raw["mtl"]
    if mtl not in HEADS:
        raise ConfigError(f"config key 'mtl': expected one of {list(HEADS)}, got {json.dumps(mtl)}")
    cfg["mtl"] = mtl
    cfg["experts"] = _experts(raw.get("experts"), mtl)
    cfg["towers"] = _widths(raw["towers"], "towers", allow_empty=True)

    n = len(fields) + len(cfg["behaviors"])
    cfg["hyper_dim"] = _pos_int(raw.get("hyper_dim", d), "hyper_dim", maximum=1 << 16)
    cfg["hyper_hidden"] = _pos_int(raw.get("hyper_hidden", 2 * d), "hyper_hidden", maximum=1 << 16)
    cfg["trm_hidden"] = _pos_int(raw.get("trm_hidden", math.ceil(n / 2)), "trm_hidden", maximum=1 << 16)
    cfg["seq_fields"] = _seq_fields(raw.get("seq_fields", []), fields)
    dropout = raw.get("dropout", 0.0)
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not (0.0 <= dropout < 1.0):
        raise ConfigError(f"config key 'dropout': expected a number in [0, 1), got {json.dumps(dropout)}")
    cfg["dropout"] = float(dropout)
    return dict(cfg)


def _seq_fields(v, fields):
    """Names of item sparse fields (other than item_id) that every behaviour event also carries."""
    if not isinstance(v, list):
        raise ConfigError(f"config key 'seq_fields': expected an array of item field names, got {json.dumps(v)}")
    by_name = {f["name"]: f for f in fields}
    out = []
    for i, n in enumerate(v):
        where = f"seq_fields[{i}]"
        _name(n, where)
        f = by_name.get(n)
        if f is None:
            raise ConfigError(f"config key '{where}': '{n}' is not a field of the config")
        if f["group"] != "item" or f["kind"] != "sparse":
            raise ConfigError(f"config key '{where}': '{n}' is a {f['group']} {f['kind']} field; "
                              "seq_fields names item sparse fields")
        if n == "item_id":
            raise ConfigError(f"config key '{where}': item_id is every event's own id; seq_fields names the "
                              "other item fields an event carries")
        if n in out:
            raise ConfigError(f"config key '{where}': duplicate name '{n}'")
        out.append(n)
    return out


def _experts(e, mtl):
    if mtl == "towers":
        if e is None:
            return {"shared": 0, "per_task": 0, "hidden": []}
        _check_keys(e, EXPERT_KEYS, "experts")
        if e.get("shared", 0) != 0 or e.get("per_task", 0) != 0 or e.get("hidden", []) != []:
            raise ConfigError("config key 'experts': the 'towers' head has no experts (omit 'experts')")
        return {"shared": 0, "per_task": 0, "hidden": []}
    if e is None:
        raise ConfigError(f"config key 'experts': missing (the '{mtl}' head needs experts)")
    _check_keys(e, EXPERT_KEYS, "experts")
    if "hidden" not in e:
        raise ConfigError("config key 'experts.hidden': missing")
    shared = _pos_int(e.get("shared", 0), "experts.shared", minimum=0, maximum=1024)
    per_task = _pos_int(e.get("per_task", 0), "experts.per_task", minimum=0, maximum=1024)
    if mtl == "mmoe":
        if per_task != 0:
            raise ConfigError("config key 'experts.per_task': the 'mmoe' head has only shared experts (per_task must be 0)")
        if shared < 1:
            raise ConfigError("config key 'experts.shared': the 'mmoe' head needs at least one shared expert")
    elif shared + per_task < 1:
        raise ConfigError("config key 'experts': the 'ple' head needs shared + per_task > 0")
    return {"shared": shared, "per_task": per_task, "hidden": _widths(e["hidden"], "experts.hidden", allow_empty=False)}


# ---- helpers over a filled config -------------------------------------------------------------

def fields(cfg, group=None, kind=None):
    """Field dicts in config order, optionally filtered by group and/or kind."""
    return [f for f in cfg["fields"] if (group is None or f["group"] == group) and (kind is None or f["kind"] == kind)]


def num_fields(cfg):
    """n = F + B: the TRM's field count."""
    return len(cfg["fields"]) + len(cfg["behaviors"])


def tables(cfg):
    """OrderedDict table name -> {"vocab", "hashed"}, ordered by first use in the field list."""
    out = OrderedDict()
    for f in cfg["fields"]:
        if f["kind"] == "sparse" and f["table"] not in out:
            out[f["table"]] = {"vocab": f["vocab"], "hashed": f["hashed"]}
    return out


def item_table(cfg):
    """Name of item_id's table (it also embeds every behaviour sequence)."""
    return fields(cfg, "item")[0]["table"]


def n_ln(cfg):
    return 2 * cfg["blocks"]


def num_experts(cfg):
    """Total experts: mmoe E_s; ple K*E_t + E_s; towers 0."""
    e = cfg["experts"]
    if cfg["mtl"] == "ple":
        return len(cfg["tasks"]) * e["per_task"] + e["shared"]
    return e["shared"] if cfg["mtl"] == "mmoe" else 0


def gate_experts(cfg, k):
    """Expert indices (checkpoint numbering) feeding task k's gate, in gate-output order."""
    e = cfg["experts"]
    if cfg["mtl"] == "mmoe":
        return list(range(e["shared"]))
    if cfg["mtl"] == "ple":
        K, Et = len(cfg["tasks"]), e["per_task"]
        return [k * Et + t for t in range(Et)] + [K * Et + s for s in range(e["shared"])]
    return []


def tower_input_width(cfg):
    return num_fields(cfg) * cfg["d"] if cfg["mtl"] == "towers" else cfg["experts"]["hidden"][-1]


def seq_field_defs(cfg):
    """The field dicts of cfg's seq_fields, in seq_fields order."""
    by_name = {f["name"]: f for f in cfg["fields"]}
    return [by_name[n] for n in cfg.get("seq_fields", [])]


def config_to_json(cfg):
    """Canonical JSON text of a filled config (what checkpoints store as dtrn_config). An empty
    `seq_fields` is left out, so configs without it keep their checkpoints byte-identical (and readable
    by converters that predate the key)."""
    out = dict(cfg)
    if not out.get("seq_fields"):
        out.pop("seq_fields", None)
    return json.dumps(out, separators=(",", ":"))
