"""Drawing rows as images on a grid of axes; shared by every figure that shows samples, weights or filters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

ValueRange = tuple[float, float] | None  # None: symmetric about zero, per image (weights, filters)


def as_image(row: np.ndarray, image_shape: Sequence[int] | None) -> np.ndarray:
    """A flat row as a displayable image: (H, W) grayscale or (H, W, C) colour; rows with no known shape
    are drawn as the nearest square (padded)."""
    if image_shape is None:
        side = int(np.ceil(np.sqrt(row.size)))
        padded = np.zeros(side * side, dtype=np.float32)
        padded[: row.size] = np.ravel(row)
        return padded.reshape(side, side)
    img = np.asarray(row, dtype=np.float32).reshape(tuple(image_shape))
    if img.ndim == 3:  # (C, H, W) -> (H, W, C); one channel -> grayscale
        img = img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)
    return img


def show_image(ax: Axes, row: np.ndarray, image_shape: Sequence[int] | None,
               value_range: ValueRange = (0.0, 1.0)) -> None:
    """Draw one flat row on ``ax`` without ticks. ``value_range`` (lo, hi) maps lo to black and hi to white
    (values outside are clipped); ``None`` centres zero on mid-grey, scaled by the image's largest magnitude."""
    img = as_image(row, image_shape)
    if value_range is None:
        m = float(np.abs(img).max()) or 1.0
        lo, hi = -m, m
    else:
        lo, hi = value_range
    if img.ndim == 3:  # colour: imshow takes no vmin/vmax, so scale to [0, 1] here
        img = np.clip((img - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
        ax.imshow(img, interpolation="nearest")
    else:
        ax.imshow(np.clip(img, lo, hi), cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(
    rows: np.ndarray | Sequence[np.ndarray],
    image_shape: Sequence[int] | None = None,
    *,
    ncols: int = 10,
    titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    value_range: ValueRange = (0.0, 1.0),
    title: str | None = None,
    panel_size: float = 1.0,
) -> Figure:
    """A figure with one panel per row of ``rows``, ``ncols`` panels per grid row (unused cells hidden).

    ``titles`` label panels, ``row_labels`` the first panel of each grid row; ``value_range`` as in
    :func:`show_image`.
    """
    n = len(rows)
    if n == 0:
        raise ValueError("nothing to draw: no rows were given")
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    extra = 0.3 if title else 0.0
    per_title = 0.2 if titles is not None else 0.0
    fig = Figure(figsize=(panel_size * ncols + (0.4 if row_labels else 0.0),
                          (panel_size + per_title) * nrows + extra), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        show_image(ax, rows[i], image_shape, value_range)
        if titles is not None:
            ax.set_title(titles[i], fontsize=7, pad=2)
    for r, label in enumerate(row_labels or ()):
        axes[r, 0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig

