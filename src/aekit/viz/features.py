"""First-layer features: each unit's input weights drawn as an image (Géron ch. 15, "visualizing features");
for convolutional encoders, the first layer's filters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from torch import nn

from ._grid import image_grid
from ._model import WEIGHT_LAYERS, as_module, encoder_layers, image_shape_of


def first_weight_layer(model: Any) -> nn.Module:
    """The encoder's first ``nn.Linear`` or ``nn.Conv2d`` (looking inside blocks such as ``Sequential``)."""
    for layer in encoder_layers(model):
        for module in layer.modules():
            if isinstance(module, WEIGHT_LAYERS):
                return module
    raise TypeError("the encoder has no Linear or Conv2d layer whose weights could be drawn")


def layer_features(layer: nn.Module, image_shape: Sequence[int] | None = None, extra_inputs: int = 0
                   ) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """A weight layer's units as flat rows plus the image shape of one row.

    ``nn.Linear`` (out, in): each row of the weight is one unit's input weights, drawn with ``image_shape``
    (which must hold ``in - extra_inputs`` values: the last ``extra_inputs`` inputs, a conditional model's
    label, are not drawn). ``nn.Conv2d`` (out, in, kh, kw): each filter, shape (in, kh, kw); filters
    over other than 1 or 3 input channels are averaged over them.
    """
    weight = layer.weight.detach().float().cpu().numpy()
    if isinstance(layer, nn.Conv2d):
        out, channels, kh, kw = weight.shape
        if channels not in (1, 3):  # not drawable as grey or RGB: show the mean over input channels
            weight, channels = weight.mean(axis=1, keepdims=True), 1
        return weight.reshape(out, -1), (channels, kh, kw)
    if isinstance(layer, nn.Linear):
        weight = weight[:, : weight.shape[1] - extra_inputs]
        if image_shape is not None and int(np.prod(image_shape)) != weight.shape[1]:
            raise ValueError(f"image_shape {tuple(image_shape)} holds {int(np.prod(image_shape))} values, but the "
                             f"layer takes {weight.shape[1]} inputs")
        return weight, None if image_shape is None else tuple(image_shape)
    raise TypeError(f"cannot draw the weights of a {type(layer).__name__}; expected Linear or Conv2d")


def plot_features(
    model: Any,
    image_shape: Sequence[int] | None = None,
    *,
    n_units: int = 64,
    ncols: int = 16,
    title: str | None = None,
) -> Figure:
    """Features of the encoder's first layer: each unit's input weights as an image, or each conv filter.

    Weights are drawn with zero as mid-grey, each panel scaled by its largest magnitude (white: positive).

    Parameters
    ----------
    model : Autoencoder or torch.nn.Module
        A fitted estimator or an autoencoder module with an ``encoder`` of layers.
    image_shape : sequence of int, optional
        Shape of one input as an image; defaults to the estimator's ``image_shape`` (else squares).
        Not used for conv filters.
    n_units : int, default=64
        Draw the first ``n_units`` units (or filters).
    ncols : int, default=16
    title : str, optional
        Defaults to a description of the layer.

    Returns
    -------
    matplotlib.figure.Figure
        ``min(n_units, units in the layer)`` image panels.
    """
    layer = first_weight_layer(model)
    module = as_module(model)
    extra = max(0, getattr(module, "n_inputs", 0) - getattr(module, "n_features", 0))  # after the image: a label
    rows, shape = layer_features(layer, image_shape_of(model, image_shape), extra_inputs=extra)
    n = min(n_units, len(rows))
    kind = "filters" if isinstance(layer, nn.Conv2d) else "input weights"
    if title is None:
        title = f"first-layer features: {kind} of units 0-{n - 1} of {len(rows)} (grey = 0, white > 0)"
    return image_grid(rows[:n], shape, ncols=ncols, titles=[str(i) for i in range(n)], value_range=None,
                      title=title, panel_size=0.8)
