"""Ranking and calibration metrics per task: AUC, GAUC, logloss (numpy, exact tie handling).

AUC is the Mann-Whitney statistic with tied scores counted as half. GAUC averages the AUC of each
group (request or user) that has both classes, weighted by the group's example count; groups with
one class are skipped. Both are NaN when nothing has both classes.
"""
import math

import numpy as np


def _tie_ranks(keys_sorted):
    """1-based ranks of an already sorted key sequence, tied keys sharing their average rank."""
    n = len(keys_sorted)
    new = np.ones(n, dtype=bool)
    if n > 1:
        new[1:] = keys_sorted[1:] != keys_sorted[:-1]
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)
    run = np.cumsum(new) - 1
    return ((starts + 1 + ends) / 2.0)[run]  # average of ranks starts+1 .. ends


def auc(labels, scores):
    """Area under the ROC curve; NaN unless both classes are present."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    pos = int((y > 0.5).sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(s, kind="stable")
    ranks = _tie_ranks(s[order])
    r_pos = ranks[y[order] > 0.5].sum()
    return float((r_pos - pos * (pos + 1) / 2.0) / (pos * neg))


def gauc(labels, scores, groups):
    """Count-weighted mean of per-group AUC over groups holding both classes; NaN if none do."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1) > 0.5
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    _, g = np.unique(np.asarray(groups).reshape(-1), return_inverse=True)
    if len(y) == 0:
        return float("nan")
    order = np.lexsort((s, g))  # by group, then score
    gs, ss, ys = g[order], s[order], y[order]
    # Ties are ties only inside a group: rank on (group, score) pairs, then shift to the group start.
    new = np.ones(len(gs), dtype=bool)
    new[1:] = (gs[1:] != gs[:-1]) | (ss[1:] != ss[:-1])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(gs))
    ranks = ((starts + 1 + ends) / 2.0)[np.cumsum(new) - 1]
    n_groups = g.max() + 1
    count = np.bincount(gs, minlength=n_groups)
    group_start = np.cumsum(count) - count
    ranks = ranks - group_start[gs]
    pos = np.bincount(gs, weights=ys, minlength=n_groups)
    neg = count - pos
    r_pos = np.bincount(gs, weights=ranks * ys, minlength=n_groups)
    ok = (pos > 0) & (neg > 0)
    if not ok.any():
        return float("nan")
    a = (r_pos[ok] - pos[ok] * (pos[ok] + 1) / 2.0) / (pos[ok] * neg[ok])
    w = count[ok]
    return float((a * w).sum() / w.sum())


def group_aucs(labels, scores, groups):
    """Per-group AUC of the groups holding both classes: (group ids, AUCs, example counts), by group id."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1) > 0.5
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    gid, g = np.unique(np.asarray(groups).reshape(-1), return_inverse=True)
    g = g.reshape(-1)
    order = np.lexsort((s, g))
    gs, ss, ys = g[order], s[order], y[order]
    new = np.ones(len(gs), dtype=bool)
    new[1:] = (gs[1:] != gs[:-1]) | (ss[1:] != ss[:-1])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(gs))
    ranks = ((starts + 1 + ends) / 2.0)[np.cumsum(new) - 1]
    n_groups = len(gid)
    count = np.bincount(gs, minlength=n_groups)
    ranks = ranks - (np.cumsum(count) - count)[gs]
    pos = np.bincount(gs, weights=ys, minlength=n_groups)
    neg = count - pos
    r_pos = np.bincount(gs, weights=ranks * ys, minlength=n_groups)
    ok = (pos > 0) & (neg > 0)
    a = (r_pos[ok] - pos[ok] * (pos[ok] + 1) / 2.0) / (pos[ok] * neg[ok])
    return gid[ok], a, count[ok]


def paired_gauc_bootstrap(a_ref, a, w, n_boot=1000, seed=0):
    """GAUC(model) - GAUC(ref) over the same groups, and its standard error by resampling groups (users)."""
    w = np.asarray(w, dtype=np.float64)
    d = np.asarray(a, dtype=np.float64) - np.asarray(a_ref, dtype=np.float64)
    diff = float((w * d).sum() / w.sum())
    rng = np.random.default_rng(seed)
    cnt = rng.multinomial(len(w), np.full(len(w), 1.0 / len(w)), size=n_boot)  # [B, groups]
    ww = cnt * w[None, :]
    boots = (ww * d[None, :]).sum(1) / ww.sum(1)
    return diff, float(boots.std(ddof=1))


def logloss(labels, logits):
    """Mean binary cross-entropy computed from logits (stable: softplus(z) - y*z)."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    if len(y) == 0:
        return float("nan")
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def task_metrics(tasks, labels, logits, groups):
    """labels, logits [M, K]; groups [M] -> {task: {auc, gauc, logloss, n, positives}}."""
    labels, logits = np.asarray(labels), np.asarray(logits)
    out = {}
    for k, name in enumerate(tasks):
        out[name] = {"auc": auc(labels[:, k], logits[:, k]),
                     "gauc": gauc(labels[:, k], logits[:, k], groups),
                     "logloss": logloss(labels[:, k], logits[:, k]),
                     "n": int(labels.shape[0]), "positives": int((labels[:, k] > 0.5).sum())}
    return out


def mean_auc(per_task):
    """Mean AUC over the tasks where it is defined (NaN if none)."""
    v = [m["auc"] for m in per_task.values() if not math.isnan(m["auc"])]
    return float(np.mean(v)) if v else float("nan")
