"""Smoke tests of the peers bench's export and setup code.

Runs anywhere with the reference's dependencies (torch, numpy, safetensors): the export-friendly model is checked
against the float64 reference, the report against a made-up results file. Each peer's test exports a small random
model and checks the peer's outputs against the reference; it is skipped unless that peer imports in the current
interpreter, so run it inside each peer's environment to test that peer:
    PYTHONPATH=reference:bench/peers /work/peer-venvs/onnxruntime/bin/python -m pytest bench/peers/tests
"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS_DIR = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(PEERS_DIR))
for p in (PEERS_DIR, os.path.join(REPO, "reference")):
    if p not in sys.path:
        sys.path.insert(0, p)

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")

CFG = os.path.join(REPO, "reference", "configs", "small.json")
N = 7


def _has(*mods):
    return all(importlib.util.find_spec(m) is not None for m in mods)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A random small checkpoint, calibration inputs, one inputs file (N candidates, one empty sequence) and
    its float64 goldens."""
    from dtrn_ref.checkpoint import load_checkpoint, save_checkpoint
    from dtrn_ref.config import load_config
    from dtrn_ref.model import DTRN, randomize_for_tests
    from dtrn_ref.requests_io import collate, parse_request
    from dtrn_ref.synthetic import generate
    import prep
    d = tmp_path_factory.mktemp("peers")
    cfg = load_config(CFG)
    ckpt = str(d / "small.safetensors")
    save_checkpoint(randomize_for_tests(DTRN(cfg), 3), cfg, ckpt)
    model, cfg = load_checkpoint(ckpt)
    calib = [parse_request(r, cfg) for r in generate(CFG, 4, seed=1, n_candidates=20)]
    np.savez(d / "calib.npz", **prep.prepare_requests(cfg, calib))
    reqs = [parse_request(r, cfg) for r in generate(CFG, 3, seed=2, n_candidates=N)]
    reqs[1].seqs[0] = reqs[1].seqs[0][:0]  # an empty behaviour sequence
    np.savez(d / f"inputs-N{N}.npz", **prep.prepare_requests(cfg, reqs))
    with torch.no_grad():
        gold = torch.sigmoid(model.double()(collate(reqs, cfg))).numpy().reshape(len(reqs), N, -1)
    np.save(d / f"golden-N{N}.npy", gold)
    return {"dir": d, "ckpt": ckpt, "calib": str(d / "calib.npz"), "inputs": str(d / f"inputs-N{N}.npz"),
            "golden": str(d / f"golden-N{N}.npy"), "cfg": cfg}


def test_flat_model_matches_reference(world):
    """Plain and split (user stage + candidate stage) compute the reference model, float32 vs float64."""
    import flatmodel
    import prep
    from dtrn_ref.checkpoint import load_checkpoint
    model, cfg = load_checkpoint(world["ckpt"])
    inputs, gold = prep.load_inputs(world["inputs"]), np.load(world["golden"])
    plain, user, cand = flatmodel.Plain(model), flatmodel.UserStage(model), flatmodel.CandidateStage(model)
    names = flatmodel.input_names(cfg)
    assert names == [n for n in flatmodel.INPUT_ORDER if n in inputs]
    with torch.no_grad():
        for i in range(prep.num_requests(inputs)):
            a = [torch.from_numpy(x) for x in prep.request(inputs, i, names)]
            d = dict(zip(names, a))
            p1 = plain(*a).numpy()
            xu, h = user(*[d[k] for k in flatmodel.user_input_names(cfg)])
            p2 = cand(xu, h, *[d[k] for k in flatmodel.cand_input_names(cfg)[2:]]).numpy()
            assert np.abs(p1 - gold[i]).max() < 1e-5
            assert np.abs(p2 - gold[i]).max() < 1e-5


def test_with_candidates_and_accuracy():
    import prep
    inp = {"cand_sparse": np.arange(12).reshape(1, 4, 3), "seq": np.zeros((1, 2, 5))}
    out = prep.with_candidates(inp, 6)
    assert out["cand_sparse"].shape == (1, 6, 3)
    assert (out["cand_sparse"][0, 4] == inp["cand_sparse"][0, 0]).all()
    acc = prep.accuracy(np.full((1, 2, 2), 0.5), np.full((1, 2, 2), 0.25))
    assert acc == {"max_abs_dp": 0.25, "mean_abs_dp": 0.25}


def test_report_from_results(tmp_path):
    """The report writes a table naming every peer, the N sweep, and what could not run."""
    import report
    ns = [10, 100]

    def ent(rt, var, exp, prec, p50, err=None):
        return {"runtime": rt, "variant": var, "export": exp, "precision": prec,
                "by_n": {} if err else {str(n): {"p50_ms": p50 * n / 10, "p90_ms": p50 * n / 9,
                                                 "cpu_p50_ms": p50 * n / 10} for n in ns},
                "accuracy": {} if err else {"10": {"max_abs_dp": 1e-7, "mean_abs_dp": 1e-8}},
                "errors": {"10": err, "100": err} if err else {}}
    rts = {"dtrn-edge/int8": ent("dtrn-edge", "int8", "native (.dtrn)", "int8", 0.1),
           "dtrn-edge/f32": ent("dtrn-edge", "f32", "native (.dtrn)", "f32", 0.2),
           "onnxruntime/f32-plain": ent("onnxruntime", "f32-plain", "plain", "f32", 0.3),
           "openvino/int8-plain": ent("openvino", "int8-plain", "plain", "int8", 0.25),
           "litert/f32-plain": ent("litert", "f32-plain", "plain", "f32", 0.5),
           "executorch/int8-static-plain": ent("executorch", "int8-static-plain", "plain", "int8", 0, "boom")}
    r = {"date_utc": "20260101T000000Z", "label": "test", "git": "x", "pinned_cpu": 1, "rounds": 3, "round_s": 0.1,
         "requests_per_n": 2, "ns": ns, "duration_s": 1,
         "cpu": {"slug": "test-cpu", "model_name": "Test", "isa": ["avx2"], "cores": 2},
         "workloads": {"small": {"runtimes": rts, "peers": {"pytorch": {"error": "not installed (x)"}}}}}
    p = tmp_path / "results.json"
    p.write_text(json.dumps(r))
    has_mpl = _has("matplotlib")
    rc = report.main([str(p), "--results", str(tmp_path / "out"), "--venvs", str(tmp_path / "none")])
    md = (tmp_path / "out" / "test-cpu.md").read_text()
    for word in ("ONNX Runtime", "OpenVINO", "LiteRT", "ExecuTorch", "boom", "not installed", "3.00x", "N = 100"):
        assert word in md, word
    if has_mpl:
        assert rc == 0 and (tmp_path / "out" / "test-cpu-latency.png").stat().st_size > 1000


def test_cpu_slug():
    import run_all
    s = run_all.cpu_slug()
    assert s and s == s.lower() and " " not in s


def test_setup_refuses_venvs_inside_repo():
    r = subprocess.run(["bash", os.path.join(PEERS_DIR, "setup.sh"), "pytorch"], capture_output=True, text=True,
                       env=dict(os.environ, PEER_VENVS=os.path.join(REPO, "venvs")))
    assert r.returncode == 2 and "outside the repository" in r.stderr


def test_gemm_to_matmul(tmp_path):
    pytest.importorskip("onnx")
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    import export
    w = np.arange(6, dtype=np.float32).reshape(3, 2)   # [out, in] with transB = 1
    b = np.array([1, 2, 3], np.float32)
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    src, dst = str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx")
    onnx.save(helper.make_model(g), src)
    assert export.gemm_to_matmul(src, dst) == 1
    m = onnx.load(dst)
    assert [n.op_type for n in m.graph.node] == ["MatMul", "Add"]
    if _has("onnxruntime"):
        import onnxruntime as ort
        x = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
        y = ort.InferenceSession(dst, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        assert np.allclose(y, x @ w.T + b, atol=1e-6)


# ---- one test per peer: export (a few variants), load in the worker's adapter, compare with the goldens ----

PEER_CASES = [
    ("onnxruntime", ("onnxruntime", "onnx", "onnxscript"), "f32-split,int8-dynamic-plain"),
    ("openvino", ("openvino", "nncf", "onnx", "onnxscript"), "f32-plain,int8-split"),
    ("litert", ("litert_torch", "ai_edge_litert", "ai_edge_quantizer"), "f32-split,int8-dynamic-plain"),
    ("executorch", ("executorch",), "f32-split,int8-dynamic-plain"),
    ("pytorch", ("torch",), "f32-plain,int8-dynamic-split"),
]


@pytest.mark.parametrize("peer,mods,variants", PEER_CASES, ids=[c[0] for c in PEER_CASES])
def test_peer_export_numerics(world, peer, mods, variants):
    if not _has(*mods):
        pytest.skip(f"{peer} not installed here ({', '.join(mods)}); run in its environment (setup.sh {peer})")
    out = world["dir"] / peer
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "reference"), PEERS_DIR]))
    r = subprocess.run([sys.executable, os.path.join(PEERS_DIR, "export.py"), peer, "--checkpoint", world["ckpt"],
                        "--calib", world["calib"], "--out", str(out), "--ns", str(N), "--only", variants],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    man = json.loads((out / "manifest.json").read_text())
    assert {v["name"] for v in man["variants"]} == set(variants.split(","))
    for v in man["variants"]:
        assert v["error"] is None, v
    r = subprocess.run([sys.executable, os.path.join(PEERS_DIR, "worker.py"), peer, "--manifest",
                        str(out / "manifest.json"), "--inputs", world["inputs"], "--golden", world["golden"],
                        "--n", str(N)], input=json.dumps({"run": variants.split(",")[0], "warmup": 1, "runs": 3})
                       + "\n" + '{"quit": true}\n', capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    ready = lines[0]["ready"]
    for name, st in ready.items():
        assert st["ok"], (name, st)
        tol = 1e-5 if name.startswith("f32") else 0.2   # int8: a sanity bound, the bench reports the measured error
        assert st["max_abs_dp"] < tol, (name, st)
    assert len(lines[1]["wall_ms"]) == 3 and all(t > 0 for t in lines[1]["wall_ms"])
