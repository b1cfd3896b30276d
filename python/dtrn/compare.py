"""Compare a trained checkpoint (the PyTorch reference, dtrn_ref) with its converted .dtrn model.

    import dtrn
    c = dtrn.compare_with_reference("model.safetensors", "model.dtrn", "requests.jsonl")
    print(c)                 # max |dp| / |dlogit| per task, ranking agreement
    assert c.max_abs_dp < 1e-4

Or from a shell:  python -m dtrn.compare CKPT.safetensors MODEL.dtrn REQUESTS.jsonl [--max-dp 1e-4]

Needs dtrn_ref (reference/, with PyTorch) importable: `pip install ./reference`, or
PYTHONPATH=reference. The requests are scored by both on the same parsed values; the
reference in float64 by default (its most accurate oracle) or float32.
"""
import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import List

import numpy as np


def _import_reference():
    try:
        import torch  # noqa: F401
        from dtrn_ref import checkpoint, golden, requests_io
    except ImportError as e:
        raise ImportError(
            f"dtrn.compare_with_reference needs the reference package dtrn_ref and PyTorch ({e}); "
            "install it with `pip install ./reference` or set PYTHONPATH to the repository's reference/ folder"
        ) from None
    return checkpoint, golden, requests_io


@dataclass
class Comparison:
    """The runtime against the reference on the same requests."""
    tasks: List[str]
    requests: int
    candidates: int
    max_abs_dp: float                 # over every candidate and task
    max_abs_dlogit: float
    mean_abs_dp: float
    per_task_max_abs_dp: List[float] = field(default_factory=list)
    per_task_max_abs_dlogit: List[float] = field(default_factory=list)
    same_order: int = 0               # requests whose fused ranking is identical
    same_top1: int = 0                # requests whose best candidate is the same
    worst_request: str = ""           # id of the request with the largest |dp|
    reference_dtype: str = "float64"

    def __str__(self):
        lines = [f"{self.requests} requests, {self.candidates} candidates; reference in {self.reference_dtype}",
                 f"max |dp| {self.max_abs_dp:.3g} (mean {self.mean_abs_dp:.3g}), max |dlogit| "
                 f"{self.max_abs_dlogit:.3g}; worst request {self.worst_request!r}"]
        for k, t in enumerate(self.tasks):
            lines.append(f"  {t:<12} max |dp| {self.per_task_max_abs_dp[k]:.3g}  max |dlogit| "
                         f"{self.per_task_max_abs_dlogit[k]:.3g}")
        lines.append(f"same fused ranking: {self.same_order}/{self.requests} requests; "
                     f"same top-1: {self.same_top1}/{self.requests}")
        return "\n".join(lines)

    def to_dict(self):
        return dict(self.__dict__)


def compare_with_reference(checkpoint, model_path, requests_path, dtype="float64", max_requests=None,
                           threads=1, verify_checksum=True):
    """Score `requests_path` (JSON Lines) with the checkpoint (dtrn_ref) and with the converted
    model (this runtime) and report how far apart they are. Raises dtrn.Error subclasses for
    runtime errors, dtrn_ref's errors (ValueError subclasses) for a bad checkpoint or request,
    and ValueError when the two models do not have the same tasks."""
    import torch

    from . import Model

    ckpt_mod, golden, requests_io = _import_reference()
    ref, cfg = ckpt_mod.load_checkpoint(str(checkpoint))
    ref = ref.to(torch.float64 if dtype == "float64" else torch.float32)
    model = Model(model_path, verify_checksum=verify_checksum)
    tasks = list(cfg["tasks"])
    if tasks != list(model.tasks):
        raise ValueError(f"the checkpoint's tasks {tasks} are not the model's {list(model.tasks)}")
    session = model.session(threads=threads)

    K = len(tasks)
    max_dp, max_dl = np.zeros(K), np.zeros(K)
    sum_dp, n_req, n_cand, same_order, same_top1 = 0.0, 0, 0, 0, 0
    worst, worst_dp = "", -1.0
    with open(requests_path, encoding="utf-8") as fh:
        lines = [(i, t) for i, t in enumerate(fh, 1) if t.strip()]
    if max_requests is not None:
        lines = lines[: int(max_requests)]
    for line_no, text in lines:
        parsed = requests_io.parse_line(text, cfg, line=line_no, source=str(requests_path))
        _, probs, logits, _ = golden.score(ref, [parsed], cfg)
        p_ref, l_ref = probs[0].double().numpy(), logits[0].double().numpy()
        out = session.score(text)
        dp = np.abs(out["probabilities"].astype(np.float64) - p_ref)
        dl = np.abs(out["logits"].astype(np.float64) - l_ref)
        max_dp, max_dl = np.maximum(max_dp, dp.max(axis=0)), np.maximum(max_dl, dl.max(axis=0))
        sum_dp += float(dp.sum())
        ref_order = np.asarray(requests_io.rank(p_ref, parsed.weights))
        same_order += int(np.array_equal(ref_order, out["order"]))
        same_top1 += int(ref_order[0] == out["order"][0])
        if float(dp.max()) > worst_dp:
            worst_dp, worst = float(dp.max()), out["id"]
        n_req += 1
        n_cand += dp.shape[0]
    if n_req == 0:
        raise ValueError(f"{requests_path}: no requests")
    return Comparison(tasks=tasks, requests=n_req, candidates=n_cand, max_abs_dp=float(max_dp.max()),
                      max_abs_dlogit=float(max_dl.max()), mean_abs_dp=sum_dp / (n_cand * K),
                      per_task_max_abs_dp=max_dp.tolist(), per_task_max_abs_dlogit=max_dl.tolist(),
                      same_order=same_order, same_top1=same_top1, worst_request=worst, reference_dtype=dtype)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m dtrn.compare",
                                 description="Compare a checkpoint (dtrn_ref) with its converted .dtrn model.")
    ap.add_argument("checkpoint")
    ap.add_argument("model")
    ap.add_argument("requests")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="the reference's arithmetic")
    ap.add_argument("--max-requests", type=int)
    ap.add_argument("--max-dp", type=float, help="exit 1 when max |dp| exceeds this")
    ap.add_argument("--json", action="store_true", help="print the comparison as JSON")
    a = ap.parse_args(argv)
    c = compare_with_reference(a.checkpoint, a.model, a.requests, dtype=a.dtype, max_requests=a.max_requests)
    print(json.dumps(c.to_dict()) if a.json else c)
    if a.max_dp is not None and c.max_abs_dp > a.max_dp:
        print(f"max |dp| {c.max_abs_dp:.3g} > {a.max_dp:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
