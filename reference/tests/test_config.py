import copy
import json
import math

import pytest
from refutil import TINY, config

from dtrn_ref.config import (
    ConfigError,
    config_to_json,
    fields,
    gate_experts,
    load_config,
    n_ln,
    num_experts,
    num_fields,
    tables,
    tower_input_width,
)


@pytest.mark.parametrize("name,F,B,experts", [("small", 7, 3, 3), ("standard", 10, 3, 4), ("large", 14, 4, 10)])
def test_shipped_configs_match_spec(name, F, B, experts):
    cfg = config(name)
    assert cfg["name"] == name and len(cfg["fields"]) == F and len(cfg["behaviors"]) == B
    n = F + B
    assert num_fields(cfg) == n
    assert cfg["hyper_dim"] == cfg["d"] and cfg["hyper_hidden"] == 2 * cfg["d"]
    assert cfg["trm_hidden"] == math.ceil(n / 2) and cfg["pooling"] == "target" and cfg["dropout"] == 0.0
    assert num_experts(cfg) == experts
    for f in fields(cfg, kind="sparse"):
        assert f["table"] == f["name"] and isinstance(f["hashed"], bool)
        assert f["vocab"] == ({"small": 10_000, "standard": 100_000, "large": 1_000_000}[name]
                              if f["name"] == "item_id" else 1000)
    assert fields(cfg, "item")[0]["name"] == "item_id"
    # idempotent: the filled config (as checkpoints store it) loads to itself
    assert load_config(cfg) == cfg
    assert load_config(json.loads(config_to_json(cfg))) == cfg
    assert load_config(config_to_json(cfg)) == cfg


def test_helpers_on_tiny():
    cfg = load_config(TINY)
    assert list(tables(cfg)) == ["user_id", "hour", "item_id"]  # ordered by first use; 'similar' shares item_id
    assert tables(cfg)["item_id"] == {"vocab": 40, "hashed": False}
    assert n_ln(cfg) == 4 and num_fields(cfg) == 9 and cfg["trm_hidden"] == 5
    # ple numbering: task k's own experts k*E_t + t, then the shared ones at K*E_t + s
    assert num_experts(cfg) == 4
    assert gate_experts(cfg, 0) == [0, 2, 3] and gate_experts(cfg, 1) == [1, 2, 3]
    assert tower_input_width(cfg) == 6
    tw = dict(TINY, mtl="towers")
    del tw["experts"]
    tw = load_config(tw)
    assert tw["experts"] == {"shared": 0, "per_task": 0, "hidden": []}
    assert tower_input_width(tw) == 9 * 8 and num_experts(tw) == 0 and load_config(tw) == tw
    mm = load_config(dict(TINY, mtl="mmoe", experts={"shared": 3, "hidden": [4]}))
    assert mm["experts"]["per_task"] == 0 and gate_experts(mm, 1) == [0, 1, 2]


def test_explicit_values_kept():
    cfg = load_config(dict(TINY, hyper_dim=5, hyper_hidden=7, trm_hidden=3, pooling="mean", dropout=0.1))
    assert (cfg["hyper_dim"], cfg["hyper_hidden"], cfg["trm_hidden"], cfg["pooling"], cfg["dropout"]) == \
        (5, 7, 3, "mean", 0.1)


def _mut(fn):
    raw = copy.deepcopy(TINY)
    fn(raw)
    return raw


def _set(key, value):
    return lambda r: r.__setitem__(key, value)


def _field(i, key, value):
    return lambda r: r["fields"][i].__setitem__(key, value)


def _del_field_key(i, key):
    return lambda r: r["fields"][i].pop(key)


BAD = [
    (_set("colour", 1), "'colour': unknown key"),
    (lambda r: r.pop("d"), "'d': missing"),
    (lambda r: r.pop("towers"), "'towers': missing"),
    (_set("d", 0), "'d'"),
    (_set("d", 8.0), "'d'"),
    (_set("d", True), "'d'"),
    (_set("heads", 3), "'heads': d = 8 is not divisible by heads = 3"),
    (_set("tasks", []), "'tasks'"),
    (_set("tasks", ["a", "a"]), "'tasks[1]': duplicate"),
    (_set("behaviors", ["x", "bad name"]), "'behaviors[1]'"),
    (_set("L", -1), "'L'"),
    (_set("blocks", 0), "'blocks'"),
    (_set("pooling", "max"), "'pooling'"),
    (_set("mtl", "moe"), "'mtl'"),
    (_set("dropout", 1.0), "'dropout'"),
    (_set("hyper_dim", 0), "'hyper_dim'"),
    (_set("trm_hidden", "4"), "'trm_hidden'"),
    (_set("fields", []), "'fields'"),
    (_field(0, "colour", 1), "fields[0] ('user_id').colour': unknown key"),
    (_field(0, "width", 3), "fields[0] ('user_id').width': a sparse field has no width"),
    (_field(1, "vocab", 3), "fields[1] ('profile').vocab': a dense field has no embedding table"),
    (_del_field_key(1, "width"), "fields[1] ('profile').width': missing"),
    (_del_field_key(0, "vocab"), "fields[0] ('user_id').vocab': missing"),
    (_field(0, "group", "item"), "first item field must be 'item_id'"),
    (_field(2, "name", "user_id"), "duplicate field name 'user_id'"),
    (_field(3, "kind", "dense"), "fields[3] ('item_id').vocab': a dense field has no embedding table"),
    (_field(0, "hashed", 1), "fields[0] ('user_id').hashed'"),
    (_field(0, "group", "users"), "fields[0] ('user_id').group'"),
    (_field(0, "kind", "embedding"), "fields[0] ('user_id').kind'"),
    (_field(0, "name", "user.id"), "fields[0].name'"),
    (_field(4, "vocab", 41), "fields[4] ('similar').table': table 'item_id' is shared with field 'item_id'"),
    (_field(4, "hashed", True), "fields[4] ('similar').table'"),
    (lambda r: r["fields"].insert(3, {"name": "shop", "group": "item", "kind": "sparse", "vocab": 5}),
     "the first item field must be 'item_id'"),
    (lambda r: r["fields"].__setitem__(slice(3, None), []), "the first item field must be 'item_id'"),
    (lambda r: r.update(mtl="towers"), "'experts': the 'towers' head has no experts"),
    (lambda r: r.pop("experts"), "'experts': missing"),
    (lambda r: r.update(mtl="mmoe"), "'experts.per_task': the 'mmoe' head has only shared experts"),
    (lambda r: r.update(mtl="mmoe", experts={"shared": 0, "hidden": [4]}), "'experts.shared'"),
    (lambda r: r.update(experts={"shared": 0, "per_task": 0, "hidden": [4]}), "shared + per_task > 0"),
    (lambda r: r.update(experts={"shared": 1, "hidden": []}), "'experts.hidden'"),
    (lambda r: r.update(experts={"shared": 1}), "'experts.hidden': missing"),
    (lambda r: r.update(experts={"shared": 1, "hidden": [4], "gate": 2}), "'experts.gate': unknown key"),
    (_set("towers", [4, 0]), "'towers[1]'"),
    (_set("name", 3), "'name'"),
]


@pytest.mark.parametrize("mutate,msg", BAD, ids=[m for _, m in BAD])
def test_rejected(mutate, msg):
    with pytest.raises(ConfigError) as e:
        load_config(_mut(mutate))
    assert msg in str(e.value)


def test_dense_item_id_rejected():
    raw = _mut(_field(3, "kind", "dense"))
    del raw["fields"][3]["vocab"]
    raw["fields"][3]["width"] = 2
    with pytest.raises(ConfigError, match="item_id must be a sparse field"):
        load_config(raw)


def test_json_text_errors(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"d": 8, "d": 9}')
    with pytest.raises(ConfigError, match="'d': appears twice"):
        load_config(str(p))
    p.write_text('{"d": NaN}')
    with pytest.raises(ConfigError, match="NaN"):
        load_config(str(p))
    p.write_text('{"d": 8,')
    with pytest.raises(ConfigError, match="invalid JSON at line 1"):
        load_config(str(p))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(str(tmp_path / "missing.json"))
    p.write_text(json.dumps(TINY))
    assert load_config(str(p)) == load_config(TINY)
