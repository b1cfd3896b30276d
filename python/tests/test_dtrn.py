"""The dtrn Python bindings: same bits as dtrn-run, errors with the runtime's messages, GIL released."""
import json
import sys
import threading
import time

import numpy as np
import pytest

import dtrn
from conftest import EXAMPLE, run_scores


def bits_equal(a, b):
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def to_arrays(model, req):
    """A request dict -> score_arrays' keyword arguments (columns of candidates)."""
    kinds = {f.name: f.kind for f in model.fields}
    cands = {}
    for name in model.item_fields:
        col = [c[name] for c in req["candidates"]]
        cands[name] = np.asarray(col, dtype=np.int64 if kinds[name] == "sparse" else np.float32)
    return dict(candidates=cands, user=req["user"], context=req["context"],
                behaviors={b: np.asarray(v, dtype=np.int64) for b, v in req["behaviors"].items()},
                weights=req.get("weights"), id=req["id"])


@pytest.fixture(scope="module")
def f32(f32_model_path):
    return dtrn.Model(f32_model_path)


def test_model_description(f32, f32_model_path):
    assert f32.tasks == ["click", "purchase"]
    assert f32.behaviors == ["click", "cart", "purchase"]
    assert f32.user_fields == ["user_id", "user_segment", "user_profile"]
    assert f32.item_fields == ["item_id", "category", "item_stats"]
    profile = [f for f in f32.fields if f.name == "user_profile"][0]
    assert (profile.group, profile.kind, profile.width) == ("user", "dense", 4)
    assert f32.producer.startswith("dtrn-convert ") and f32.checkpoint_digest.startswith("sha256:")
    assert f32.file_size == f32_model_path.stat().st_size and f32.path == str(f32_model_path)
    assert dtrn.__version__.count(".") == 2 and dtrn.FORMAT_VERSION >= 2
    assert "click" in repr(f32)
    same = dtrn.Model.from_bytes(f32_model_path.read_bytes())
    assert same.tasks == f32.tasks and same.path == ""


def test_scores_equal_dtrn_run_bit_for_bit(model_path, requests_path, request_lines, workdir):
    """Every request of the example, f32 and int8: dict in -> the same float32 bits as dtrn-run."""
    model = dtrn.Model(model_path)
    session = model.session()
    golden = run_scores(model_path, requests_path, workdir)
    assert len(golden) == len(request_lines) == 100
    for line, want in zip(request_lines, golden):
        req = json.loads(line)
        got = session.score(req)
        assert got["id"] == want["id"]
        assert got["probabilities"].dtype == np.float32 and got["probabilities"].shape == (50, 2)
        assert bits_equal(got["probabilities"], want["probabilities"]), req["id"]
        assert bits_equal(got["logits"], want["logits"]), req["id"]
        assert np.array_equal(got["order"], want["order"]), req["id"]
        # The JSON line itself, and the array form, give the same bits.
        again = session.score(line)
        assert bits_equal(again["probabilities"], want["probabilities"])
        arr = session.score_arrays(**to_arrays(model, req))
        assert bits_equal(arr["probabilities"], want["probabilities"]), req["id"]
        assert bits_equal(arr["logits"], want["logits"]), req["id"]
        assert np.array_equal(arr["order"], want["order"])


def test_padded_behaviours_with_lengths(f32, request_lines):
    s = f32.session()
    req = json.loads(request_lines[3])
    kw = to_arrays(f32, req)
    seqs = [req["behaviors"][b] for b in f32.behaviors]
    padded = np.full((len(seqs), f32.seq_len), -1, dtype=np.int64)
    for b, seq in enumerate(seqs):
        padded[b, : len(seq)] = seq
    kw["behaviors"] = padded
    got = s.score_arrays(lengths=[len(x) for x in seqs], **kw)
    assert bits_equal(got["probabilities"], s.score(req)["probabilities"])


def test_rank_and_top_k(f32, request_lines):
    s = f32.session()
    req = json.loads(request_lines[0])
    out = s.score(req)
    assert np.array_equal(dtrn.rank(out), out["order"])
    w = [0.25, 4.0]
    p = out["probabilities"]
    fused = p[:, 0] * np.float32(w[0]) + p[:, 1] * np.float32(w[1])  # float32, task order
    order = dtrn.rank(out["probabilities"], w)
    assert np.all(np.diff(fused[order]) <= 0)
    assert np.array_equal(dtrn.top_k(out, w, 5), order[:5])
    req["weights"] = w
    assert np.array_equal(s.score(req)["order"], order)


def test_errors_carry_the_runtimes_message(f32, f32_model_path, request_lines, tmp_path):
    with pytest.raises(dtrn.NotFoundError) as e:
        dtrn.Model(tmp_path / "missing.dtrn")
    assert "missing.dtrn" in str(e.value) and e.value.code == "NOT_FOUND"
    assert isinstance(e.value, dtrn.Error) and isinstance(e.value, LookupError)

    data = bytearray(f32_model_path.read_bytes())
    with pytest.raises(dtrn.DataLossError) as e:
        dtrn.Model.from_bytes(bytes(data[: len(data) // 2]))
    assert str(e.value) and e.value.code == "DATA_LOSS"
    data[len(data) // 2] ^= 0x10
    with pytest.raises(dtrn.DataLossError, match="checksum"):
        dtrn.Model.from_bytes(bytes(data))

    s = f32.session()
    req = json.loads(request_lines[0])
    req["candidates"][4]["colour"] = 3
    with pytest.raises(dtrn.InvalidArgumentError) as e:
        s.score(req)
    assert "candidates[4]" in str(e.value) and "colour" in str(e.value) and e.value.code == "INVALID_ARGUMENT"
    assert isinstance(e.value, ValueError)

    kw = to_arrays(f32, json.loads(request_lines[0]))
    kw["candidates"]["category"] = kw["candidates"]["category"][:-1]
    with pytest.raises(dtrn.InvalidArgumentError, match=r"candidates\['category'\]: 49 rows"):
        s.score_arrays(**kw)
    kw = to_arrays(f32, json.loads(request_lines[0]))
    kw["weights"] = [1.0, 2.0, 3.0]
    with pytest.raises(dtrn.InvalidArgumentError, match="weight"):
        s.score_arrays(**kw)
    with pytest.raises(dtrn.InvalidArgumentError, match="behaviour"):
        s.score_arrays(**dict(kw, weights=None, behaviors={"click": [1]}))
    with pytest.raises(dtrn.InvalidArgumentError, match="weights"):
        dtrn.rank(np.zeros((3, 2), np.float32), [1.0])
    # A session survives its errors.
    assert s.score(json.loads(request_lines[0]))["probabilities"].shape == (50, 2)


def big_request(model, lines, n):
    """One request with n candidates (the first request's, repeated), as score_arrays arguments."""
    kw = to_arrays(model, json.loads(lines[0]))
    reps = -(-n // 50)
    kw["candidates"] = {k: np.ascontiguousarray(np.concatenate([v] * reps)[:n]) for k, v in kw["candidates"].items()}
    return kw


def test_gil_is_released_while_scoring(f32, request_lines):
    """While one thread is inside score_arrays, the main thread keeps running Python code."""
    s = f32.session()
    n, kw = 20000, None
    for _ in range(4):  # a request that takes >= 0.15 s on this machine
        kw = big_request(f32, request_lines, n)
        t = time.perf_counter()
        s.score_arrays(**kw)
        if time.perf_counter() - t >= 0.15:
            break
        n *= 3
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    try:
        span, ticks = [], []

        def worker():
            t0 = time.perf_counter()
            s.score_arrays(**kw)
            span.extend([t0, time.perf_counter()])

        th = threading.Thread(target=worker)
        th.start()
        while th.is_alive():
            ticks.append(time.perf_counter())
        th.join()
    finally:
        sys.setswitchinterval(old)
    t0, t1 = span
    d = t1 - t0
    inside = [t for t in ticks if t0 + 0.3 * d < t < t1 - 0.3 * d]
    # With the GIL held for the whole call the main thread could not run at all in there.
    assert len(inside) > 10, f"main thread ran {len(inside)} times during the middle of a {d:.3f} s score"


def test_two_threads_score_concurrently_with_a_session_each(f32, request_lines):
    reqs = [json.loads(x) for x in request_lines[:40]]
    serial = [f32.session().score(r)["probabilities"] for r in reqs]
    results, errors = [None] * len(reqs), []

    def work(part):
        try:
            s = f32.session()
            for i in part:
                results[i] = s.score(reqs[i])["probabilities"]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(range(k, len(reqs), 2),)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(bits_equal(a, b) for a, b in zip(results, serial))


def test_one_session_shared_by_threads_is_serialised(f32, request_lines):
    """Misuse (one session, two threads) is made safe by the session's lock: same results."""
    s = f32.session()
    reqs = [json.loads(x) for x in request_lines[:20]]
    want = [s.score(r)["logits"] for r in reqs]
    got = [None] * len(reqs)

    def work(k):
        for i in range(k, len(reqs), 2):
            got[i] = s.score(reqs[i])["logits"]

    ts = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert all(bits_equal(a, b) for a, b in zip(got, want))


def test_compare_with_reference(f32_model_path, requests_path):
    pytest.importorskip("torch")
    pytest.importorskip("dtrn_ref")
    c = dtrn.compare_with_reference(EXAMPLE / "model.safetensors", f32_model_path, requests_path, max_requests=10)
    assert c.requests == 10 and c.candidates == 500 and c.tasks == ["click", "purchase"]
    assert 0 <= c.max_abs_dp < 1e-4 and c.max_abs_dlogit < 1e-3, str(c)
    assert c.same_top1 == 10
    assert "max |dp|" in str(c)
