"""Small synthetic data sets from the book's examples."""

from __future__ import annotations

import numpy as np


def make_tilted_sheet(n_samples: int = 200, random_state: int = 42) -> np.ndarray:
    """Géron ch. 15's 3-D toy data for the linear autoencoder: a noisy curved sheet, centred, float32
    (n_samples, 3). Its top-2 principal subspace is what a 2-unit linear autoencoder should find."""
    rng = np.random.default_rng(random_state)
    angles = rng.random(n_samples) * 3 * np.pi / 2 - 0.5
    X = np.empty((n_samples, 3))
    X[:, 0] = np.cos(angles) + np.sin(angles) / 2 + rng.normal(size=n_samples) * 0.1 / 2
    X[:, 1] = np.sin(angles) * 0.7 + rng.normal(size=n_samples) * 0.1 / 2
    X[:, 2] = X[:, 0] * 0.1 + X[:, 1] * 0.3 + rng.normal(size=n_samples) * 0.1
    return (X - X.mean(0)).astype(np.float32)
