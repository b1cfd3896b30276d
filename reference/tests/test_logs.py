import json
import os

import numpy as np
import pytest

from dtrn_ref import logs
from dtrn_ref.config import load_config
from dtrn_ref.requests_io import collate

HERE = os.path.dirname(__file__)
DATA = "/work/shared/data/taobao-userbehavior"
TAOBAO = os.path.join(HERE, "..", "configs", "taobao.json")

# user, item, category, type, time: user 1 views items 10, 11, carts 10, buys 10; user 2 clicks twice;
# user 3's event in the log's first second is warm-up (no earlier item to draw negatives from).
TINY = """1,10,100,pv,1000
1,11,101,pv,1010
2,20,200,pv,1010
1,10,100,cart,1020
1,12,100,fav,1025
1,13,101,pv,1030
2,21,200,pv,1040
1,10,100,buy,1040
1,14,101,pv,1040
2,20,200,buy,1050
1,11,101,pv,1060
3,30,300,pv,900
"""


def write(tmp_path, text, name="log.csv"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def small_cfg(L=3):
    cfg = load_config(TAOBAO)
    cfg["L"] = L
    return load_config(cfg)


def brute(rows, user, t, beh, L):
    """Items of the user's events of type `beh` strictly before second t, oldest first, last L."""
    ev = sorted((r for r in rows if r[0] == user and r[3] == beh and r[4] < t), key=lambda r: (r[4], r[5]))
    return [r[1] for r in ev][-L:] if ev else []


def rows_of(text, bmap):
    """(user, item, category, name, time, line) per event; a raw type mapped to several names gives several."""
    out = []
    for n, line in enumerate(text.strip().splitlines(), 1):
        u, i, c, b, t = line.split(",")
        for name in bmap[b]:
            out.append((int(u), int(i), int(c), name, int(t), n))
    return out


def check_requests(rows, splits, cfg, negatives):
    """Every request: sequences = earlier events only; labels = later events; splits in time order."""
    last_end = -1
    for split in ("train", "validation", "test"):
        times = []
        for r in splits[split]:
            user, t, line = (int(x) for x in r["id"].split("-"))
            times.append(t)
            assert r["user"]["user_id"] == user and r["context"]["hour"] == (t // 3600 + 8) % 24
            target = [x for x in rows if x[5] == line][0]
            assert target[0] == user and target[4] == t
            for b in cfg["behaviors"]:
                seq = r["behaviors"][b]
                if isinstance(seq, dict):  # seq_fields: each event carries its category
                    cat_of = {x[1]: x[2] for x in rows}
                    assert seq["category"] == [cat_of[i] for i in seq["item_id"]], (r["id"], b)
                    seq = seq["item_id"]
                assert seq == brute(rows, user, t, b, cfg["L"]), (r["id"], b)
            items = [c["item_id"] for c in r["candidates"]]
            earlier = {x[1] for x in rows if x[4] < t}
            assert target[1] in items and items.count(target[1]) == 1
            assert all(i in earlier for i in items if i != target[1]), "negatives come from earlier events"
            assert len(items) == negatives + 1 or earlier <= {target[1]}
            for c, lab in zip(r["candidates"], r["labels"]):
                for k, task in enumerate(cfg["tasks"]):
                    want = any(x[0] == user and x[1] == c["item_id"] and x[3] == task and x[4] >= t for x in rows)
                    assert lab[k] == int(want), (r["id"], c, task)
        if times:
            assert times == sorted(times)
            assert min(times) > last_end, f"{split} starts before the previous split ends"
            last_end = max(times)


def test_tiny_log_sequences_labels_and_splits(tmp_path):
    path = write(tmp_path, TINY)
    bmap = logs.parse_behavior_map(logs.DEFAULT_BEHAVIOR_MAP)
    rows = rows_of(TINY, bmap)
    cfg = small_cfg(L=2)
    for target in logs.TARGETS:
        splits = logs.load(path, cfg, negatives=2, seed=1, fractions=(0.5, 0.25), target=target)
        check_requests(rows, splits, cfg, negatives=2)
        n = sum(len(v) for v in splits.values())
        # first touch: one target per (user, item); task0: every click
        assert n == (6 if target == "first" else 7)
        collate(splits["train"], cfg)  # the requests are valid for the config
    # user 1's click on item 10 at t=1000 later became a cart and a purchase
    first = logs.load(path, cfg, negatives=2, seed=1, target="first")
    r = [x for s in first.values() for x in s if x["id"] == "1-1000-1"][0]
    k = [c["item_id"] for c in r["candidates"]].index(10)
    assert r["labels"][k] == [1, 1, 1]
    # item 14 at t=1040 sees the cart and purchase of item 10 (earlier) but not the purchase in the same second
    r = [x for s in first.values() for x in s if x["id"] == "1-1040-9"][0]
    assert {b: v["item_id"] for b, v in r["behaviors"].items()} == {"click": [11, 13], "cart": [10], "purchase": []}


def test_same_second_is_not_history(tmp_path):
    path = write(tmp_path, "9,9,1,pv,99\n5,1,1,pv,100\n5,2,1,pv,100\n5,3,1,pv,101\n")
    out = logs.load(path, small_cfg(), negatives=1, fractions=(1.0, 0.0))
    by_id = {r["id"]: r for r in out["train"]}
    assert "9-99-1" not in by_id  # first second: warm-up
    assert by_id["5-100-2"]["behaviors"]["click"]["item_id"] == [] and \
        by_id["5-100-3"]["behaviors"]["click"]["item_id"] == []
    assert by_id["5-101-4"]["behaviors"]["click"] == {"item_id": [1, 2], "category": [1, 1]}
    # negatives only from strictly earlier seconds: at t=100 only item 9 exists, at t=101 items 9, 1, 2
    assert [c["item_id"] for c in by_id["5-100-2"]["candidates"] if c["item_id"] != 1] == [9]
    assert by_id["5-101-4"]["candidates"][0]["item_id"] in (9, 1, 2, 3)


def test_a_pool_of_only_the_target_gives_fewer_negatives(tmp_path):
    path = write(tmp_path, "1,7,1,pv,10\n2,7,1,pv,11\n")
    out = logs.load(path, small_cfg(), negatives=3, fractions=(1.0, 0.0))
    assert [[c["item_id"] for c in r["candidates"]] for r in out["train"]] == [[7]]


@pytest.mark.parametrize("text,needle", [
    ("1,2,3,pv,4\n1,2,3,pv\n", "line 2: expected 5 comma-separated columns"),
    ("1,2,3,pv,4\n1,x,3,pv,5\n", "line 2: item_id 'x' is not an integer"),
    ("1,2,3,pv,4.5\n", "line 1: timestamp '4.5' is not an integer"),
    ("1,2,3,pv,4\n\n", "line 2: expected 5"),
    ("1,2,3,pv,4\n1,2,3,like,5\n", "line 2: behavior type 'like' is not in the behavior map"),
    ("99999999999999999999,2,3,pv,4\n", "line 1: user_id 99999999999999999999 does not fit in int64"),
])
def test_malformed_rows_name_the_line(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(logs.LogError, match=needle):
        logs.read_log(path)


def test_ignored_types_are_still_checked_and_dropped(tmp_path):
    ev = logs.read_log(write(tmp_path, TINY))
    assert len(ev) == 11 and ev.names == ["cart", "click", "purchase"]  # the fav row is gone
    with pytest.raises(logs.LogError, match="line 1: category_id"):
        logs.read_log(write(tmp_path, "1,2,c,fav,4\n", "b.csv"))


@pytest.mark.parametrize("bmap,needle", [
    ("pv=click,cart", "'cart' is not TYPE=NAME"),
    ("pv=click,pv=cart", "type 'pv' appears twice"),
])
def test_bad_behavior_maps(bmap, needle):
    with pytest.raises(logs.LogError, match=needle):
        logs.parse_behavior_map(bmap)


def test_map_and_config_must_agree(tmp_path):
    path = write(tmp_path, TINY)
    with pytest.raises(logs.LogError, match="name 'like' is neither a task"):
        logs.load(path, small_cfg(), behavior_map="pv=click,cart=cart,buy=purchase,fav=like")
    with pytest.raises(logs.LogError, match="no log type maps to the config's task 'purchase'"):
        logs.load(path, small_cfg(), behavior_map="pv=click,cart=cart,buy=,fav=")
    cfg = load_config(TAOBAO)
    cfg["fields"] = cfg["fields"] + [{"name": "brand", "group": "item", "kind": "sparse", "vocab": 10}]
    with pytest.raises(logs.LogError, match="config field 'brand'"):
        logs.load(path, load_config(cfg))


@pytest.mark.skipif(not os.path.isdir(DATA), reason="shared Taobao data folder is absent")
def test_taobao_43_users_no_leakage():
    path = os.path.join(DATA, "UserBehavior-43users.csv")
    cfg = small_cfg(L=20)
    bmap = logs.parse_behavior_map(logs.DEFAULT_BEHAVIOR_MAP)
    with open(path) as fh:
        text = fh.read()
    rows = rows_of(text, bmap)
    splits = logs.load(path, cfg, negatives=4, seed=0)
    assert all(len(v) > 100 for v in splits.values())
    sample = {s: v[::40] for s, v in splits.items()}  # brute force on a sample keeps it fast
    check_requests(rows, sample, cfg, negatives=4)
    lab = np.array([c for v in splits.values() for r in v for c in r["labels"]])
    assert lab[:, 1].sum() > 50 and lab[:, 2].sum() > 20  # real carts and purchases


@pytest.mark.skipif(not os.path.isdir(DATA), reason="shared Taobao data folder is absent")
def test_taobao_2h_parses():
    ev = logs.read_log(os.path.join(DATA, "UserBehavior-2h.csv"))
    assert len(ev) == 110300 - 3383  # fav dropped by the default map
    assert len(np.unique(ev.user)) > 60000


def test_config_without_hour(tmp_path):
    cfg = load_config(os.path.join(HERE, "..", "configs", "taobao-2h.json"))
    out = logs.load(write(tmp_path, TINY), cfg, negatives=1)
    reqs = [r for v in out.values() for r in v]
    assert reqs and all(r["context"] == {} for r in reqs)
    assert collate(reqs, cfg).labels.shape == (2 * len(reqs), 3)


def test_column_mapping_header_and_extra_columns(tmp_path):
    """A log laid out differently: a header, other column names and order, an extra column; the same
    requests as the UserBehavior layout."""
    lines = TINY.strip().splitlines()
    shuffled = ["ts,kind,junk,cat,uid,iid"] + [
        f"{t},{b},x{n},{c},{u},{i}" for n, (u, i, c, b, t) in enumerate(x.split(",") for x in lines)]
    path = write(tmp_path, "\n".join(shuffled) + "\n", "h.csv")
    cfg = small_cfg(L=2)
    want = logs.load(write(tmp_path, TINY), cfg, negatives=2, seed=1, fractions=(0.5, 0.25))
    got = logs.load(path, cfg, negatives=2, seed=1, fractions=(0.5, 0.25), header=True,
                    columns="user=uid,item=iid,behavior=kind,time=ts,category=cat")
    strip = lambda s: {k: [{**r, "id": r["id"].rsplit("-", 1)[0]} for r in v] for k, v in s.items()}  # noqa: E731
    assert strip(got) == strip(want)  # ids end with the line number, one more with a header


def test_one_raw_type_feeds_several_names(tmp_path):
    path = write(tmp_path, TINY)
    bmap = "pv=click,cart=cart,buy=purchase+cart,fav="
    rows = rows_of(TINY, logs.parse_behavior_map(bmap))
    cfg = small_cfg(L=3)
    splits = logs.load(path, cfg, behavior_map=bmap, negatives=2, seed=1, fractions=(0.5, 0.25), target="task0")
    check_requests(rows, splits, cfg, negatives=2)
    r = [x for s in splits.values() for x in s if x["id"] == "1-1060-11"][0]
    assert r["behaviors"]["cart"]["item_id"] == [10, 10]  # the cart at 1020 and the buy at 1040 (also a cart)


@pytest.mark.parametrize("columns,needle", [
    ("user=uid,item=item_id,behavior=behavior_type,time=timestamp", "no column 'uid'"),
    ("user=user_id,item=item_id,behavior=behavior_type", "role 'time' is missing"),
    ("user=user_id,user=item_id,item=item_id,behavior=behavior_type,time=timestamp", "appears twice"),
])
def test_bad_column_mappings(tmp_path, columns, needle):
    with pytest.raises(logs.LogError, match=needle):
        logs.read_log(write(tmp_path, TINY), columns=columns)


def test_unmapped_config_field_is_named(tmp_path):
    cfg = load_config(TAOBAO)
    cfg["fields"] = cfg["fields"] + [{"name": "brand", "group": "item", "kind": "sparse", "vocab": 10}]
    with pytest.raises(logs.LogError, match="config field 'brand'.*not in the column mapping"):
        logs.load(write(tmp_path, TINY), load_config(cfg))
    # mapped, it is read from its column (the item's first event for candidates)
    text = "".join(f"{x},{int(x.split(',')[1]) % 3}\n" for x in TINY.strip().splitlines())
    out = logs.load(write(tmp_path, text, "b.csv"), load_config(cfg), negatives=1,
                    names="user_id,item_id,category_id,behavior_type,timestamp,brand_col",
                    columns=logs.DEFAULT_COLUMNS + ",brand=brand_col")
    assert all(c["brand"] == c["item_id"] % 3 for v in out.values() for r in v for c in r["candidates"])


def test_seq_fields_config_carries_event_categories(tmp_path):
    cfg = load_config(os.path.join(HERE, "..", "configs", "taobao.json"))
    assert cfg["seq_fields"] == ["category"]
    out = logs.load(write(tmp_path, TINY), cfg, negatives=1)
    cat_of = {int(x.split(",")[1]): int(x.split(",")[2]) for x in TINY.strip().splitlines()}
    for v in out.values():
        for r in v:
            for b in r["behaviors"].values():
                assert b["category"] == [cat_of[i] for i in b["item_id"]]


def test_requests_cli_from_a_log_writes_stores_and_jsonl(tmp_path):
    """synth-log -> requests --log (chunked): the stores load, train reads them, the JSON Lines parse."""
    from dtrn_ref import requests_cli, synth_log, train
    from dtrn_ref.requests_io import read_requests
    from dtrn_ref.store import Columns
    log = tmp_path / "log.csv"
    synth_log.write_log(str(log), 6000, seed=3)
    assert sum(1 for _ in open(log)) == 6000
    out = tmp_path / "req"
    assert requests_cli.main(["--config", TAOBAO, "--log", str(log), "--out", str(out), "--chunk", "700",
                              "--max-jsonl", "50"]) == 0
    cfg = load_config(TAOBAO)
    sizes = {s: len(Columns.load(out / s, cfg)) for s in ("train", "validation", "test")}
    assert sizes["train"] > 4 * sizes["test"] > 0
    reqs = read_requests(out / "test.jsonl", cfg)
    assert len(reqs) == 50 and all(r.labels is not None for r in reqs)
    whole = logs.load_columns(str(log), cfg)  # the same targets, in memory
    assert {s: len(c) for s, c in whole.items()} == sizes
    t = Columns.load(out / "test", cfg)
    np.testing.assert_array_equal(t.batch(np.arange(50)).seq, whole["test"].to_rows().batch(np.arange(50)).seq)
    assert train.main(["--config", TAOBAO, "--data", str(out), "--out", str(tmp_path / "run"), "--epochs", "1",
                       "--no-progress"]) == 0


def test_decimal_ids_match_python_strings():
    from dtrn_ref.store import Columns
    rng = np.random.default_rng(5)
    ext = np.array([-(1 << 63), (1 << 63) - 1, 0, -1, 1, 9, 10, 99, 100, 10 ** 18, -10 ** 18, 10 ** 18 - 1])
    a = np.concatenate([ext, rng.integers(-(1 << 63), (1 << 63) - 1, 500, dtype=np.int64),
                        rng.integers(0, 10 ** 6, 500)])
    b, c = np.roll(a, 7), np.roll(a, 31)
    got = logs._decimal_ids([a, b, c])
    want = Columns.encode_ids([f"{x}-{y}-{z}" for x, y, z in zip(a.tolist(), b.tolist(), c.tolist())])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_shards_give_the_same_requests(tmp_path):
    """requests --log with 1 shard and with several: every request (sequences, negatives, labels,
    split) is the same; one shard keeps the in-memory order (time order within each split)."""
    from dtrn_ref import requests_cli, synth_log
    from dtrn_ref.store import Columns
    log = tmp_path / "log.csv"
    synth_log.write_log(str(log), 8000, seed=4)
    cfg = load_config(TAOBAO)
    got = {}
    for shards, chunk in ((1, 100000), (5, 333), (17, 50)):
        out = tmp_path / f"req{shards}"
        assert requests_cli.main(["--config", TAOBAO, "--log", str(log), "--out", str(out), "--chunk", str(chunk),
                                  "--shards", str(shards), "--jsonl", "train,validation,test"]) == 0
        got[shards] = {}
        for s in logs.SPLITS:
            with open(out / f"{s}.jsonl") as fh:
                reqs = [json.loads(x) for x in fh]
            store = Columns.load(out / s, cfg)
            assert len(store) == len(reqs) > 0
            got[shards][s] = reqs
            if shards == 17:  # the store's rows are the JSON Lines' ids, request by request
                want = collate(reqs, cfg)
                b = store.batch(np.arange(len(store)))
                np.testing.assert_array_equal(b.seq, want.seq)
                np.testing.assert_array_equal(b.labels, want.labels)
    whole = logs.load(str(log), cfg)
    assert got[1] == whole  # one shard: the in-memory requests, in order
    for shards in (5, 17):
        for s in logs.SPLITS:
            assert sorted(got[shards][s], key=lambda r: r["id"]) == sorted(whole[s], key=lambda r: r["id"]), s

