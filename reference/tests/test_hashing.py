import numpy as np
import pytest

from dtrn_ref.hashing import IdError, id_to_row, ids_to_rows, splitmix64, splitmix64_np

# The spec's test vectors: (id, splitmix64(id), splitmix64(id) mod 1000).
VECTORS = [(0, 0xE220A8397B1DCDAF, 535), (1, 0x910A2DEC89025CC1, 465), (-1, 0xE4D971771B652C20, 936)]


@pytest.mark.parametrize("x,h,row", VECTORS)
def test_spec_vectors(x, h, row):
    assert splitmix64(x) == h
    assert id_to_row(x, 1000, hashed=True) == row
    assert int(splitmix64_np(np.array([x], dtype=np.int64))[0]) == h


def test_negative_ids_are_twos_complement():
    # -1 as int64 is 2^64-1 as uint64: both spellings hash alike.
    assert splitmix64(-1) == splitmix64((1 << 64) - 1)
    assert splitmix64(-(1 << 63)) == splitmix64(1 << 63)


def test_vectorised_matches_scalar_over_int64_range():
    rng = np.random.default_rng(5)
    ids = np.concatenate([rng.integers(-(1 << 63), (1 << 63) - 1, size=2000, dtype=np.int64, endpoint=True),
                          np.array([-(1 << 63), (1 << 63) - 1, -1, 0, 1], dtype=np.int64)])
    for vocab in (1, 7, 1000, 1_000_000, (1 << 40) + 3):
        rows = ids_to_rows(ids, vocab, hashed=True)
        assert rows.dtype == np.int64 and rows.min() >= 0 and rows.max() < vocab
        assert rows.tolist() == [splitmix64(int(x)) % vocab for x in ids]


def test_signed_arithmetic_would_be_wrong():
    # What int64 tensors would do (arithmetic shifts, signed wrap): the spec vectors tell it apart.
    def signed(x):
        def wrap(v):
            v &= (1 << 64) - 1
            return v - (1 << 64) if v >> 63 else v
        z = wrap(x + 0x9E3779B97F4A7C15)
        z = wrap((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9)
        z = wrap((z ^ (z >> 27)) * 0x94D049BB133111EB)
        return z ^ (z >> 31)
    assert signed(0) % 1000 != 535
    assert splitmix64(0) % 1000 == 535


def test_unhashed_range_checked():
    assert id_to_row(0, 10, False) == 0 and id_to_row(9, 10, False) == 9
    for bad in (-1, 10, 1 << 62):
        with pytest.raises(IdError, match=f"id {bad} is outside \\[0, 10\\)"):
            id_to_row(bad, 10, False, "user.hour")
    with pytest.raises(IdError) as e:
        ids_to_rows([1, 2, 11, 3], 10, False)
    assert e.value.index == 2 and e.value.value == 11 and "[2]" in str(e.value)
    assert ids_to_rows([3, 0, 9], 10, False).tolist() == [3, 0, 9]
