"""Originals above their reconstructions (Géron ch. 15, "visualizing the reconstructions")."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ._grid import ValueRange, image_grid


def plot_reconstructions(
    originals: np.ndarray,
    reconstructions: np.ndarray,
    image_shape: Sequence[int] | None = None,
    n: int = 10,
    *,
    value_range: ValueRange = (0.0, 1.0),
    title: str | None = None,
) -> Figure:
    """Originals (top row) above their reconstructions (bottom row).

    Parameters
    ----------
    originals, reconstructions : numpy.ndarray
        Flat rows, shape (n_samples, n_features), in the same order.
    image_shape : sequence of int, optional
        Shape of one sample as an image, (H, W) or (C, H, W); without it rows are drawn as squares.
    n : int, default=10
        Number of pairs drawn (at most the number of rows).
    value_range : (float, float), default=(0, 1)
        Values drawn black and white.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        ``2 * n`` image panels.
    """
    n = min(n, len(originals), len(reconstructions))
    rows = np.concatenate([np.asarray(originals[:n]), np.asarray(reconstructions[:n])])
    return image_grid(rows, image_shape, ncols=n, row_labels=["original", "reconstruction"],
                      value_range=value_range, title=title, panel_size=1.1)
