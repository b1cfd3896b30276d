"""The CUDA training path (issue 13). The GPU tests skip cleanly without CUDA; the CPU tests here cover
the same options (--amp bf16, --backend) on the CPU so the flags cannot rot.

On a GPU machine: scripts/cuda_check.sh runs these with CUDA visible (plus trainings, torchrun nccl and
runtime parity of a GPU-trained model)."""
import argparse
import json
import os
import subprocess
import sys

import pytest
import torch
from refutil import CONFIGS, requests

from dtrn_ref import train as T
from dtrn_ref.config import load_config
from dtrn_ref.model import DTRN, randomize_for_tests
from dtrn_ref.requests_io import collate, parse_request

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device visible to this PyTorch")
REF = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def opts(**over):
    a = argparse.Namespace(epochs=1, batch_size=64, lr=2e-3, patience=2, amp="off", no_progress=True,
                           data="synthetic", train_requests=800, eval_requests=200, test_requests=None,
                           candidates=10, seed=0)
    for k, v in over.items():
        setattr(a, k, v)
    return a


@needs_cuda
@pytest.mark.parametrize("name", ["small", "small-seq", "standard"])
def test_cpu_and_gpu_forward_agree_in_float32(name):
    cfg = load_config(os.path.join(CONFIGS, f"{name}.json"))
    model = randomize_for_tests(DTRN(cfg), 3).eval()
    b = collate([parse_request(r, cfg) for r in requests(cfg, 6, seed=2, candidates=[7, 1, 30])], cfg)
    with torch.no_grad():
        cpu = model(b)
        gpu = model.cuda()(b.to("cuda")).cpu()
    print(f"{name}: max |dlogit| CPU vs GPU {float((cpu - gpu).abs().max()):.3g}, "
          f"max |dp| {float((torch.sigmoid(cpu) - torch.sigmoid(gpu)).abs().max()):.3g}")
    torch.testing.assert_close(torch.sigmoid(gpu), torch.sigmoid(cpu), rtol=0, atol=1e-5)
    torch.testing.assert_close(gpu, cpu, rtol=0, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize("model", ["dtrn", "mmoe"])
def test_one_epoch_on_gpu_reaches_the_cpu_loss(model):
    cfg = load_config(os.path.join(CONFIGS, "small.json"))
    a = opts()
    data = T.load_data(a, cfg, seed=0)
    res = {}
    for dev in ("cpu", "cuda"):
        r = T.fit(T.build_model_seeded(model, cfg, 0), data, cfg, a, torch.device(dev), seed=0)
        res[dev] = r
    lc, lg = res["cpu"]["history"][0]["train_loss"], res["cuda"]["history"][0]["train_loss"]
    print(f"{model}: epoch-1 train loss CPU {lc:.5f} GPU {lg:.5f}; test mean AUC CPU "
          f"{res['cpu']['test_mean_auc']:.4f} GPU {res['cuda']['test_mean_auc']:.4f}; peak GPU memory "
          f"{res['cuda']['peak_gpu_memory_bytes'] / 2**20:.1f} MiB")
    assert abs(lc - lg) <= 1e-3 * abs(lc)  # same init, same batches: only float rounding differs
    assert abs(res["cpu"]["test_mean_auc"] - res["cuda"]["test_mean_auc"]) < 0.01
    assert res["cuda"]["peak_gpu_memory_bytes"] > 0


@needs_cuda
def test_bf16_autocast_on_gpu_is_close_to_float32():
    cfg = load_config(os.path.join(CONFIGS, "small.json"))
    data = T.load_data(opts(), cfg, seed=0)
    f32 = T.fit(T.build_model_seeded("dtrn", cfg, 0), data, cfg, opts(), torch.device("cuda"), seed=0)
    bf = T.fit(T.build_model_seeded("dtrn", cfg, 0), data, cfg, opts(amp="bf16"), torch.device("cuda"), seed=0)
    l32, lbf = f32["history"][0]["train_loss"], bf["history"][0]["train_loss"]
    print(f"bf16 autocast: epoch-1 loss {lbf:.5f} vs f32 {l32:.5f}; test mean AUC {bf['test_mean_auc']:.4f} vs "
          f"{f32['test_mean_auc']:.4f}; {bf['train_requests_per_s']:.0f} vs {f32['train_requests_per_s']:.0f} req/s")
    assert abs(lbf - l32) <= 0.05 * l32
    assert abs(bf["test_mean_auc"] - f32["test_mean_auc"]) < 0.02


@needs_cuda
def test_torchrun_nccl(tmp_path):
    n = torch.cuda.device_count()
    env = dict(os.environ, PYTHONPATH=REF, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n), "-m",
           "dtrn_ref", "train", "--config", os.path.join(CONFIGS, "small.json"), "--data", "synthetic", "--out",
           str(tmp_path / "o"), "--epochs", "1", "--device", "cuda", "--backend", "nccl", "--train-requests", "640",
           "--eval-requests", "64", "--no-progress"]
    p = subprocess.run(cmd, cwd=REF, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["world_size"] == n and m["device"].startswith("cuda")


# ---- the same options on the CPU -------------------------------------------------------------------

def test_bf16_autocast_option_runs_on_cpu():
    cfg = load_config(os.path.join(CONFIGS, "small.json"))
    a = opts(train_requests=256, eval_requests=64)
    data = T.load_data(a, cfg, seed=0)
    f32 = T.fit(T.build_model_seeded("dtrn", cfg, 0), data, cfg, a, torch.device("cpu"), seed=0)
    bf = T.fit(T.build_model_seeded("dtrn", cfg, 0), data, cfg, opts(train_requests=256, eval_requests=64,
                                                                         amp="bf16"), torch.device("cpu"), seed=0)
    l32, lbf = f32["history"][0]["train_loss"], bf["history"][0]["train_loss"]
    assert lbf != l32 and abs(lbf - l32) < 0.1 * l32  # autocast really ran, and stayed close
    assert f32["train_requests_per_s"] > 0 and "peak_gpu_memory_bytes" not in f32


def test_amp_is_off_by_default_and_nccl_needs_cuda(tmp_path, monkeypatch, capsys):
    a = T.parse_args(["--config", "c", "--data", "synthetic", "--out", "o"])
    assert a.amp == "off" and a.backend == "auto"
    monkeypatch.setenv("WORLD_SIZE", "2")
    rc = T.main(["--config", os.path.join(CONFIGS, "small.json"), "--data", "synthetic", "--out",
                 str(tmp_path / "o"), "--device", "cpu", "--backend", "nccl"])
    assert rc == 1 and "--backend nccl needs CUDA" in capsys.readouterr().err
