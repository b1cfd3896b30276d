"""Checkpoints: one safetensors file, config in its metadata (docs/checkpoint-format.md). Never pickle."""
import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from .config import ConfigError, config_to_json, load_config
from .model import DTRN

FORMAT = "1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match its config; the message names the tensor."""


def expected_shapes(cfg):
    """Tensor name -> shape for a config (the set docs/checkpoint-format.md implies)."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in DTRN(cfg).state_dict().items()}


def save_checkpoint(model, cfg, path):
    """Write model's weights (as F32) and its filled config to `path` atomically."""
    cfg = load_config(cfg)
    want = expected_shapes(cfg)
    sd = model.state_dict()
    if set(sd) != set(want):
        raise CheckpointError(f"model tensors do not match the config: missing {sorted(set(want) - set(sd))}, "
                              f"extra {sorted(set(sd) - set(want))}")
    tensors = {}
    for k, v in sd.items():
        if tuple(v.shape) != want[k]:
            raise CheckpointError(f"tensor '{k}': shape {tuple(v.shape)} but the config implies {want[k]}")
        tensors[k] = v.detach().to(device="cpu", dtype=torch.float32).contiguous()
    data = st_save(tensors, metadata={"dtrn_config": config_to_json(cfg), "dtrn_format": FORMAT})
    atomic_write(path, data)


def atomic_write(path, data):
    """Write bytes to `path` via a temp file in the same folder, fsync, rename, fsync the folder:
    a crash never leaves a half-written file at `path`."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def read_checkpoint(path):
    """-> (cfg, {name: float32 tensor}) after checking format, config, tensor set, dtypes and shapes."""
    path = os.fspath(path)
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            names = list(f.keys())
            if meta.get("dtrn_format") != FORMAT:
                raise CheckpointError(f"{path}: metadata 'dtrn_format' is {meta.get('dtrn_format')!r}, "
                                      f"expected {FORMAT!r}")
            if "dtrn_config" not in meta:
                raise CheckpointError(f"{path}: metadata has no 'dtrn_config'")
            try:
                cfg = load_config(json.loads(meta["dtrn_config"]))
            except (ValueError, ConfigError) as e:
                raise CheckpointError(f"{path}: metadata 'dtrn_config': {e}") from None
            want = expected_shapes(cfg)
            for n in want:
                if n not in names:
                    raise CheckpointError(f"{path}: tensor '{n}' is missing (shape {list(want[n])} expected)")
            for n in names:
                if n not in want:
                    raise CheckpointError(f"{path}: tensor '{n}' is not part of this config's model")
            tensors = {}
            for n in names:
                sl = f.get_slice(n)
                if sl.get_dtype() != "F32":
                    raise CheckpointError(f"{path}: tensor '{n}' has dtype {sl.get_dtype()}, expected F32")
                if tuple(sl.get_shape()) != want[n]:
                    raise CheckpointError(f"{path}: tensor '{n}' has shape {list(sl.get_shape())}, "
                                          f"expected {list(want[n])}")
                t = f.get_tensor(n)
                if not torch.isfinite(t).all():
                    raise CheckpointError(f"{path}: tensor '{n}' holds NaN or Inf")
                tensors[n] = t
    except CheckpointError:
        raise
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror or e}") from None
    except Exception as e:  # safetensors reports malformed files with its own exception types
        raise CheckpointError(f"{path}: not a valid safetensors file: {e}") from None
    return cfg, tensors


def load_checkpoint(path):
    """-> (DTRN model in eval mode, float32, CPU; filled config)."""
    cfg, tensors = read_checkpoint(path)
    model = DTRN(cfg)
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model, cfg
