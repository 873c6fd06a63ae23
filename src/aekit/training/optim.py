"""Optimizers by name. L2 is coupled weight decay on weight matrices only (see ``aekit.losses.penalties``);
fused kernels are used where torch has them (on CPU the default Adam loops over parameters)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..errors import AekitError

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def make_optimizer(
    name: str,
    params: Iterable[nn.Parameter],
    regularized: Iterable[nn.Parameter],
    learning_rate: float,
    l2: float = 0.0,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """An optimizer over ``params``; those also in ``regularized`` (weights, never biases) get decay ``l2``."""
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise AekitError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}") from None
    params = [p for p in params if p.requires_grad]
    if not params:
        raise AekitError("nothing to train: every parameter is frozen")
    reg_ids = {id(p) for p in regularized}
    decay = [p for p in params if id(p) in reg_ids]
    rest = [p for p in params if id(p) not in reg_ids]
    if l2:
        groups = [g for g in ({"params": decay, "weight_decay": l2}, {"params": rest, "weight_decay": 0.0}) if g["params"]]
    else:  # one group: one fused kernel call per step instead of two
        groups = [{"params": params, "weight_decay": 0.0}]
    kwargs: dict = {"lr": learning_rate}
    if name == "sgd":
        kwargs["momentum"] = momentum
    if all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params):
        kwargs["fused"] = True
    return cls(groups, **kwargs)
