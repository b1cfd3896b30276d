"""Fixtures: the example model converted by dtrn-convert, and dtrn-run's scores of its requests.

The tools come from $DTRN_BIN (a folder, e.g. an install prefix's bin/), else $DTRN_BUILD_DIR
(default: the repository's build/), else PATH.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "small"


def tool(name):
    candidates = []
    if os.environ.get("DTRN_BIN"):
        candidates.append(Path(os.environ["DTRN_BIN"]) / name)
    build = Path(os.environ.get("DTRN_BUILD_DIR", REPO / "build"))
    sub = {"dtrn-convert": "converter", "dtrn-inspect": "converter", "dtrn-run": "runtime"}[name]
    candidates.append(build / sub / name)
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(f"{name} not found: build the project (bash scripts/build.sh) or set DTRN_BIN / DTRN_BUILD_DIR")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("dtrn-py")


@pytest.fixture(scope="session")
def requests_path():
    return EXAMPLE / "requests.jsonl"


@pytest.fixture(scope="session")
def request_lines(requests_path):
    return [line for line in requests_path.read_text().splitlines() if line.strip()]


def _convert(workdir, precision):
    out = workdir / f"small-{precision}.dtrn"
    cmd = [tool("dtrn-convert"), "--checkpoint", str(EXAMPLE / "model.safetensors"), "--output", str(out),
           "--precision", precision]
    if precision == "int8":
        cmd += ["--calibration", str(EXAMPLE / "requests.jsonl")]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


@pytest.fixture(scope="session", params=["f32", "int8"])
def model_path(request, workdir):
    return _convert(workdir, request.param)


@pytest.fixture(scope="session")
def f32_model_path(workdir):
    p = workdir / "small-f32.dtrn"
    return p if p.exists() else _convert(workdir, "f32")


def run_scores(model, requests, workdir):
    """dtrn-run's scores lines for (model, requests): a list of dicts with float32 arrays."""
    out = workdir / (Path(model).stem + "-" + Path(requests).stem + "-run.jsonl")
    subprocess.run([tool("dtrn-run"), "--model", str(model), "--requests", str(requests), "--output", str(out),
                    "--quiet"], check=True, capture_output=True)
    rows = []
    for line in out.read_text().splitlines():
        o = json.loads(line)
        rows.append({"id": o["id"], "probabilities": np.asarray(o["scores"], dtype=np.float32),
                     "logits": np.asarray(o["logits"], dtype=np.float32),
                     "order": np.asarray(o["order"], dtype=np.int32)})
    return rows
