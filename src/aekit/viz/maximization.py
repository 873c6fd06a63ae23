"""Activation maximisation: start from random noise and do gradient ascent on the input to excite one unit
(Erhan, Bengio, Courville & Vincent 2009, "Visualizing higher-layer features of a deep network"; Géron ch. 15).

The input stays in the data's range through a sigmoid parametrisation, ``x = lo + (hi - lo) * sigmoid(z)``, and
Adam climbs on ``z``; every chosen unit gets its own input, all optimised together as one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from matplotlib.figure import Figure

from ._grid import image_grid
from ._model import as_module, check_layer, encoder_layers, model_device
from .activations import unit_activations


class MaximizedInputs(NamedTuple):
    """Result of :func:`maximize_activation`: one input per unit and the unit's activation before and after."""

    images: np.ndarray  # (n_units, n_features), within value_range
    start_activation: np.ndarray  # (n_units,) on the starting noise
    final_activation: np.ndarray  # (n_units,) on the optimised input
    units: np.ndarray  # (n_units,)
    layer: int  # non-negative encoder layer index
    value_range: tuple[float, float]


def maximize_activation(
    model: Any,
    units: Sequence[int],
    layer: int = -1,
    *,
    n_features: int | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    noise_range: tuple[float, float] | None = None,
    steps: int = 200,
    learning_rate: float = 0.1,
    random_state: int = 0,
) -> MaximizedInputs:
    """Gradient ascent on the input, from uniform noise, to maximise each chosen unit's activation.

    Parameters
    ----------
    model : Autoencoder or torch.nn.Module
    units : sequence of int
        Units of the chosen layer; one input is optimised per unit.
    layer : int, default=-1
        Encoder layer (``-1``: the coding layer); activations as in :func:`~aekit.viz.layer_activations`.
    n_features : int, optional
        Input size; defaults to the first layer's ``in_features`` or the estimator's ``n_features_in_``.
    value_range : (float, float), default=(0, 1)
        The data's range; the input never leaves it.
    noise_range : (float, float), optional
        The starting input is uniform noise over this range (inside ``value_range``); default: all of
        ``value_range``. E.g. ``(0, 2 * X.mean())`` starts from noise as bright as the data on average.
    steps : int, default=200
        Adam steps on the input.
    learning_rate : float, default=0.1
    random_state : int, default=0
        Seeds the starting noise.

    Returns
    -------
    MaximizedInputs
        ``images`` (n_units, n_features), ``start_activation`` and ``final_activation`` (n_units,), ``units``,
        ``layer``, ``value_range``.
    """
    module = as_module(model)
    index = check_layer(module, layer)
    units_t = torch.as_tensor(np.asarray(units, dtype=np.int64))
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    n_features = n_features or _n_features(model, module)
    device = model_device(module)
    n_lo, n_hi = (lo, hi) if noise_range is None else (float(v) for v in noise_range)
    if not lo <= n_lo < n_hi <= hi:
        raise ValueError(f"noise_range {noise_range} must lie inside value_range {value_range}")
    generator = torch.Generator().manual_seed(random_state)
    noise = n_lo + (n_hi - n_lo) * torch.rand(len(units_t), n_features, generator=generator)
    u = ((noise - lo) / (hi - lo)).clamp_(1e-3, 1 - 1e-3)
    z = torch.logit(u).to(device).requires_grad_(True)  # x = lo + (hi - lo) * sigmoid(z) starts as the noise
    rows = torch.arange(len(units_t), device=device)
    units_t = units_t.to(device)

    def activation(z: torch.Tensor) -> torch.Tensor:  # (n_units,): unit i's activation on input i
        acts = unit_activations(module, lo + (hi - lo) * torch.sigmoid(z), index)
        if units_t.numel() and int(units_t.max()) >= acts.shape[1]:
            raise ValueError(f"units must lie in 0..{acts.shape[1] - 1} for layer {index}, got {units_t.tolist()}")
        return acts[rows, units_t]

    was_training = module.training
    module.eval()
    optimizer = torch.optim.Adam([z], lr=learning_rate)
    threads = torch.get_num_threads()
    if device.type == "cpu":  # a handful of inputs: extra intra-op threads only spin (2-4x slower on busy CPUs)
        torch.set_num_threads(1)
    try:
        with torch.no_grad():
            start = activation(z).cpu().numpy()
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            (grad,) = torch.autograd.grad(-activation(z).sum(), z)  # only the input's gradient; weights untouched
            z.grad = grad
            optimizer.step()
        with torch.no_grad():
            final = activation(z).cpu().numpy()
            images = (lo + (hi - lo) * torch.sigmoid(z)).cpu().numpy()
    finally:
        module.train(was_training)
        torch.set_num_threads(threads)
    return MaximizedInputs(images, start, final, units_t.cpu().numpy(), index, (lo, hi))


def _n_features(model: Any, module: torch.nn.Module) -> int:
    n = getattr(model, "n_features_in_", None) or getattr(module, "config", {}).get("n_features")
    if n is None:
        first = encoder_layers(module)[0]
        n = getattr(first, "in_features", None)
    if n is None:
        raise ValueError("cannot tell the input size of this model; pass n_features")
    return int(n)


def plot_activation_maximization(
    result: MaximizedInputs,
    image_shape: Sequence[int] | None = None,
    *,
    ncols: int = 8,
    title: str | None = None,
) -> Figure:
    """The inputs found by :func:`maximize_activation`, each titled ``unit: start -> final`` activation.

    Parameters
    ----------
    result : MaximizedInputs
    image_shape : sequence of int, optional
        Shape of one input as an image (else squares).
    ncols : int, default=8
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One image panel per unit.

    Examples
    --------
    >>> result = maximize_activation(ae, units=range(8), layer=-1)             # doctest: +SKIP
    >>> fig = plot_activation_maximization(result, image_shape=(28, 28))       # doctest: +SKIP
    """
    titles = [f"u{u}: {a:.2g}→{b:.2g}" for u, a, b in
              zip(result.units, result.start_activation, result.final_activation)]
    if title is None:
        title = (f"activation maximisation, encoder layer {result.layer} "
                 "(title: unit: activation on starting noise → after ascent)")
    return image_grid(result.images, image_shape, ncols=ncols, titles=titles, value_range=result.value_range,
                      title=title, panel_size=1.2)
