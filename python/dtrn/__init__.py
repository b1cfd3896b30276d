"""dtrn: score DTRN multi-task recommendation models with the dtrn-edge runtime from Python.

    import dtrn
    model = dtrn.Model("small.dtrn")
    session = model.session(threads=1)          # one per thread
    out = session.score(request_dict)           # the JSON Lines request shape
    out["probabilities"]                        # numpy float32 [N, K]; also "logits", "order"
    order = dtrn.rank(out["probabilities"], [1.0, 2.0])

The same runtime as dtrn-run and the C/C++ API: for the same model and request the
probabilities and logits are the same float32 values, bit for bit. Errors are dtrn.Error
subclasses (InvalidArgumentError is also a ValueError, ...) carrying the runtime's message.
The GIL is released while scoring, so threads with a session each score in parallel.
"""
import json as _json

import numpy as _np

from . import _dtrn
from ._dtrn import (  # noqa: F401  (re-exported)
    DataLossError,
    Error,
    Field,
    InternalError,
    InvalidArgumentError,
    IoError,
    NotFoundError,
    UnimplementedError,
)

__version__ = _dtrn.version()
#: The .dtrn format_version this library reads.
FORMAT_VERSION = _dtrn.format_version()

__all__ = [
    "Model", "Session", "Field", "rank", "top_k", "compare_with_reference", "Error", "InvalidArgumentError",
    "NotFoundError", "DataLossError", "UnimplementedError", "InternalError", "IoError", "FORMAT_VERSION",
]


def _json_default(x):
    """numpy values inside a request dict -> JSON."""
    if isinstance(x, _np.integer):
        return int(x)
    if isinstance(x, _np.floating):
        return float(x)
    if isinstance(x, _np.ndarray):
        return x.tolist()
    raise TypeError(f"request: a {type(x).__name__} is not a JSON value")


class Model:
    """A verified .dtrn model (memory-mapped, immutable; share one between threads).

    Model(path, verify_checksum=True); Model.from_bytes(data). Raises NotFoundError for a
    missing file, DataLossError for a truncated or corrupted one, UnimplementedError for
    an unsupported format version.
    """

    def __init__(self, path, verify_checksum=True):
        self._m = _dtrn.Model.load(str(path), verify_checksum)

    @classmethod
    def from_bytes(cls, data, verify_checksum=True):
        self = cls.__new__(cls)
        self._m = _dtrn.Model.from_bytes(bytes(data), verify_checksum)
        return self

    path = property(lambda self: self._m.path, doc="the file it was loaded from ('' from bytes)")
    name = property(lambda self: self._m.name)
    d = property(lambda self: self._m.d, doc="embedding width")
    seq_len = property(lambda self: self._m.seq_len, doc="L, the longest behaviour sequence")
    tasks = property(lambda self: self._m.tasks, doc="task names, in output column order")
    behaviors = property(lambda self: self._m.behaviors, doc="behaviour types, in model order")
    fields = property(lambda self: self._m.fields, doc="every field (Field: name, group, kind, width, vocab, hashed)")
    seq_fields = property(lambda self: self._m.seq_fields, doc="item fields every behaviour event also carries")
    has_int8_layers = property(lambda self: self._m.has_int8_layers)
    file_size = property(lambda self: self._m.file_size)
    producer = property(lambda self: self._m.producer, doc="e.g. 'dtrn-convert 0.2.0'")
    checkpoint_digest = property(lambda self: self._m.checkpoint_digest, doc="'sha256:<hex>' of the checkpoint")

    @property
    def user_fields(self):
        return self._m.group_fields("user")

    @property
    def context_fields(self):
        return self._m.group_fields("context")

    @property
    def item_fields(self):
        return self._m.group_fields("item")

    def session(self, threads=1, kernels="auto"):
        """A Session: scoring state for one thread. threads: intra-request threads; kernels: the
        int8 kernel ("auto", "portable", "avx2", "avx512-vnni", "neon-dotprod"; all give the
        same bits, a choice this CPU lacks raises InvalidArgumentError or UnimplementedError)."""
        return Session(self, threads, kernels)

    def __repr__(self):
        return (f"dtrn.Model({self.name!r}, tasks={self.tasks}, behaviors={self.behaviors}, "
                f"{len(self.fields)} fields, int8={self.has_int8_layers})")


class Session:
    """Scores requests against a Model. Not shared between threads: make one per thread."""

    def __init__(self, model, threads=1, kernels="auto"):
        self.model = model
        self._s = model._m.session(int(threads), kernels)

    def score(self, request):
        """One request: a dict in the JSON Lines shape (docs/request-format.md) or one JSON line.

        Read by the same parser as dtrn-run. Returns {"id", "probabilities": float32 [N, K],
        "logits": float32 [N, K], "order": int32 [N] (by the request's fused score)}.
        """
        if isinstance(request, (bytes, bytearray)):
            request = request.decode("utf-8")
        if not isinstance(request, str):
            request = _json.dumps(request, default=_json_default, allow_nan=False)
        return self._s.score_json(request)

    def score_arrays(self, candidates, user=None, context=None, behaviors=None, lengths=None, side_ids=None,
                     weights=None, id=""):
        """One request from arrays, without per-candidate Python work.

        candidates: {item field: int ids [N] | float [N, w]} (one column per item field).
        user, context: {field: int id | float [w]}.
        behaviors: {behaviour type: int ids [len]} (oldest first), or an int array [B, Lmax]
            in model behaviour order with `lengths` [B] (the valid prefix of each row).
        side_ids: models with seq_fields only: {seq field: the same shape as behaviors}.
        weights: K task weights for the fused ranking (default all 1).
        Returns the same dict as score().
        """
        m = self.model
        B = len(m.behaviors)
        seqs = _sequences(behaviors, lengths, m.behaviors, "behaviors")
        sides = []
        if m.seq_fields:
            side_ids = side_ids or {}
            missing = [f for f in m.seq_fields if f not in side_ids]
            if missing:
                raise InvalidArgumentError(f"side_ids: missing seq field(s) {missing}")
            per_field = [_sequences(side_ids[f], lengths, m.behaviors, f"side_ids['{f}']") for f in m.seq_fields]
            sides = [[per_field[s][b] for s in range(len(m.seq_fields))] for b in range(B)]
        elif side_ids:
            raise InvalidArgumentError("side_ids: this model has no seq_fields")
        kinds = {f.name: f.kind for f in m.fields}
        cands = {}
        for name, col in (candidates or {}).items():
            if kinds.get(name) == "sparse":
                cands[name] = _ids(col, f"candidates['{name}']")
            else:
                cands[name] = _np.ascontiguousarray(col, dtype=_np.float32)
        w = None if weights is None else _np.ascontiguousarray(weights, dtype=_np.float32).reshape(-1)
        return self._s.score_arrays(str(id), _group(user, kinds), _group(context, kinds), seqs, sides, cands, w)


def _ids(x, what):
    a = _np.asarray(x)
    if a.dtype.kind not in "iu" and a.size:
        raise InvalidArgumentError(f"{what}: ids must be integers, got {a.dtype}")
    return _np.ascontiguousarray(a, dtype=_np.int64)


def _group(values, kinds):
    out = {}
    for name, v in (values or {}).items():
        if kinds.get(name) == "dense":
            out[name] = _np.ascontiguousarray(v, dtype=_np.float32).reshape(-1)
        else:
            out[name] = int(v) if isinstance(v, (int, _np.integer)) else v
    return out


def _sequences(behaviors, lengths, names, what):
    """{name: ids} or [B, Lmax] + lengths -> a list of B int64 arrays in model order."""
    if behaviors is None:
        raise InvalidArgumentError(f"{what}: required (one sequence per behaviour type {names})")
    if isinstance(behaviors, dict):
        unknown = [k for k in behaviors if k not in names]
        if unknown:
            raise InvalidArgumentError(f"{what}: unknown behaviour type(s) {unknown}; the model has {names}")
        missing = [k for k in names if k not in behaviors]
        if missing:
            raise InvalidArgumentError(f"{what}: missing behaviour type(s) {missing}")
        return [_ids(behaviors[k], f"{what}['{k}']").reshape(-1) for k in names]
    a = _ids(behaviors, what)
    if a.ndim != 2 or a.shape[0] != len(names):
        raise InvalidArgumentError(f"{what}: expected a [{len(names)}, Lmax] array, got shape {list(a.shape)}")
    if lengths is None:
        raise InvalidArgumentError(f"{what}: a padded [B, Lmax] array needs lengths [B]")
    n = _np.asarray(lengths).reshape(-1)
    if n.shape[0] != len(names) or (n < 0).any() or (n > a.shape[1]).any():
        raise InvalidArgumentError(f"{what}: lengths must be {len(names)} values in [0, {a.shape[1]}]")
    return [_np.ascontiguousarray(a[b, : int(n[b])]) for b in range(len(names))]


def _probabilities(scores):
    if isinstance(scores, dict):
        scores = scores["probabilities"]
    p = _np.ascontiguousarray(scores, dtype=_np.float32)
    if p.ndim != 2:
        raise InvalidArgumentError(f"scores: expected [N, K] probabilities, got shape {list(p.shape)}")
    return p


def rank(scores, weights=None):
    """Candidate indices, best first, by the fused score sum_k w_k p_k (ties: lower index).

    scores: [N, K] probabilities (or a score() result); weights: K values (default all 1).
    Exactly the runtime's ranking (dtrn::Rank), so it equals dtrn-run's "order".
    """
    p = _probabilities(scores)
    return _dtrn.rank(p, [] if weights is None else [float(w) for w in weights])


def top_k(scores, weights=None, k=10):
    """The best min(k, N) candidates of rank(scores, weights)."""
    p = _probabilities(scores)
    return _dtrn.top_k(p, [] if weights is None else [float(w) for w in weights], int(k))


def compare_with_reference(checkpoint, model_path, requests_path, **kwargs):
    """Scores a trained checkpoint (dtrn_ref, PyTorch) and its converted model (this runtime)
    on the same requests; returns a dtrn.compare.Comparison (max |dp|, max |dlogit|, ...).
    See dtrn.compare.compare_with_reference."""
    from .compare import compare_with_reference as _cmp
    return _cmp(checkpoint, model_path, requests_path, **kwargs)
