"""scikit-learn estimators: the machinery every estimator shares (:mod:`.base`, the parts of :mod:`.parts`) and
the task estimators built on any family (:mod:`.classifier`, :mod:`.anomaly`). Each family's own estimator lives in its model file
(:mod:`aekit.models`); all are found here by class name, e.g. ``aekit.estimators.VariationalAutoencoder``."""

from __future__ import annotations

import importlib
from typing import Any

from .base import AutoencoderEstimator, Sampling, TorchEstimator, load

TASKS = ("classifier", "anomaly")  # estimators of tasks (not families), one module each


def load_tasks() -> None:
    for name in TASKS:
        importlib.import_module(f"{__name__}.{name}")


def __getattr__(name: str) -> Any:
    from ..registry import ESTIMATORS

    if name in ESTIMATORS:
        return ESTIMATORS.get(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AutoencoderEstimator", "Sampling", "TorchEstimator", "load", "load_tasks"]
