import json
import os
import struct

import pytest
import torch
from refutil import HEADS, requests, tiny
from safetensors.torch import load_file, save_file

from dtrn_ref import checkpoint as ck
from dtrn_ref.checkpoint import CheckpointError, expected_shapes, load_checkpoint, read_checkpoint, save_checkpoint
from dtrn_ref.config import config_to_json
from dtrn_ref.model import DTRN, randomize_for_tests
from dtrn_ref.requests_io import collate


def header(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n])


@pytest.mark.parametrize("head", list(HEADS))
def test_round_trip(tmp_path, head):
    cfg = tiny(pooling="mean" if head == "towers" else "target", **HEADS[head])
    model = randomize_for_tests(DTRN(cfg), 7)
    p = tmp_path / "m.safetensors"
    save_checkpoint(model, cfg, p)
    h = header(p)
    assert h["__metadata__"]["dtrn_format"] == "1"
    meta_cfg = json.loads(h["__metadata__"]["dtrn_config"])
    assert "seq_fields" not in meta_cfg  # empty: left out, so such checkpoints stay byte-identical
    assert meta_cfg == {k: v for k, v in cfg.items() if k != "seq_fields"}  # filled config
    assert set(h) - {"__metadata__"} == set(model.state_dict())
    assert all(v["dtype"] == "F32" for k, v in h.items() if k != "__metadata__")
    m2, cfg2 = load_checkpoint(p)
    assert cfg2 == cfg and not m2.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
    b = collate(requests(cfg, 3), cfg)
    model.eval()
    assert torch.equal(model(b), m2(b))


def test_saves_float32_from_float64_model_and_fills_defaults(tmp_path):
    raw = dict(tiny())
    for k in ("hyper_dim", "hyper_hidden", "trm_hidden", "pooling", "dropout"):
        raw.pop(k)
    model = randomize_for_tests(DTRN(tiny()), 1).double()
    p = tmp_path / "m.safetensors"
    save_checkpoint(model, raw, p)
    meta = json.loads(header(p)["__metadata__"]["dtrn_config"])
    assert meta["hyper_dim"] == 8 and meta["trm_hidden"] == 5 and meta["pooling"] == "target"
    assert all(t.dtype == torch.float32 for t in load_file(p).values())


def test_model_must_match_config(tmp_path):
    with pytest.raises(CheckpointError, match="missing"):
        save_checkpoint(DTRN(tiny(pooling="mean")), tiny(), tmp_path / "m.safetensors")
    assert not list(tmp_path.iterdir())


def test_atomic_write(tmp_path, monkeypatch):
    cfg = tiny()
    p = tmp_path / "m.safetensors"
    save_checkpoint(DTRN(cfg), cfg, p)
    before = p.read_bytes()

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck.os, "replace", boom)
    with pytest.raises(OSError):
        save_checkpoint(randomize_for_tests(DTRN(cfg), 3), cfg, p)
    assert p.read_bytes() == before  # the old file is untouched
    assert [f.name for f in tmp_path.iterdir()] == ["m.safetensors"]  # and no temp file is left


def _write(tmp_path, tensors, cfg, fmt="1", cfg_text=None):
    p = tmp_path / "bad.safetensors"
    meta = {"dtrn_format": fmt, "dtrn_config": cfg_text if cfg_text is not None else config_to_json(cfg)}
    save_file(tensors, str(p), metadata=meta)
    return p


def _tensors(cfg):
    return {k: v.contiguous() for k, v in randomize_for_tests(DTRN(cfg), 0).state_dict().items()}


def test_missing_extra_misshaped_tensor(tmp_path):
    cfg = tiny()
    t = _tensors(cfg)
    del t["trm.1.fc2.bias"]
    with pytest.raises(CheckpointError, match="tensor 'trm.1.fc2.bias' is missing"):
        read_checkpoint(_write(tmp_path, t, cfg))
    t = _tensors(cfg)
    t["experts.9.0.weight"] = torch.zeros(2, 2)
    with pytest.raises(CheckpointError, match="tensor 'experts.9.0.weight' is not part"):
        read_checkpoint(_write(tmp_path, t, cfg))
    t = _tensors(cfg)
    t["tim.pos"] = torch.zeros(cfg["L"] + 1, cfg["d"])
    with pytest.raises(CheckpointError, match=r"tensor 'tim.pos' has shape \[7, 8\], expected \[6, 8\]"):
        read_checkpoint(_write(tmp_path, t, cfg))
    t = _tensors(cfg)
    t["gates.0.bias"] = t["gates.0.bias"].double()
    with pytest.raises(CheckpointError, match="tensor 'gates.0.bias' has dtype F64"):
        read_checkpoint(_write(tmp_path, t, cfg))
    t = _tensors(cfg)
    t["towers.1.0.weight"][0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="tensor 'towers.1.0.weight' holds NaN"):
        read_checkpoint(_write(tmp_path, t, cfg))
    # a config that implies other tensors (mean pooling has no tim.query)
    with pytest.raises(CheckpointError, match="tensor 'tim.query.(weight|bias)' is not part"):
        read_checkpoint(_write(tmp_path, _tensors(cfg), tiny(pooling="mean")))


def test_bad_metadata_and_files(tmp_path):
    cfg = tiny()
    with pytest.raises(CheckpointError, match="dtrn_format"):
        read_checkpoint(_write(tmp_path, _tensors(cfg), cfg, fmt="2"))
    with pytest.raises(CheckpointError, match="dtrn_config.*'heads'"):
        read_checkpoint(_write(tmp_path, _tensors(cfg), cfg, cfg_text=json.dumps(dict(cfg, heads=3))))
    with pytest.raises(CheckpointError, match="dtrn_config"):
        read_checkpoint(_write(tmp_path, _tensors(cfg), cfg, cfg_text="{not json"))
    p = tmp_path / "nometa.safetensors"
    save_file(_tensors(cfg), str(p))
    with pytest.raises(CheckpointError, match="dtrn_format"):
        read_checkpoint(p)
    good = tmp_path / "good.safetensors"
    save_checkpoint(DTRN(cfg), cfg, good)
    data = good.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.safetensors"):
        read_checkpoint(tmp_path / "trunc.safetensors")
    (tmp_path / "short").write_bytes(b"\x01\x02")
    with pytest.raises(CheckpointError, match="short"):
        read_checkpoint(tmp_path / "short")
    with pytest.raises(CheckpointError, match="cannot read|not a valid"):
        read_checkpoint(tmp_path / "absent.safetensors")


def test_never_pickle(tmp_path):
    cfg = tiny()
    p = tmp_path / "m.safetensors"
    save_checkpoint(DTRN(cfg), cfg, p)
    data = p.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    assert data[8:9] == b"{" and 8 + n < len(data)      # safetensors: length, JSON header, raw bytes
    assert not data.startswith(b"PK") and b"\x80\x02" not in data[:2]  # not a zip (torch.save) nor a pickle
    src = os.path.join(os.path.dirname(ck.__file__))
    for name in os.listdir(src):
        if name.endswith(".py"):
            text = open(os.path.join(src, name)).read()
            for bad in ("torch.save(", "torch.load(", "import pickle"):
                assert bad not in text, f"{name} uses {bad}"


def test_expected_shapes_follow_config():
    cfg = tiny()
    shapes = expected_shapes(cfg)
    assert shapes["emb.item_id.weight"] == (40, 8) and "emb.similar.weight" not in shapes
    assert shapes["tim.hyper.fc2.weight"] == (2 * 2 * 2 * 8, 16)
