"""Unit activations of any encoder layer, and the instances that excite each unit most (Géron ch. 15: "for each
neuron, find the training instances that activate it the most"; most useful for upper layers).

The activation of encoder layer ``i`` is what the next layer receives (layer ``i``'s output after its
nonlinearity, caught by a forward pre-hook), and for the last layer the codings. Conv feature maps
(batch, channels, H, W) count one unit per channel, its activation being the mean over positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from ._grid import ValueRange, image_grid
from ._model import as_module, check_layer, encoder_layers, image_shape_of, model_device


def unit_activations(model: Any, x: torch.Tensor, layer: int = -1) -> torch.Tensor:
    """Differentiable activations (batch, units) of encoder layer ``layer`` for a batch of flat inputs."""
    module = as_module(model)
    layers = encoder_layers(module)
    index = check_layer(module, layer)
    if index == len(layers) - 1:
        acts = module.encode(x)
    else:
        caught: list[torch.Tensor] = []

        def catch(_: Any, inputs: tuple[torch.Tensor, ...]) -> None:
            caught.append(inputs[0])

        handle = layers[index + 1].register_forward_pre_hook(catch)
        try:
            module.encode(x)
        finally:
            handle.remove()
        acts = caught[0]
    return acts.flatten(2).mean(2) if acts.ndim > 2 else acts  # conv maps: one unit per channel


def layer_activations(model: Any, X: np.ndarray, layer: int = -1, batch_size: int = 4096) -> np.ndarray:
    """Activations of encoder layer ``layer`` (``-1``: the codings) for every row of ``X``.

    Parameters
    ----------
    model : Autoencoder or torch.nn.Module
    X : numpy.ndarray
        Flat inputs, shape (n_samples, n_features).
    layer : int, default=-1
        Index into the encoder's layers; negative counts from the coding layer.
    batch_size : int, default=4096

    Returns
    -------
    numpy.ndarray
        float32, shape (n_samples, units of that layer).
    """
    module = as_module(model)
    was_training = module.training
    module.eval()
    device = model_device(module)
    X = np.ascontiguousarray(X, dtype=np.float32)
    try:
        with torch.inference_mode():
            parts = [unit_activations(module, torch.from_numpy(X[s : s + batch_size]).to(device), layer).cpu()
                     for s in range(0, len(X), batch_size)]
    finally:
        module.train(was_training)
    return torch.cat(parts).numpy()


def most_variable_units(activations: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` units whose activation varies most over the rows (dead units come last)."""
    return np.argsort(-activations.var(axis=0), kind="stable")[:n]


def top_activating(
    model: Any, X: np.ndarray, layer: int = -1, units: Sequence[int] | None = None, k: int = 6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each unit, the ``k`` rows of ``X`` that activate it most.

    Parameters
    ----------
    model : Autoencoder or torch.nn.Module
    X : numpy.ndarray
        Candidate instances, shape (n_samples, n_features), e.g. the training set.
    layer : int, default=-1
        Encoder layer (``-1``: the coding layer).
    units : sequence of int, optional
        Units of that layer; default: the 8 whose activation varies most over ``X``.
    k : int, default=6

    Returns
    -------
    units : numpy.ndarray
        (n_units,) the units.
    indices : numpy.ndarray
        (n_units, k) row indices into ``X``, most activating first.
    values : numpy.ndarray
        (n_units, k) their activations.
    """
    acts = layer_activations(model, X, layer)
    units = most_variable_units(acts, 8) if units is None else np.asarray(units, dtype=np.int64)
    if units.size and (units.min() < 0 or units.max() >= acts.shape[1]):
        raise ValueError(f"units must lie in 0..{acts.shape[1] - 1} for layer {layer}, got {units.tolist()}")
    k = min(k, len(X))
    indices = np.argsort(-acts[:, units], axis=0, kind="stable")[:k].T  # (n_units, k)
    return units, indices, np.take_along_axis(acts[:, units].T, indices, axis=1)


def plot_top_activating(
    model: Any,
    X: np.ndarray,
    layer: int = -1,
    units: Sequence[int] | None = None,
    k: int = 6,
    image_shape: Sequence[int] | None = None,
    *,
    value_range: ValueRange = (0.0, 1.0),
    title: str | None = None,
) -> Figure:
    """One row per unit: the ``k`` instances of ``X`` that activate it most, each titled with its activation.

    Parameters are those of :func:`top_activating`, plus ``image_shape`` (defaults to the estimator's),
    ``value_range`` (values drawn black and white) and ``title``.

    Returns
    -------
    matplotlib.figure.Figure
        ``n_units * k`` image panels.
    """
    units, indices, values = top_activating(model, X, layer, units, k)
    index = check_layer(model, layer)
    last = len(encoder_layers(model)) - 1
    rows = X[indices.ravel()]
    titles = [f"{v:.2f}" for v in values.ravel()]
    name = "coding layer" if index == last else f"encoder layer {index}"
    if title is None:
        title = f"most-activating instances, {name} (row: unit; title: activation)"
    return image_grid(rows, image_shape_of(model, image_shape), ncols=indices.shape[1], titles=titles,
                      row_labels=[f"unit {u}" for u in units], value_range=value_range, title=title, panel_size=0.9)
