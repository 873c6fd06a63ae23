"""Activations and weight initialisations by name (one table each), shared by every model family."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AekitError

def identity(x: torch.Tensor) -> torch.Tensor:
    """The linear activation (a named function, so that models holding it pickle)."""
    return x


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "elu": F.elu,
    "selu": F.selu,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "linear": identity,
}

# name -> std multiplier of 1/sqrt(fan_in) for normal inits; xavier is uniform (Glorot & Bengio 2010).
_FAN_IN_GAIN = {"he": math.sqrt(2.0), "lecun": 1.0}
INITS = ("he", "lecun", "xavier")


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation function called ``name`` (one of :data:`ACTIVATIONS`)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise AekitError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}") from None


def init_linear_(weight: torch.Tensor, bias: torch.Tensor | None, init: str, generator: torch.Generator | None = None) -> None:
    """Initialise a ``(out, in)`` weight in place: he/lecun = normal(0, gain / sqrt(fan_in)), xavier = Glorot
    uniform; biases start at zero."""
    if init not in INITS:
        raise AekitError(f"unknown init {init!r}; choose from {', '.join(INITS)}")
    fan_out, fan_in = weight.shape[0], weight.shape[1:].numel()
    with torch.no_grad():
        if init == "xavier":
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            weight.uniform_(-bound, bound, generator=generator)
        else:
            weight.normal_(0.0, _FAN_IN_GAIN[init] / math.sqrt(fan_in), generator=generator)
        if bias is not None:
            bias.zero_()


def linear_layers(sizes: list[int], init: str, generator: torch.Generator | None) -> nn.ModuleList:
    """``nn.Linear`` layers sizes[0]->sizes[1]->...; initialised with ``init``."""
    layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
    for layer in layers:
        init_linear_(layer.weight, layer.bias, init, generator)
    return layers
