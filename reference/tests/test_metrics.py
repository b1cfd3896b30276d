import math

import numpy as np
import pytest
import torch

from dtrn_ref import metrics as MX


def pairwise_auc(y, s):
    """O(P*N) definition: P(score_pos > score_neg) + 0.5 P(tie)."""
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 60))
        y = rng.integers(0, 2, n)
        y[0], y[1] = 0, 1
        s = rng.integers(0, 5, n).astype(float)  # many ties
        assert MX.auc(y, s) == pytest.approx(pairwise_auc(y, s), abs=1e-12)


def test_auc_extremes_and_undefined():
    assert MX.auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert MX.auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert MX.auc([0, 1], [0.5, 0.5]) == 0.5
    assert math.isnan(MX.auc([1, 1, 1], [0.1, 0.2, 0.3]))


def test_gauc_is_count_weighted_mean_of_group_aucs_skipping_one_class_groups():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(30), rng.integers(1, 12, 30))
    rng.shuffle(groups)  # groups need not be contiguous
    y = rng.integers(0, 2, len(groups))
    s = rng.integers(0, 4, len(groups)).astype(float)
    num = den = 0.0
    for g in np.unique(groups):
        m = groups == g
        if 0 < y[m].sum() < m.sum():
            num += m.sum() * pairwise_auc(y[m], s[m])
            den += m.sum()
    assert MX.gauc(y, s, groups) == pytest.approx(num / den, abs=1e-12)
    # ties across groups are not ties: shifting one group's scores changes nothing
    s2 = s + (groups == groups[0]) * 100.0
    assert MX.gauc(y, s2, groups) == pytest.approx(num / den, abs=1e-12)
    assert math.isnan(MX.gauc([1, 0, 1], [0.1, 0.2, 0.3], [0, 1, 2]))


def test_logloss_matches_torch_bce_with_logits_and_is_stable():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 30, 500)  # saturating logits: probabilities would round to 0/1
    y = rng.integers(0, 2, 500).astype(float)
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(z, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)).item()
    assert MX.logloss(y, z) == pytest.approx(want, rel=1e-12)
    assert math.isfinite(MX.logloss([1.0], [-1000.0]))


def test_task_metrics_and_mean_auc():
    y = np.array([[1, 0], [0, 0], [1, 1], [0, 0]])
    z = np.array([[2.0, 0.0], [-1.0, 0.0], [0.5, 3.0], [0.0, -2.0]])
    m = MX.task_metrics(["click", "buy"], y, z, np.array([0, 0, 1, 1]))
    assert m["click"]["auc"] == 1.0 and m["click"]["positives"] == 2 and m["click"]["n"] == 4
    assert m["buy"]["auc"] == 1.0
    assert math.isnan(m["buy"]["gauc"]) is False and m["buy"]["gauc"] == 1.0  # only group 1 has both classes
    assert MX.mean_auc(m) == 1.0
    m["buy"]["auc"] = float("nan")
    assert MX.mean_auc(m) == 1.0
