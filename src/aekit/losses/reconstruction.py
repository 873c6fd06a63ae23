"""Reconstruction losses, one copy each. ``reduction="mean"`` averages over every element (the book's
``reduce_mean``); ``"none"`` gives one value per row (mean over features), used for anomaly scores."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import AekitError
from ..models.base import AEOutput


def mse(output: AEOutput, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    err = F.mse_loss(output.reconstruction, target, reduction="mean" if reduction == "mean" else "none")
    return err if reduction == "mean" else err.mean(dim=1)


def bce(output: AEOutput, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    # from logits: numerically stable and one pass; targets must lie in [0, 1]
    err = F.binary_cross_entropy_with_logits(output.logits, target, reduction="mean" if reduction == "mean" else "none")
    return err if reduction == "mean" else err.mean(dim=1)


RECONSTRUCTION_LOSSES: dict[str, Callable[..., torch.Tensor]] = {"mse": mse, "bce": bce}


def reconstruction_loss(name: str) -> Callable[..., torch.Tensor]:
    try:
        return RECONSTRUCTION_LOSSES[name]
    except KeyError:
        raise AekitError(f"unknown loss {name!r}; choose from {', '.join(RECONSTRUCTION_LOSSES)}") from None
