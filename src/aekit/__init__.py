"""aekit: autoencoders that work, from PCA-equivalent linear ones to stacked, tied, regularized and generative ones.

``import aekit`` is cheap: the estimators, datasets and the rest load on first use (``aekit.Autoencoder``,
``aekit.load_dataset``, ...).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from .errors import AekitError, CheckpointError, ConfigError, DataError, RunFolderError, TrainingError  # noqa: E402

# public name -> module that defines it (estimators by class name come from the registry)
_LAZY = {
    "load": "aekit.estimators.base",
    "load_dataset": "aekit.data",
    "load_file": "aekit.data",
    "available_models": "aekit.registry",
}
_ESTIMATORS = ("AdversarialAutoencoder", "AnomalyDetector", "Autoencoder", "GSN", "PretrainedClassifier", "SemanticHasher",
               "VariationalAutoencoder")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in ("data", "models", "estimators", "training", "losses", "nn", "viz", "evaluation", "hashing",
                "experiments", "io", "registry", "runs", "params", "detection"):
        return importlib.import_module(f"aekit.{name}")
    from .registry import ESTIMATORS

    if name in ESTIMATORS:
        return ESTIMATORS.get(name)
    raise AttributeError(f"module 'aekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_ESTIMATORS))


__all__ = [*_ESTIMATORS, "load", "load_dataset", "load_file", "available_models", "AekitError", "CheckpointError",
           "ConfigError", "DataError", "RunFolderError", "TrainingError", "__version__"]
