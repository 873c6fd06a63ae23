"""Activations and weight initialisations by name (one table each), shared by every model family.

An activation is defined once, here: its function (what every model computes under autograd) and, optionally,
the two forms the hand-written executor needs (:mod:`aekit.training.executors`): the same function computed in
place, and ``grad *= f'(x)`` computed in place from the activation's output. An activation registered without
them (:func:`register_activation`) works everywhere; models that use it train through autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@dataclass(frozen=True, eq=False)
class Activation:
    """A named activation: ``fn`` (out of place, autograd), ``inplace`` (the same values written into its input,
    no autograd) and ``grad_from_output`` (``grad *= f'(x)`` in place, from the output ``y = f(x)``); the last two
    are None where no hand-written form exists. Calling it calls ``fn``; it pickles by name."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    inplace: Callable[[torch.Tensor], torch.Tensor] | None = None
    grad_from_output: Callable[[torch.Tensor, torch.Tensor], None] | None = None
    identity: bool = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    @property
    def hand_written(self) -> bool:
        """Whether the hand-written executor can run it (in place forward and derivative from the output)."""
        return self.identity or (self.inplace is not None and self.grad_from_output is not None)

    def __reduce__(self):
        return activation, (self.name,)

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


def identity(x: torch.Tensor) -> torch.Tensor:
    """The linear activation."""
    return x


def _elu_(z: torch.Tensor) -> torch.Tensor:
    return F.elu(z, inplace=True)


def _selu_(z: torch.Tensor) -> torch.Tensor:
    return F.selu(z, inplace=True)


def _elu_grad(g: torch.Tensor, y: torch.Tensor) -> None:
    torch.ops.aten.elu_backward.grad_input(g, 1.0, 1.0, 1.0, True, y, grad_input=g)


def _selu_grad(g: torch.Tensor, y: torch.Tensor) -> None:
    torch.ops.aten.elu_backward.grad_input(g, _SELU_ALPHA, _SELU_SCALE, 1.0, True, y, grad_input=g)


def _relu_grad(g: torch.Tensor, y: torch.Tensor) -> None:
    torch.ops.aten.threshold_backward.grad_input(g, y, 0.0, grad_input=g)


def _sigmoid_grad(g: torch.Tensor, y: torch.Tensor) -> None:
    torch.ops.aten.sigmoid_backward.grad_input(g, y, grad_input=g)


def _tanh_grad(g: torch.Tensor, y: torch.Tensor) -> None:
    torch.ops.aten.tanh_backward.grad_input(g, y, grad_input=g)


ACTIVATIONS: dict[str, Activation] = {}


def register_activation(name: str, fn: Callable[[torch.Tensor], torch.Tensor],
                        inplace: Callable[[torch.Tensor], torch.Tensor] | None = None,
                        grad_from_output: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
                        identity: bool = False) -> Activation:
    """Add an activation under ``name`` (every estimator's ``activation`` accepts it at once). Without
    ``inplace`` and ``grad_from_output`` it has no hand-written form: models using it train through autograd."""
    if name in ACTIVATIONS:
        raise ValueError(f"activation {name!r} is already registered")
    ACTIVATIONS[name] = Activation(name, fn, inplace, grad_from_output, identity)
    return ACTIVATIONS[name]


register_activation("elu", F.elu, _elu_, _elu_grad)
register_activation("selu", F.selu, _selu_, _selu_grad)
register_activation("relu", F.relu, torch.relu_, _relu_grad)
register_activation("sigmoid", torch.sigmoid, torch.sigmoid_, _sigmoid_grad)
register_activation("tanh", torch.tanh, torch.tanh_, _tanh_grad)
register_activation("linear", identity, identity=True)

# name -> std multiplier of 1/sqrt(fan_in) for normal inits; xavier is uniform (Glorot & Bengio 2010).
_FAN_IN_GAIN = {"he": math.sqrt(2.0), "lecun": 1.0}
INITS = ("he", "lecun", "xavier")
#: ``init="auto"``: the init measured best for each activation (MNIST, 784-300-150-300-784, Adam 1e-3, batch 150,
#: 5 epochs, seed 0, test MSE he / lecun / xavier): elu .00635 / **.00383** / .00398, relu .0171 / .00807 /
#: **.00665**, selu .0112 / .00455 / **.00441**, tanh .00637 / **.00382** / .00386, sigmoid **.0104** / .0120 /
#: .0124, linear .00520 / .00371 / **.00368**. An activation added later (register_activation) gets "he".
AUTO_INIT = {"elu": "lecun", "relu": "xavier", "selu": "xavier", "tanh": "lecun", "sigmoid": "he", "linear": "xavier"}


def default_init(activation_name: str) -> str:
    """The init ``init="auto"`` picks for ``activation_name`` (:data:`AUTO_INIT`; "he" for others)."""
    return AUTO_INIT.get(activation_name, "he")


def activation(name: str) -> Activation:
    """The activation called ``name`` (one of :data:`ACTIVATIONS`)."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}") from None


def init_linear_(weight: torch.Tensor, bias: torch.Tensor | None, init: str, generator: torch.Generator | None = None) -> None:
    """Initialise a ``(out, in)`` weight in place: he/lecun = normal(0, gain / sqrt(fan_in)), xavier = Glorot
    uniform; biases start at zero."""
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}; choose from {', '.join(INITS)}")
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


def check_sizes(name: str, sizes: list[int]) -> list[int]:
    """``sizes`` as positive ints, or a ``ConfigError`` that says which is wrong."""
    try:
        values = [int(s) for s in sizes]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a sequence of positive integers, got {sizes!r}") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{name} must be a non-empty sequence of positive sizes, got {list(sizes)}")
    return values
