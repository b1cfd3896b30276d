import copy
import json

import numpy as np
import pytest
import torch
from refutil import config, tiny

from dtrn_ref.hashing import splitmix64
from dtrn_ref.requests_io import (
    Request,
    RequestError,
    collate,
    parse_line,
    parse_request,
    rank,
    read_requests,
    scores_line,
    write_scores,
)

CFG = tiny()  # user_id hashed (50), profile dense 3, hour (24), item_id un-hashed (40), similar (table item_id), stats


def good():
    return {"id": "r1",
            "user": {"user_id": -5, "profile": [0.5, -1, 2.25]},
            "context": {"hour": 13},
            "behaviors": {"x": [1, 2, 3], "y": [], "z": [39]},
            "candidates": [{"item_id": 5, "similar": 6, "stats": [0.1, 0.2]},
                           {"item_id": 0, "similar": 39, "stats": [1, 2]}],
            "labels": [[1, 0], [0, 1]],
            "weights": [1.0, 3]}


def test_parse_good():
    r = parse_request(good(), CFG)
    assert r.id == "r1" and r.num_candidates == 2
    assert r.sparse == {"user_id": splitmix64(-5) % 50, "hour": 13}
    assert r.dense["profile"].dtype == np.float32 and r.dense["profile"].tolist() == [0.5, -1.0, 2.25]
    assert [s.tolist() for s in r.seqs] == [[1, 2, 3], [], [39]]
    assert r.cand_sparse["item_id"].tolist() == [5, 0] and r.cand_sparse["similar"].tolist() == [6, 39]
    assert r.cand_dense["stats"].shape == (2, 2)
    assert r.labels.tolist() == [[1, 0], [0, 1]] and r.weights.tolist() == [1.0, 3.0]


def test_defaults_and_int_id():
    obj = good()
    del obj["labels"], obj["weights"]
    obj["id"] = 12345678901234567890
    r = parse_request(obj, CFG)
    assert r.id == "12345678901234567890" and r.labels is None and r.weights.tolist() == [1.0, 1.0]


def test_key_order_does_not_matter():
    obj = good()
    shuffled = {k: obj[k] for k in reversed(list(obj))}
    shuffled["user"] = {"profile": obj["user"]["profile"], "user_id": obj["user"]["user_id"]}
    a, b = parse_request(obj, CFG), parse_request(shuffled, CFG)
    assert a.sparse == b.sparse and [s.tolist() for s in a.seqs] == [s.tolist() for s in b.seqs]


def test_hashed_int64_extremes_accepted():
    obj = good()
    for v in (-(1 << 63), (1 << 63) - 1):
        obj["user"]["user_id"] = v
        assert parse_request(obj, CFG).sparse["user_id"] == splitmix64(v) % 50


def _err(mutate, cfg=CFG):
    obj = good()
    mutate(obj)
    with pytest.raises(RequestError) as e:
        parse_request(obj, cfg, line=7, source="req.jsonl")
    return str(e.value)


BAD = [
    (lambda o: o["user"].__setitem__("user_id", True), "user.user_id", "JSON integer"),
    (lambda o: o["user"].__setitem__("user_id", 5.0), "user.user_id", "JSON integer"),
    (lambda o: o["user"].__setitem__("user_id", "5"), "user.user_id", "JSON integer"),
    (lambda o: o["user"].__setitem__("user_id", 1 << 63), "user.user_id", "does not fit in int64"),
    (lambda o: o["user"].__setitem__("user_id", -(1 << 63) - 1), "user.user_id", "does not fit in int64"),
    (lambda o: o["context"].__setitem__("hour", 24), "context.hour", "outside [0, 24)"),
    (lambda o: o["context"].__setitem__("hour", -1), "context.hour", "outside [0, 24)"),
    (lambda o: o["user"].__setitem__("profile", [1, 2]), "user.profile", "exactly 3 numbers"),
    (lambda o: o["user"].__setitem__("profile", [1, 2, float("nan")]), "user.profile[2]", "finite"),
    (lambda o: o["user"].__setitem__("profile", [1, 2, float("inf")]), "user.profile[2]", "finite"),
    (lambda o: o["user"].__setitem__("profile", [1, 2, True]), "user.profile[2]", "finite number"),
    (lambda o: o["user"].__setitem__("profile", [1, 2, 1e300]), "user.profile[2]", "not a finite float32"),
    (lambda o: o["user"].__setitem__("profile", 3), "user.profile", "exactly 3"),
    (lambda o: o["user"].pop("profile"), "user.profile", "missing"),
    (lambda o: o["user"].__setitem__("age", 3), "user.age", "unknown field"),
    (lambda o: o["context"].__setitem__("user_id", 3), "context.user_id", "unknown field"),
    (lambda o: o.pop("context"), "context", "missing"),
    (lambda o: o.__setitem__("context", []), "context", "expected an object"),
    (lambda o: o.__setitem__("extra", 1), "extra", "unknown key"),
    (lambda o: o["behaviors"].pop("y"), "behaviors.y", "missing"),
    (lambda o: o["behaviors"].__setitem__("w", []), "behaviors.w", "unknown behaviour type"),
    (lambda o: o["behaviors"].__setitem__("x", [1, 2.0]), "behaviors.x[1]", "JSON integer"),
    (lambda o: o["behaviors"].__setitem__("x", [1, 40]), "behaviors.x[1]", "outside [0, 40)"),
    (lambda o: o["behaviors"].__setitem__("x", 3), "behaviors.x", "array"),
    (lambda o: o.__setitem__("candidates", []), "candidates", "non-empty"),
    (lambda o: o["candidates"][1].pop("similar"), "candidates[1].similar", "missing"),
    (lambda o: o["candidates"][1].__setitem__("price", 1), "candidates[1].price", "unknown field"),
    (lambda o: o["candidates"][0].__setitem__("similar", 40), "candidates[0].similar", "outside [0, 40)"),
    (lambda o: o["candidates"][0].__setitem__("stats", [1]), "candidates[0].stats", "exactly 2"),
    (lambda o: o.__setitem__("labels", [[1, 0]]), "labels", "2 arrays"),
    (lambda o: o["labels"].__setitem__(1, [1, 2]), "labels[1][1]", "0 or 1"),
    (lambda o: o["labels"].__setitem__(1, [1, True]), "labels[1][1]", "0 or 1"),
    (lambda o: o["labels"].__setitem__(1, [1]), "labels[1]", "2 values"),
    (lambda o: o.__setitem__("weights", [1.0]), "weights", "2 numbers"),
    (lambda o: o.__setitem__("weights", None), "weights", "2 numbers"),
    (lambda o: o.__setitem__("labels", None), "labels", "2 arrays"),
    (lambda o: o.__setitem__("weights", [1.0, float("inf")]), "weights[1]", "finite"),
    (lambda o: o.__setitem__("weights", [1.0, "2"]), "weights[1]", "finite"),
]


@pytest.mark.parametrize("mutate,field,msg", BAD, ids=[f"{f}:{m}" for _, f, m in BAD])
def test_rejected_with_location(mutate, field, msg):
    s = _err(mutate)
    assert "req.jsonl line 7" in s and 'request "r1"' in s and f"field '{field}'" in s and msg in s


def test_missing_or_bad_id():
    for bad in (None, 1.5, True, ["x"]):
        obj = good()
        if bad is None:
            del obj["id"]
        else:
            obj["id"] = bad
        with pytest.raises(RequestError, match="field 'id'"):
            parse_request(obj, CFG, line=3)
    with pytest.raises(RequestError, match="must be a JSON object"):
        parse_request([1], CFG)


def test_truncation_keeps_most_recent_before_range_check():
    L = CFG["L"]  # 6
    obj = good()
    # The dropped (oldest) ids are outside the un-hashed table: allowed, since only kept ids are checked.
    obj["behaviors"]["x"] = [-7, 1000] + list(range(10, 10 + L))
    r = parse_request(obj, CFG)
    assert r.seqs[0].tolist() == list(range(10, 10 + L))
    obj["behaviors"]["x"] = [1, 2] + [3] * (L - 1) + [99]
    s = _err(lambda o: o["behaviors"].__setitem__("x", obj["behaviors"]["x"]))
    assert f"behaviors.x[{L + 1}]" in s  # index in the request's own list
    # dropped ids must still be JSON integers
    s = _err(lambda o: o["behaviors"].__setitem__("x", ["a"] + [1] * L))
    assert "behaviors.x[0]" in s


def test_truncation_then_hashing():
    cfg = config("small")  # item_id hashed, L = 20
    rng = np.random.default_rng(0)
    ids = [int(v) for v in rng.integers(-(1 << 63), (1 << 63) - 1, size=45, dtype=np.int64)]
    obj = {"id": "h", "user": {"user_id": 1, "user_segment": 2, "user_profile": [0, 0, 0, 0]},
           "context": {"hour": 3}, "behaviors": {"click": ids, "cart": [], "purchase": ids[:3]},
           "candidates": [{"item_id": -1, "category": 0, "item_stats": [0, 0, 0]}]}
    r = parse_request(obj, cfg)
    assert r.seqs[0].tolist() == [splitmix64(v) % 10_000 for v in ids[-20:]]
    assert r.seqs[2].tolist() == [splitmix64(v) % 10_000 for v in ids[:3]]
    assert r.cand_sparse["item_id"].tolist() == [splitmix64(-1) % 10_000]


def test_parse_line_strict_json():
    text = json.dumps(good())
    assert parse_line(text, CFG, line=1).id == "r1"
    with pytest.raises(RequestError, match="line 4: invalid JSON"):
        parse_line(text[:-3], CFG, line=4)
    with pytest.raises(RequestError, match="NaN"):
        parse_line(text.replace("0.5", "NaN"), CFG, line=4)
    with pytest.raises(RequestError, match="Infinity"):
        parse_line(text.replace("0.5", "Infinity"), CFG, line=4)
    with pytest.raises(RequestError, match="field 'user.profile\\[0\\]'"):  # 1e999 parses to inf
        parse_line(text.replace("0.5", "1e999"), CFG, line=4)
    with pytest.raises(RequestError, match="appears twice"):
        parse_line(text.replace('"id": "r1"', '"id": "r1", "id": "r2"'), CFG, line=4)
    # a large integer never goes through a double
    big = (1 << 63) - 1
    assert parse_line(text.replace('"user_id": -5', f'"user_id": {big}'), CFG).sparse["user_id"] == \
        splitmix64(big) % 50


def test_read_requests_lines(tmp_path):
    p = tmp_path / "r.jsonl"
    a, b = good(), good()
    b["id"] = "r2"
    b["candidates"][0]["item_id"] = 77
    p.write_text(json.dumps(a) + "\n\n   \n" + json.dumps(good()) + "\n" + json.dumps(b) + "\n")
    with pytest.raises(RequestError) as e:
        read_requests(p, CFG)
    assert f"{p} line 5" in str(e.value) and 'request "r2"' in str(e.value) and "candidates[0].item_id" in str(e.value)
    p.write_text(json.dumps(a) + "\n\n" + json.dumps(a) + "\n")
    assert [r.id for r in read_requests(p, CFG)] == ["r1", "r1"]


def test_collate_layout():
    a = good()
    b = copy.deepcopy(a)
    b["id"] = "r2"
    b["behaviors"] = {"x": [], "y": [7, 8, 9, 10, 11, 12, 13, 14], "z": [4]}
    b["candidates"] = b["candidates"][:1] * 3
    del a["labels"], b["labels"]
    batch = collate([a, b], CFG)  # dicts are parsed on the way
    L = CFG["L"]
    assert batch.seq.shape == (2, 3, L) and batch.seq.dtype == torch.long
    assert batch.seq_len.tolist() == [[3, 0, 1], [0, 6, 1]]
    assert batch.seq[0, 0].tolist() == [1, 2, 3, 0, 0, 0]       # left-aligned, oldest first, padding 0
    assert batch.seq[1, 1].tolist() == [9, 10, 11, 12, 13, 14]  # most recent L kept
    assert batch.seq[1, 0].tolist() == [0] * L
    assert batch.cand_req.tolist() == [0, 0, 1, 1, 1]
    assert batch.cand_sparse["item_id"].tolist() == [5, 0, 5, 5, 5]
    assert batch.cand_dense["stats"].shape == (5, 2) and batch.cand_dense["stats"].dtype == torch.float32
    assert batch.req_dense["profile"].shape == (2, 3)
    assert batch.req_sparse["hour"].tolist() == [13, 13]
    assert batch.labels is None
    assert batch.weights.tolist() == [[1.0, 3.0], [1.0, 3.0]]
    assert batch.num_requests == 2 and batch.num_candidates == 5


def test_collate_labels():
    a, b = good(), good()
    assert collate([a, b], CFG).labels.tolist() == [[1, 0], [0, 1], [1, 0], [0, 1]]
    del b["labels"]
    with pytest.raises(RequestError, match="labels"):
        collate([a, b], CFG)
    del a["labels"]
    assert collate([parse_request(a, CFG), b], CFG).labels is None


def test_rank_ties_and_weights():
    p = np.array([[0.5, 0.125], [0.25, 0.375], [0.625, 0.0], [0.375, 0.25]])
    assert rank(p) == [0, 1, 2, 3]  # fused (w = 1) all 0.625 exactly: ties go to the lower index
    assert rank(p, [1.0, 0.0]) == [2, 0, 3, 1]
    assert rank(p, [0.0, 1.0]) == [1, 3, 0, 2]
    assert rank(torch.tensor(p), torch.tensor([2.0, 1.0])) == [2, 0, 3, 1]
    assert rank(p, [-1.0, 0.0]) == [1, 3, 0, 2]


def test_scores_format(tmp_path):
    probs = [np.array([[0.123456789012, 0.5], [1 / 3, 2e-7]]), np.array([[0.25, 0.75]])]
    logits = [np.log(p / (1 - p)) for p in probs]
    out = tmp_path / "s.jsonl"
    write_scores(out, ["a", "b"], probs, logits, [np.array([0.0, 1.0]), None])
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    r = json.loads(lines[0])
    assert list(r) == ["id", "scores", "logits", "order"] and r["id"] == "a"
    assert r["scores"] == [[0.123456789, 0.5], [0.333333333, 2e-07]]
    assert r["order"] == [0, 1]
    assert abs(r["logits"][1][1] - float(np.log(2e-7 / (1 - 2e-7)))) < 1e-7
    assert json.loads(lines[1])["order"] == [0]
    assert not [f for f in tmp_path.iterdir() if f.name != "s.jsonl"]  # no temp file left
    with pytest.raises(ValueError, match="non-finite"):
        scores_line("x", np.array([[np.nan]]), np.array([[0.0]]))


def test_request_objects_pass_through():
    r = parse_request(good(), CFG)
    assert isinstance(r, Request)
    assert collate([r], CFG).seq_len.tolist() == [[3, 0, 1]]
