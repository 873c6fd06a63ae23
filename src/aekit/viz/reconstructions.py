"""Originals above their reconstructions (Géron ch. 15, "visualizing the reconstructions")."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ._grid import show_image


def plot_reconstructions(
    originals: np.ndarray, reconstructions: np.ndarray, image_shape: Sequence[int] | None = None, n: int = 10
) -> Figure:
    """Two rows of ``n`` panels: originals (top) and their reconstructions (bottom)."""
    n = min(n, len(originals))
    fig = Figure(figsize=(1.2 * n, 2.6), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        show_image(axes[0, i], originals[i], image_shape)
        show_image(axes[1, i], reconstructions[i], image_shape)
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstruction")
    return fig
