from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Where MNIST/Fashion-MNIST live. Tests that need them fail loudly (never skip) when it is not set."""
    value = os.environ.get("AEKIT_DATA_DIR")
    assert value, "AEKIT_DATA_DIR is not set: run the tests with AEKIT_DATA_DIR=../shared/data (see README)"
    path = Path(value)
    assert (path / "mnist").is_dir(), f"AEKIT_DATA_DIR={value} has no mnist/ folder"
    return path


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    import aekit

    ds = aekit.load_dataset("digits")
    return ds.X_train, ds.X_test


@pytest.fixture
def tiny() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((64, 12), dtype=np.float32)
