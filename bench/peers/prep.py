"""Requests -> prepared input tensors (npz), and goldens -> arrays. Needs numpy only, except `prepare_requests`
(which parses with dtrn_ref, i.e. needs torch and PYTHONPATH=reference).

An inputs file holds, for R requests with N candidates each, the arrays of flatmodel.INPUT_ORDER with a
leading request axis (req_sparse [R, Fs_u], seq [R, B, L], ...); `golden.npy` next to it holds the float64
reference probabilities [R, N, K].
"""
import json

import numpy as np


def prepare_requests(cfg, requests):
    """Parsed dtrn_ref Requests (same N each) -> {name: array with a leading request axis}."""
    from flatmodel import input_names
    B, L = len(cfg["behaviors"]), cfg["L"]
    Ns = {r.num_candidates for r in requests}
    if len(Ns) != 1:
        raise ValueError(f"requests must all have the same number of candidates, got {sorted(Ns)}")
    out = {n: [] for n in input_names(cfg)}
    for r in requests:
        rs, rd, cs, cd = [], [], [], []
        for f in cfg["fields"]:
            n = f["name"]
            if f["group"] != "item":
                if f["kind"] == "sparse":
                    rs.append(r.sparse[n])
                else:
                    rd.append(np.asarray(r.dense[n], np.float32))
            else:
                if f["kind"] == "sparse":
                    cs.append(np.asarray(r.cand_sparse[n], np.int64))
                else:
                    cd.append(np.asarray(r.cand_dense[n], np.float32))
        seq = np.zeros((B, L), np.int64)
        seq_len = np.zeros((B,), np.int64)
        for b, s in enumerate(r.seqs):
            seq[b, :len(s)] = s
            seq_len[b] = len(s)
        vals = {"req_sparse": np.asarray(rs, np.int64), "seq": seq, "seq_len": seq_len,
                "cand_sparse": np.stack(cs, axis=1)}
        if rd:
            vals["req_dense"] = np.concatenate(rd).astype(np.float32)
        if cd:
            vals["cand_dense"] = np.concatenate(cd, axis=1).astype(np.float32)
        for n in out:
            out[n].append(vals[n])
    return {n: np.stack(v) for n, v in out.items()}


def load_inputs(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def request(inputs, i, names):
    """The i-th request's inputs, as a list in `names` order."""
    return [np.ascontiguousarray(inputs[n][i]) for n in names]


def num_requests(inputs):
    return inputs["seq"].shape[0]


def with_candidates(inputs, n):
    """The same requests with exactly n candidates each (candidates cycled or cut): for calibration sets."""
    out = dict(inputs)
    N = inputs["cand_sparse"].shape[1]
    idx = np.arange(n) % N
    for k in ("cand_sparse", "cand_dense"):
        if k in inputs:
            out[k] = np.ascontiguousarray(inputs[k][:, idx])
    return out


def read_golden(scores_path):
    """Scores file (dtrn_ref golden) -> (ids, probs float64 [R, N, K])."""
    ids, probs = [], []
    with open(scores_path) as fh:
        for line in fh:
            if line.strip():
                o = json.loads(line)
                ids.append(o["id"])
                probs.append(np.asarray(o["scores"], np.float64))
    return ids, np.stack(probs)


def accuracy(probs, golden):
    """probs [R, N, K] vs golden [R, N, K] -> {"max_abs_dp", "mean_abs_dp"}."""
    d = np.abs(np.asarray(probs, np.float64) - golden)
    return {"max_abs_dp": float(d.max()), "mean_abs_dp": float(d.mean())}
