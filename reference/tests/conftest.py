"""Every test starts from the same torch and numpy global RNG state: a test that builds a model with the
default (random) initialisation, or draws with torch.randn, behaves identically on every run."""
import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_global_rngs():
    torch.manual_seed(0)
    np.random.seed(0)
    yield
