"""Stochastic binarization of grey-level images in [0, 1] (Salakhutdinov & Murray 2008; Burda et al. 2015):
each pixel becomes 1 with probability equal to its intensity. *Static*: one fixed draw (a seed), used for every
epoch and for test sets; *dynamic*: a fresh draw per training batch (done inside the model, see
:class:`aekit.models.variational.VariationalAutoencoder`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError


def binarize(X: Any, seed: int = 0) -> np.ndarray:
    """One Bernoulli draw per pixel: float32 0/1 array of ``X``'s shape, the same for the same ``seed``."""
    X = np.asarray(X, dtype=np.float32)
    if X.size and (X.min() < 0 or X.max() > 1):
        raise DataError(f"binarization needs X in [0, 1] (pixel intensities as probabilities), but X ranges over "
                        f"[{X.min():.3g}, {X.max():.3g}]; scale it first (e.g. MinMaxScaler)")
    return (np.random.default_rng(seed).random(X.shape, dtype=np.float32) < X).astype(np.float32)
