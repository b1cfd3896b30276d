import json
import os

import numpy as np
import pytest

from dtrn_ref import metrics as MX
from dtrn_ref import synthetic as S
from dtrn_ref.config import load_config
from dtrn_ref.requests_io import collate, parse_request

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


def cfg_of(name):
    return load_config(os.path.join(CONFIGS, f"{name}.json"))


def world_index(world):
    """item id -> world item index (inverse of the generator's id mapping)."""
    return {int(v): i for i, v in enumerate(world.item_ids())}


def test_deterministic_by_seed_and_world_shared_across_seeds():
    cfg = cfg_of("small")
    a, b, c = S.generate(cfg, 50, seed=3), S.generate(cfg, 50, seed=3), S.generate(cfg, 50, seed=4)
    assert json.dumps(a) == json.dumps(b)
    assert json.dumps(a) != json.dumps(c)
    # the latent world does not depend on the request seed: an item keeps its category
    cat = {}
    for r in a + c:
        for x in r["candidates"]:
            assert cat.setdefault(x["item_id"], x["category"]) == x["category"]


@pytest.mark.parametrize("name", ["small", "standard", "large"])
def test_requests_are_valid_for_every_shipped_config(name):
    cfg = cfg_of(name)
    reqs = S.generate(cfg, 40, seed=1, n_candidates=7)
    parsed = [parse_request(json.loads(json.dumps(r)), cfg) for r in reqs]  # survives JSON round trip
    batch = collate(parsed, cfg)
    K = len(cfg["tasks"])
    assert batch.labels.shape == (40 * 7, K)
    assert int(batch.seq_len.max()) <= cfg["L"]
    assert (batch.seq_len == 0).any(), "empty sequences must occur"
    assert set(reqs[0]["behaviors"]) == set(cfg["behaviors"])


def test_labels_follow_the_funnel_and_deep_tasks_are_rarer():
    cfg = cfg_of("large")  # 4 tasks: click, cart, fav, purchase
    lab = np.array([r["labels"] for r in S.generate(cfg, 400, seed=2)]).reshape(-1, 4)
    assert (np.diff(lab, axis=1) <= 0).all(), "a deeper label implies every shallower one"
    rates = lab.mean(0)
    assert 0.05 < rates[0] < 0.4 and rates[-1] < rates[0] / 2.5 and rates[-1] > 0.005


def test_any_config_shape_works():
    cfg = load_config({
        "d": 8, "tasks": ["buy"], "behaviors": ["view"], "L": 5, "blocks": 1, "heads": 1, "d_ff": 8,
        "fields": [{"name": "ctx", "group": "context", "kind": "dense", "width": 2},
                   {"name": "item_id", "group": "item", "kind": "sparse", "vocab": 30},
                   {"name": "shop", "group": "item", "kind": "sparse", "vocab": 3}],
        "mtl": "towers", "towers": [4]})
    reqs = S.generate(cfg, 30, seed=0, n_candidates=3)
    batch = collate(reqs, cfg)  # un-hashed ids must lie inside their (tiny) tables
    assert int(batch.cand_sparse["item_id"].max()) < 30 and int(batch.cand_sparse["shop"].max()) < 3
    assert batch.labels.shape == (90, 1) and batch.req_dense["ctx"].shape == (30, 2)


def test_planted_structure_is_task_specific():
    cfg = cfg_of("standard")  # tasks and behaviours: click, cart, purchase
    reqs = S.generate(cfg, 1500, seed=5)
    world = S.World(cfg, 0)
    idx = world_index(world)
    # behaviour sequences follow their own task: purchases lean to quality, clicks to bait
    q = {b: np.mean([world.quality[idx[i]] for r in reqs for i in r["behaviors"][b]]) for b in cfg["behaviors"]}
    assert q["purchase"] > q["click"] + 0.3
    # labels carry the planted signal, and each task's own funnel score ranks it best
    users = np.array([(r["user"]["user_id"] - 17) // S.HASH_MULT for r in reqs])
    hours = np.array([r["context"]["hour"] for r in reqs])
    items = np.array([[idx[c["item_id"]] for c in r["candidates"]] for r in reqs])
    lab = np.array([r["labels"] for r in reqs])
    log_click, lam = world.funnel(users, hours, items)
    click_auc = MX.auc(lab[..., 0].ravel(), log_click.ravel())
    buy_auc = MX.auc(lab[..., 2].ravel(), (log_click - lam).ravel())
    buy_by_click_score = MX.auc(lab[..., 2].ravel(), log_click.ravel())
    assert click_auc > 0.75 and buy_auc > 0.8
    assert buy_auc > buy_by_click_score + 0.05, "purchase must not be just click"
    oracle = S.oracle_log_probs(cfg, reqs)  # the same truth, per candidate and task
    assert oracle.shape == (len(reqs) * 20, 3)
    assert np.allclose(oracle[:, 0], log_click.ravel()) and np.allclose(oracle[:, 2], (log_click - lam).ravel())


# ---- the negative-transfer world --------------------------------------------------------------------

def test_negative_transfer_world_is_deterministic_and_planted():
    from dtrn_ref import metrics as MX
    from dtrn_ref.synthetic import generate_nt_columns
    seq = os.path.join(os.path.dirname(__file__), "..", "configs", "small-seq.json")
    a, oa = generate_nt_columns(seq, 3000, seed=4, with_oracle=True)
    b, ob = generate_nt_columns(seq, 3000, seed=4, with_oracle=True)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(oa, ob)
    assert np.array_equal(a.seq["seq.item_id"], b.seq["seq.item_id"])
    c = generate_nt_columns(seq, 3000, seed=5)
    assert not np.array_equal(a.labels, c.labels)
    # no raw user id: every request carries the same user_id
    assert len(np.unique(a.req["req.user_id"])) == 1
    # conflict: the true click and purchase logits are negatively correlated, labels drawn independently
    assert np.corrcoef(oa[:, 0], oa[:, 1])[0, 1] < -0.3
    # the oracle ranks well: the labels follow the planted probabilities
    assert MX.auc(a.labels[:, 0], oa[:, 0]) > 0.75 and MX.auc(a.labels[:, 1], oa[:, 1]) > 0.75
    # each behaviour carries its own task's taste: the click sequence's categories predict clicks better than
    # purchases, the purchase sequence's predict purchases better (in the opposite direction for the other)
    from dtrn_ref.config import load_config
    from dtrn_ref.synthetic import NT_SPREAD, NTWorld
    cfg = load_config(seq)
    w = NTWorld(cfg, 0)
    cent = w.centres / np.sqrt(1 + NT_SPREAD ** 2)
    R, B, N = len(a), 3, 10
    cand_cat = a.cand["cand.category"]
    grp = np.repeat(np.arange(R), N)
    gauc = {}
    for bi in (0, 2):
        score = np.zeros(R * N)
        for r in range(R):
            s, n = a.seq_start[r * B + bi], a.seq_len[r * B + bi]
            if n:
                v = cent[a.seq["seq.category"][s:s + n][-5:]].mean(0)
                score[r * N:(r + 1) * N] = cent[cand_cat[r * N:(r + 1) * N]] @ v
        gauc[bi] = [MX.gauc(a.labels[:, k], score, grp) for k in range(2)]
    assert gauc[0][0] > 0.6 and gauc[0][1] < 0.45   # click events: clicks up, purchases down
    assert gauc[2][1] > 0.6 and gauc[2][0] < 0.45   # purchase events: the reverse
