"""`compare` (quick mode): every model of the list trains on every seed's data, the table and the gate
come out, and the paired differences are the per-seed differences' mean."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from refutil import CONFIGS

from dtrn_ref import compare

REF = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_help_lists_the_models():
    p = subprocess.run([sys.executable, "-m", "dtrn_ref", "compare", "--help"], cwd=REF, capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=REF), timeout=120)
    assert p.returncode == 0 and "--seeds" in p.stdout and "single-task" in p.stdout and "--quick" in p.stdout


def test_quick_compare_writes_table_and_gate(tmp_path, capsys):
    out = tmp_path / "c"
    rc = compare.main(["--config", os.path.join(CONFIGS, "nt.json"), "--data", "synthetic:negative-transfer",
                       "--models", "dtrn,shared-bottom,single-task,mmoe-ta,dtrn-no-trm", "--seeds", "2", "--quick",
                       "--train-requests", "120", "--eval-requests", "60", "--epochs", "1", "--no-progress",
                       "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    table = (out / "table.md").read_text()
    assert "Negative-transfer gate" in table and "| single-task |" in table and "| dtrn-no-trm |" in table
    assert "ceiling" in table  # the world's oracle AUC
    r = res["results"]
    for m in ("shared-bottom", "mmoe-ta"):
        d = [r[s][m]["test"]["click"]["auc"] - r[s]["dtrn"]["test"]["click"]["auc"] for s in ("0", "1")]
        mean, se = res["summary"]["models"][m]["click.auc.diff"]
        assert mean == pytest.approx(np.mean(d)) and se == pytest.approx(np.std(d, ddof=1) / np.sqrt(2))
    g = res["summary"]["gate"]["per_task"]["purchase"]
    d = [r[s]["single-task"]["test"]["purchase"]["auc"] - r[s]["shared-bottom"]["test"]["purchase"]["auc"]
         for s in ("0", "1")]
    assert g["diff"] == pytest.approx(np.mean(d))
    assert all(r[s]["dtrn"]["test"]["click"]["n"] == 600 for s in ("0", "1"))


def test_unknown_model_is_a_usage_error():
    with pytest.raises(SystemExit):
        compare.parse_args(["--config", "c", "--data", "synthetic", "--models", "dtrn,nope"])
