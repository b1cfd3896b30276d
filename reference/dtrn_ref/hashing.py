"""Id -> embedding row (spec "Inputs"): splitmix64 for hashed tables, a range check otherwise.

PyTorch has no uint64 and its shifts on int64 are arithmetic, so hashing is done in Python
integers (scalars) or numpy uint64 (arrays), both wrapping mod 2^64 with logical shifts.
"""
import numpy as np

MASK64 = (1 << 64) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_C0, _C1, _C2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


class IdError(ValueError):
    """An id outside an un-hashed table; `index` is its position for array look-ups."""

    def __init__(self, msg, index=None, value=None):
        super().__init__(msg)
        self.index, self.value = index, value


def splitmix64(x):
    """splitmix64 of an int64 (or uint64) Python int, as an unsigned Python int."""
    z = (x + _C0) & MASK64
    z = ((z ^ (z >> 30)) * _C1) & MASK64
    z = ((z ^ (z >> 27)) * _C2) & MASK64
    return z ^ (z >> 31)


def splitmix64_np(ids):
    """Vectorised splitmix64: int64/uint64 array -> uint64 array (numpy wraps uint64 mod 2^64)."""
    z = np.asarray(ids)
    if z.dtype != np.uint64:
        z = z.astype(np.int64, copy=False).view(np.uint64)  # two's complement, as the spec says
    with np.errstate(over="ignore"):
        z = z + np.uint64(_C0)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_C1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_C2)
        return z ^ (z >> np.uint64(31))


def id_to_row(x, vocab, hashed, what="id"):
    """One int64 id -> row in [0, vocab). `what` names the field in errors."""
    if hashed:
        return splitmix64(x) % vocab
    if not 0 <= x < vocab:
        raise IdError(f"{what}: id {x} is outside [0, {vocab}) of an un-hashed table", value=x)
    return x


def ids_to_rows(ids, vocab, hashed, what="ids"):
    """int64 array-like -> int64 numpy array of rows in [0, vocab)."""
    a = np.asarray(ids, dtype=np.int64)
    if hashed:
        return (splitmix64_np(a) % np.uint64(vocab)).astype(np.int64)
    bad = np.nonzero((a < 0) | (a >= vocab))[0]
    if bad.size:
        i = int(bad[0])
        raise IdError(f"{what}[{i}]: id {int(a[i])} is outside [0, {vocab}) of an un-hashed table", i, int(a[i]))
    return a.copy()
