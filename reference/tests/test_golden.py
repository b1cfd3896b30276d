import json
import math
import os

import numpy as np
import pytest
import torch
from refutil import CONFIGS, TINY
from safetensors.torch import load_file

from dtrn_ref import __main__ as cli
from dtrn_ref.checkpoint import load_checkpoint
from dtrn_ref.model import fold_hypernetwork
from dtrn_ref.requests_io import read_requests

SMALL = os.path.join(CONFIGS, "small.json")


def _read(path):
    return [json.loads(line) for line in open(path) if line.strip()]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("golden")
    ck, cln, req = d / "small.safetensors", d / "cln.safetensors", d / "req.jsonl"
    assert cli.main(["init", "--config", SMALL, "--out", str(ck), "--seed", "3", "--cln-out", str(cln)]) == 0
    assert cli.main(["requests", "--config", SMALL, "--count", "5", "--out", str(req), "--seed", "2",
                     "--candidates", "7", "--labels"]) == 0
    out64, out32 = d / "g64.jsonl", d / "g32.jsonl"
    assert cli.main(["golden", "--checkpoint", str(ck), "--requests", str(req), "--out", str(out64)]) == 0
    assert cli.main(["golden", "--checkpoint", str(ck), "--requests", str(req), "--out", str(out32),
                     "--dtype", "float32"]) == 0
    return d, ck, cln, req, out64, out32


def test_golden_scores_file(small_run):
    d, ck, cln, req, out64, out32 = small_run
    reqs = _read(req)
    g64, g32 = _read(out64), _read(out32)
    assert [r["id"] for r in g64] == [r["id"] for r in reqs] == [r["id"] for r in g32]
    spread = []
    for r, g, h in zip(reqs, g64, g32):
        assert list(g) == ["id", "scores", "logits", "order"]
        p, lg = np.array(g["scores"]), np.array(g["logits"])
        assert p.shape == lg.shape == (7, 2)
        np.testing.assert_allclose(p, 1 / (1 + np.exp(-lg)), rtol=0, atol=2e-9)  # 9 significant digits
        w = np.array(r.get("weights", [1.0, 1.0]))
        fused = p @ w
        assert sorted(g["order"]) == list(range(7))
        assert all(fused[a] >= fused[b] - 1e-8 for a, b in zip(g["order"], g["order"][1:]))
        # the float32 reference agrees with the float64 oracle within the runtime's tolerance
        np.testing.assert_allclose(np.array(h["scores"]), p, rtol=0, atol=1e-5)
        np.testing.assert_allclose(np.array(h["logits"]), lg, rtol=0, atol=1e-4)
        spread.append(p.std(0))
    assert np.mean(spread) > 0.01  # the randomised model is not constant


def test_golden_equals_model_in_process(small_run):
    d, ck, cln, req, out64, _ = small_run
    model, cfg = load_checkpoint(ck)
    model = model.double()
    from dtrn_ref.requests_io import collate
    reqs = read_requests(req, cfg)
    with torch.no_grad():
        lg = model(collate(reqs, cfg)).numpy()
    gold = np.concatenate([np.array(g["logits"]) for g in _read(out64)])
    np.testing.assert_allclose(gold, lg, rtol=1e-8, atol=1e-8)


def test_cln_out_is_the_folded_hypernetwork(small_run):
    d, ck, cln, *_ = small_run
    model, cfg = load_checkpoint(ck)
    t = load_file(str(cln))
    assert list(t) == ["cln"] and t["cln"].dtype == torch.float32
    assert t["cln"].shape == (2, 3, 2, 2, 16)
    torch.testing.assert_close(t["cln"], fold_hypernetwork(model), rtol=0, atol=1e-6)
    assert (t["cln"][..., 0, :] - 1).abs().max() > 0.05 and t["cln"][..., 1, :].abs().max() > 0.05


def test_requests_cli_variety_and_determinism(small_run, tmp_path):
    d, ck, cln, req, *_ = small_run
    again = tmp_path / "again.jsonl"
    assert cli.main(["requests", "--config", SMALL, "--count", "5", "--out", str(again), "--seed", "2",
                     "--candidates", "7", "--labels"]) == 0
    assert again.read_bytes() == req.read_bytes()
    many = tmp_path / "many.jsonl"
    assert cli.main(["requests", "--config", SMALL, "--count", "40", "--out", str(many), "--seed", "9"]) == 0
    rs = _read(many)
    assert all(len(r["candidates"]) == 50 for r in rs)  # small's N
    lens = [len(s) for r in rs for s in r["behaviors"].values()]
    assert min(lens) == 0 and max(lens) > 20 and any(0 < n <= 20 for n in lens)
    assert any(abs(r["user"]["user_id"]) > 1 << 40 for r in rs)  # hashed ids spread over int64
    assert all(0 <= r["user"]["user_segment"] < 1000 for r in rs)
    assert not any("labels" in r for r in rs) and any("weights" in r for r in rs)
    from dtrn_ref.config import load_config
    assert len(read_requests(many, load_config(SMALL))) == 40  # every generated request is valid


def test_tiny_unhashed_items_round_trip(tmp_path):
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(dict(TINY, mtl="towers", pooling="mean",
                                        experts={"shared": 0, "per_task": 0, "hidden": []})))
    ck, req, out = tmp_path / "t.safetensors", tmp_path / "r.jsonl", tmp_path / "g.jsonl"
    assert cli.main(["init", "--config", str(cfg_path), "--out", str(ck)]) == 0
    assert cli.main(["requests", "--config", str(cfg_path), "--count", "30", "--out", str(req)]) == 0
    assert cli.main(["golden", "--checkpoint", str(ck), "--requests", str(req), "--out", str(out)]) == 0
    g = _read(out)
    assert len(g) == 30 and all(len(r["scores"]) == 50 for r in g)
    assert all(math.isfinite(x) for r in g for row in r["scores"] for x in row)


def test_errors_exit_2_with_location(small_run, tmp_path, capsys):
    d, ck, cln, req, *_ = small_run
    lines = req.read_text().splitlines()
    bad = json.loads(lines[2])
    bad["candidates"][4]["category"] = 1000
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines[:2] + [json.dumps(bad)] + lines[3:]) + "\n")
    out = tmp_path / "o.jsonl"
    assert cli.main(["golden", "--checkpoint", str(ck), "--requests", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and '"r2"' in err and "candidates[4].category" in err
    assert not out.exists()
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(ck.read_bytes()[:1000])
    assert cli.main(["golden", "--checkpoint", str(trunc), "--requests", str(req), "--out", str(out)]) == 2
    assert "trunc.safetensors" in capsys.readouterr().err
    assert cli.main(["golden", "--checkpoint", str(ck), "--requests", str(tmp_path / "nope.jsonl"),
                     "--out", str(out)]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    badcfg = tmp_path / "c.json"
    badcfg.write_text(json.dumps(dict(TINY, heads=3)))
    assert cli.main(["init", "--config", str(badcfg), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "'heads'" in capsys.readouterr().err
    assert cli.main(["requests", "--config", str(badcfg), "--count", "1", "--out", str(out)]) == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["golden", "--checkpoint", str(ck)])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["requests", "--config", SMALL, "--count", "0", "--out", str(out)])
    assert e.value.code == 2


@pytest.mark.parametrize("cmd", ["golden", "init", "requests"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([cmd, "--help"])
    assert e.value.code == 0 and "--" in capsys.readouterr().out
