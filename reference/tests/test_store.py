"""The columnar request store: the same batches as the JSON path, memory-mapped, verified on load."""
import json
import os

import numpy as np
import pytest
import torch
from refutil import CONFIGS, requests, tiny

from dtrn_ref.requests_io import collate, parse_request
from dtrn_ref.store import Columns, StoreError
from dtrn_ref.synthetic import generate_nt_columns

SEQ = os.path.join(CONFIGS, "small-seq.json")


def same_batch(a, b):
    for f in ("seq", "seq_len", "cand_req", "weights", "labels"):
        x, y = getattr(a, f), getattr(b, f)
        assert (x is None and y is None) or torch.equal(x, y), f
    for f in ("req_sparse", "req_dense", "cand_sparse", "cand_dense", "seq_side"):
        x, y = getattr(a, f) or {}, getattr(b, f) or {}
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), f


def test_columns_match_the_json_path(tmp_path):
    cfg = tiny()
    raw = requests(cfg, 9, seed=3, candidates=[3, 1, 4], labels=True)
    reqs = [parse_request(r, cfg) for r in raw]
    cols = Columns.from_requests(reqs, cfg)
    cols.save(tmp_path / "s")
    back = Columns.load(tmp_path / "s", cfg)
    assert isinstance(back.seq["seq.item_id"], np.memmap)  # memory-mapped, not read
    for idx in ([0, 1, 2], [8, 1, 5, 5], list(range(9))):
        same_batch(back.batch(idx), collate([reqs[i] for i in idx], cfg))
    same_batch(back.take([4, 2]).batch([0, 1]), collate([reqs[4], reqs[2]], cfg))
    assert [back.request_id(i) for i in range(9)] == [r.id for r in reqs]


def test_raw_columns_round_trip_through_json():
    cols = generate_nt_columns(SEQ, 30, seed=1)
    dicts = list(cols.iter_dicts())
    from dtrn_ref.config import load_config
    cfg = load_config(SEQ)
    reqs = [parse_request(json.loads(json.dumps(d)), cfg) for d in dicts]
    same_batch(cols.to_rows().batch(np.arange(30)), collate(reqs, cfg))
    assert all(set(v) == {"item_id", "category"} for d in dicts for v in d["behaviors"].values())


def test_compact_keeps_every_sequence():
    cols = generate_nt_columns(SEQ, 40, seed=2).to_rows()
    part = cols.take([3, 30, 7])
    small = part.compact()
    assert len(small.seq["seq.item_id"]) < len(part.seq["seq.item_id"])
    same_batch(small.batch([0, 1, 2]), part.batch([0, 1, 2]))


@pytest.mark.parametrize("damage,needle", [
    (lambda d: np.save(d / "seq_len.npy", np.full_like(np.load(d / "seq_len.npy"), 99)), "seq_len"),
    (lambda d: np.save(d / "cand.category.npy", np.load(d / "cand.category.npy") + 5000), "cand.category"),
    (lambda d: np.save(d / "labels.npy", np.load(d / "labels.npy") * 3), "labels"),
    (lambda d: np.save(d / "cand_off.npy", np.load(d / "cand_off.npy")[::-1].copy()), "cand_off"),
    (lambda d: os.unlink(d / "seq.category.npy"), "seq.category"),
    (lambda d: np.save(d / "seq_start.npy", np.load(d / "seq_start.npy").astype(np.int32)), "seq_start"),
    (lambda d: np.save(d / "seq_start.npy", np.array([object()] * 120), allow_pickle=True), "seq_start"),
])
def test_damaged_store_is_refused_naming_the_array(tmp_path, damage, needle):
    cols = generate_nt_columns(SEQ, 40, seed=2).to_rows()
    d = tmp_path / "s"
    cols.save(d)
    damage(d)
    with pytest.raises(StoreError, match=needle):
        Columns.load(d, SEQ)


def test_store_for_other_inputs_is_refused(tmp_path):
    generate_nt_columns(SEQ, 5, seed=2).to_rows().save(tmp_path / "s")
    with pytest.raises(StoreError, match="different inputs"):
        Columns.load(tmp_path / "s", os.path.join(CONFIGS, "small.json"))
