"""Drawing rows as images on a grid of axes; shared by every figure that shows samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes


def as_image(row: np.ndarray, image_shape: Sequence[int] | None) -> np.ndarray:
    """A flat row as a displayable image: (H, W) grayscale or (H, W, C) colour; rows with no known shape
    are drawn as the nearest square (padded)."""
    if image_shape is None:
        side = int(np.ceil(np.sqrt(row.size)))
        padded = np.zeros(side * side, dtype=np.float32)
        padded[: row.size] = row
        return padded.reshape(side, side)
    img = np.asarray(row, dtype=np.float32).reshape(tuple(image_shape))
    if img.ndim == 3:  # (C, H, W) -> (H, W, C); one channel -> grayscale
        img = img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)
    return img


def show_image(ax: Axes, row: np.ndarray, image_shape: Sequence[int] | None, clip: bool = True) -> None:
    img = as_image(row, image_shape)
    if clip:
        img = np.clip(img, 0.0, 1.0)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0 if clip else None, vmax=1.0 if clip else None,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
