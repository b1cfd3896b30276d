import json
import os
import subprocess
import sys

import pytest
import torch

from dtrn_ref import synthetic, train
from dtrn_ref.baselines import Baseline
from dtrn_ref.checkpoint import load_checkpoint
from dtrn_ref.config import load_config
from dtrn_ref.requests_io import collate

REF = os.path.join(os.path.dirname(__file__), "..")
SMALL = os.path.join(REF, "configs", "small.json")
TAOBAO = os.path.join(REF, "configs", "taobao.json")
TINY = ["--train-requests", "200", "--eval-requests", "60", "--candidates", "8", "--batch-size", "32",
        "--no-progress"]


def run_train(args):
    assert train.main(args) == 0


def test_end_to_end_dtrn_exports_a_checkpoint_that_reproduces_the_model(tmp_path):
    out = tmp_path / "run"
    run_train(["--config", SMALL, "--data", "synthetic", "--out", str(out), "--epochs", "2", "--seed", "3"] + TINY)
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"] == "dtrn" and m["epochs_run"] == 2 and 1 <= m["best_epoch"] <= 2
    assert set(m["test"]) == {"click", "purchase"}
    for task in m["test"].values():
        assert 0.0 <= task["auc"] <= 1.0 and task["logloss"] > 0 and task["n"] == 60 * 8
    assert set(m["history"][0]["validation"]["click"]) >= {"auc", "gauc", "logloss"}
    model, cfg = load_checkpoint(out / "model.safetensors")
    assert cfg == load_config(SMALL)
    # the exported weights moved away from initialisation (training happened)
    fresh = train.build_model("dtrn", cfg).state_dict()
    assert any(not torch.equal(fresh[k], v) for k, v in model.state_dict().items() if k.startswith("towers."))


@pytest.mark.parametrize("name", ["shared-bottom", "mmoe", "ple"])
def test_baselines_train_on_the_same_batches(tmp_path, name):
    out = tmp_path / name
    run_train(["--config", SMALL, "--data", "synthetic", "--out", str(out), "--model", name, "--epochs", "1"] + TINY)
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"] == name and "checkpoint" not in m
    assert not list(out.glob("*.safetensors"))


def test_baseline_shapes_and_empty_sequences():
    cfg = load_config(SMALL)
    reqs = synthetic.generate(cfg, 5, seed=0, n_candidates=4)
    for r in reqs:
        r["behaviors"] = {b: [] for b in cfg["behaviors"]}
    batch = collate(reqs, cfg)
    for name in ("shared-bottom", "mmoe", "ple"):
        model = Baseline(cfg, name)
        x = model.inputs(batch)
        assert x.shape == (20, (len(cfg["fields"]) + len(cfg["behaviors"])) * cfg["d"])
        assert torch.count_nonzero(x[:, len(cfg["fields"]) * cfg["d"]:]) == 0  # empty sequence -> zero
        assert model(batch).shape == (20, 2) and torch.isfinite(model(batch)).all()


def test_loss_is_sum_of_per_task_bce_with_logits():
    logits = torch.tensor([[40.0, -3.0], [-40.0, 0.5], [2.0, 1.0]])
    labels = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    want = sum(torch.nn.functional.binary_cross_entropy_with_logits(logits[:, k], labels[:, k]) for k in range(2))
    got = train.loss_fn(logits, labels)
    assert torch.allclose(got, want) and torch.isfinite(got)
    assert got.item() > 26  # two confident mistakes of 40 in 3 examples: no saturation at log(1e-7)


def test_training_learns_the_planted_signal(tmp_path):
    out = tmp_path / "learn"
    run_train(["--config", SMALL, "--data", "synthetic", "--out", str(out), "--epochs", "2",
               "--train-requests", "1500", "--eval-requests", "300", "--no-progress"])
    m = json.loads((out / "metrics.json").read_text())
    assert m["test"]["click"]["auc"] > 0.6 and m["test"]["purchase"]["auc"] > 0.6


def test_trains_on_a_behaviour_log(tmp_path):
    rows = []
    for u in range(40):  # each user views items of "their" category, carts and buys some
        for j in range(12):
            item = (u % 5) * 100 + (u * 7 + j * 3) % 30
            rows.append(f"{u},{item},{u % 5},pv,{1000 + 60 * j + u}")
            if j % 4 == 0:
                rows.append(f"{u},{item},{u % 5},cart,{1010 + 60 * j + u}")
            if j % 6 == 0:
                rows.append(f"{u},{item},{u % 5},buy,{1020 + 60 * j + u}")
    log = tmp_path / "log.csv"
    log.write_text("\n".join(rows) + "\n")
    out = tmp_path / "logrun"
    run_train(["--config", TAOBAO, "--data", str(log), "--out", str(out), "--epochs", "1", "--no-progress"])
    m = json.loads((out / "metrics.json").read_text())
    # one request per first touch of a (user, item), but the log's first second is warm-up
    assert sum(m["requests"].values()) == len({(r.split(",")[0], r.split(",")[1]) for r in rows}) - 1
    assert (out / "model.safetensors").exists()


def test_usage_errors_are_reported(tmp_path, capsys):
    bad = tmp_path / "log.csv"
    bad.write_text("1,2,3,pv,4\n1,2,3,zap,5\n")
    assert train.main(["--config", TAOBAO, "--data", str(bad), "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    assert "line 2: behavior type 'zap'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert train.main(["--config", SMALL, "--data", "synthetic", "--out", str(tmp_path / "o"),
                           "--device", "cuda"] + TINY) == 1
        assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.slow
def test_two_process_torchrun_gloo(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONPATH=os.path.abspath(REF) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "dtrn_ref", "train", "--config", SMALL, "--data", "synthetic", "--out", str(out),
           "--epochs", "1", "--device", "cpu"] + TINY
    p = subprocess.run(cmd, cwd=REF, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2
    # both ranks evaluated their halves: the gathered metrics cover every candidate
    assert m["test"]["click"]["n"] == 60 * 8
    assert (out / "model.safetensors").exists()
