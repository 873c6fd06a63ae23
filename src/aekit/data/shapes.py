"""Procedurally drawn shapes with known factors of variation, like dSprites (Matthey et al. 2017), made by code:
no download. Every combination of five factors is drawn once, as a binary image:

- ``shape``: square, ellipse, heart;
- ``scale``: ``n_values[1]`` sizes from 0.5 to 1 (relative to the largest);
- ``rotation``: ``n_values[2]`` angles in [0, 2 pi) (the square repeats every quarter turn and the ellipse every
  half turn, as in dSprites);
- ``x``, ``y``: ``n_values[3]`` and ``n_values[4]`` positions, evenly spaced, the shape always inside the image.

Each pixel is inside or outside the shape (its centre tested against the shape's implicit equation), so the data
is binary, as dSprites is. :func:`make_shapes` returns the images and their factor indices; the registered data set
``"shapes"`` (``aekit.load_dataset("shapes")``, ``aekit train --dataset shapes``) splits them 90/10 (seeded) with the
shape as the label. The factors are what disentanglement metrics score against
(:func:`aekit.evaluation.mutual_information_gap`).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError
from .datasets import Dataset, register_dataset

FACTORS = ("shape", "scale", "rotation", "x", "y")
SHAPES = ("square", "ellipse", "heart")
DEFAULT_VALUES = (3, 4, 8, 8, 8)  # 6,144 images


class Shapes(NamedTuple):
    images: np.ndarray  # (n, size * size) float32 in {0, 1}
    factors: np.ndarray  # (n, 5) int64: the index of each factor's value
    values: tuple[np.ndarray, ...]  # each factor's values (shape: 0, 1, 2; scale; rotation in radians; x; y)
    image_shape: tuple[int, int]


def _inside(shape: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points (u, v) in the shape's own frame (unit size) lie inside it; ``shape`` broadcasts."""
    square = (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    ellipse = u**2 + (v / 0.5) ** 2 <= 1.0
    hu, hv = u / 0.85, -(v / 0.85) + 0.2  # the heart's curve spans about [-1.1, 1.1] x [-1, 1.2]
    heart = (hu**2 + hv**2 - 1.0) ** 3 - hu**2 * hv**3 <= 0.0
    return np.where(shape == 0, square, np.where(shape == 1, ellipse, heart))


def make_shapes(size: int = 32, n_values: tuple[int, int, int, int, int] = DEFAULT_VALUES) -> Shapes:
    """Every combination of the factors' values, drawn as ``size`` x ``size`` binary images (see the module)."""
    n_values = tuple(int(v) for v in n_values)
    if len(n_values) != 5 or min(n_values) < 1 or n_values[0] > len(SHAPES) or int(size) < 8:
        raise ConfigError(f"n_values gives the number of values of (shape <= 3, scale, rotation, x, y), each >= 1, "
                          f"and size must be >= 8; got n_values={n_values}, size={size}")
    scales = np.linspace(0.5, 1.0, n_values[1]) if n_values[1] > 1 else np.ones(1)
    rotations = np.arange(n_values[2]) * (2 * np.pi / n_values[2])
    radius = 0.45  # the largest shape's half-size, in image units [-1, 1]
    room = 1.0 - radius * 1.15  # centres keep every shape inside
    xs = np.linspace(-room, room, n_values[3]) if n_values[3] > 1 else np.zeros(1)
    ys = np.linspace(-room, room, n_values[4]) if n_values[4] > 1 else np.zeros(1)
    factors = np.array(list(itertools.product(*(range(n) for n in n_values))), dtype=np.int64)  # (n, 5)
    grid = (np.arange(size) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    py, px = np.meshgrid(grid, grid, indexing="ij")  # row = y (down), column = x
    images = np.empty((len(factors), size * size), dtype=np.float32)
    for start in range(0, len(factors), 1024):
        f = factors[start : start + 1024]
        s = (scales[f[:, 1]] * radius)[:, None, None]
        angle = rotations[f[:, 2]][:, None, None]
        dx, dy = px[None] - xs[f[:, 3]][:, None, None], py[None] - ys[f[:, 4]][:, None, None]
        u = (np.cos(angle) * dx + np.sin(angle) * dy) / s  # rotate by -angle, then scale to unit size
        v = (-np.sin(angle) * dx + np.cos(angle) * dy) / s
        images[start : start + 1024] = _inside(f[:, 0][:, None, None], u, v).reshape(len(f), -1)
    return Shapes(images, factors, (np.arange(n_values[0]), scales, rotations, xs, ys), (int(size), int(size)))


@register_dataset("shapes")
def _shapes(data_dir: Path | None, download: bool) -> Dataset:
    """The shapes of :func:`make_shapes` at their defaults (6,144 32x32 images), 90/10 train/test (seed 0), the
    shape as the label."""
    data = make_shapes()
    order = np.random.default_rng(0).permutation(len(data.images))
    cut = int(0.9 * len(order))
    train, test = np.sort(order[:cut]), np.sort(order[cut:])
    return Dataset(data.images[train], data.factors[train, 0], data.images[test], data.factors[test, 0],
                   data.image_shape)
