"""Model families. A family is one file here: the model's math (a module registered with ``register_model``) and
the estimator that trains it (registered with ``register_estimator``, with the name ``aekit train --model`` uses).
Shared building blocks (the dense and conv autoencoders other families reuse) are families' files too.

The list below is the one place that names them: the registries import them the first time a name is looked up
(``aekit.registry.load_families``), so ``import aekit`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

FAMILIES = (
    "dense",
    "conv",
    "autoencoder",
    "variational",
    "beta_vae",
    "beta_tcvae",
    "iwae",
    "vamp",
    "wae",
    "cvae",
    "vq_vae",
    "adversarial",
    "gsn",
    "hashing",
    "classifier",
)

_EXPORTS = {"AEOutput": "base", "AutoencoderModule": "base", "build_model": "base", "ConvAutoencoder": "conv",
            "DenseAutoencoder": "dense"}


def load_families() -> None:
    for name in FAMILIES:
        importlib.import_module(f"{__name__}.{name}")


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AEOutput", "AutoencoderModule", "ConvAutoencoder", "DenseAutoencoder", "FAMILIES", "build_model",
           "load_families"]
