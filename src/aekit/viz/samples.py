"""Grids of generated samples (generative models: variational, adversarial, GSN)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ._grid import ValueRange, image_grid


def plot_samples(
    samples: np.ndarray,
    image_shape: Sequence[int] | None = None,
    *,
    ncols: int | None = None,
    value_range: ValueRange = (0.0, 1.0),
    title: str | None = "generated samples",
) -> Figure:
    """A grid of samples, ``ncols`` per row (default: a square grid, as ``aekit generate`` draws).

    Parameters
    ----------
    samples : numpy.ndarray
        Flat samples, shape (n_samples, n_features), e.g. from a generative estimator's ``sample``.
    image_shape : sequence of int, optional
        Shape of one sample as an image (else squares).
    ncols : int or None, default=None
        None: ``ceil(sqrt(n_samples))``, a square grid.
    value_range : (float, float), default=(0, 1)
        Values drawn black and white.
    title : str or None, default="generated samples"

    Returns
    -------
    matplotlib.figure.Figure
        One image panel per sample.
    """
    samples = np.asarray(samples)
    if samples.ndim != 2:
        raise ValueError(f"samples must be flat rows (n_samples, n_features), got shape {samples.shape}")
    if ncols is None:
        ncols = max(1, int(np.ceil(np.sqrt(len(samples)))))
    return image_grid(samples, image_shape, ncols=ncols, value_range=value_range, title=title)
