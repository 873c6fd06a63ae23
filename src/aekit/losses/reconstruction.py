"""Reconstruction losses, one copy each. ``reduction="mean"`` averages over every element (the book's
``reduce_mean``); ``"sum"`` sums over features and averages over the batch (per-image nats, for the VAE);
``"none"`` gives one value per row (mean over features), used for anomaly scores; ``"rows"`` one per row summed
over features (negative log-likelihoods per image, for importance sampling)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..models.base import AEOutput
from ..nn.chain import activate_, activation_backward_


def _reduce(err: torch.Tensor, reduction: str) -> torch.Tensor:
    """Elementwise errors (batch, ...) -> "none": per-row mean; "sum": per-row sum, averaged over the batch
    (nats per image, the VAE's convention); "mean" is handled by the caller's fused call."""
    rows = err.flatten(1)
    if reduction == "rows":
        return rows.sum(dim=1)
    return rows.sum(dim=1).mean() if reduction == "sum" else rows.mean(dim=1)


def mse(output: AEOutput, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    if reduction == "mean":
        return F.mse_loss(output.reconstruction, target)
    return _reduce(F.mse_loss(output.reconstruction, target, reduction="none"), reduction)


def bce(output: AEOutput, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    # from logits: numerically stable and one pass; targets must lie in [0, 1]
    if reduction == "mean":
        return F.binary_cross_entropy_with_logits(output.logits, target)
    return _reduce(F.binary_cross_entropy_with_logits(output.logits, target, reduction="none"), reduction)


def gaussian(output: AEOutput, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Negative log-density of ``target`` under N(reconstruction, exp(log_scale)^2) (unit variance when the
    output carries no ``log_scale``), in nats per element ("mean") or per row ("sum", "rows")."""
    log_scale = output.log_scale if output.log_scale is not None else output.logits.new_zeros(())
    z = (target - output.reconstruction) * torch.exp(-log_scale)
    err = 0.5 * z.pow(2) + log_scale + 0.5 * math.log(2 * math.pi)
    return err.mean() if reduction == "mean" else _reduce(err, reduction)


def _count(x: torch.Tensor, reduction: str) -> int:
    """What the summed errors are divided by: every element ("mean") or the rows ("sum": per-row sums averaged
    over the batch, the VAE's nats per image)."""
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"the hand-written losses reduce by 'mean' or 'sum', not {reduction!r}")
    return x.numel() if reduction == "mean" else len(x)


def mse_with_grad(logits: torch.Tensor, target: torch.Tensor, output_activation: str,
                  overwrite: bool = False, reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """``mse(activation(logits), target, reduction)`` and its gradient with respect to ``logits``, in one pass
    each (for the hand-written fast path, :mod:`aekit.nn.chain`); ``logits`` are overwritten by the
    reconstruction, and with ``overwrite`` (nothing needs the logits afterwards) by the gradient itself where the
    output is linear, which saves allocating a batch-sized buffer. Lower-precision logits (bfloat16): the loss
    and its reduction are computed in the target's float32, the gradient is returned in the logits' dtype (the
    chain's backward runs in it), rounded once."""
    low = logits if logits.dtype != target.dtype else None
    if low is not None:  # a float32 copy (copy_ converts without the temporaries a mixed-dtype op allocates)
        logits = torch.empty_like(target).copy_(logits)
    reconstruction = activate_(logits, output_activation)
    in_place = (overwrite or low is not None) and output_activation == "linear"
    diff = reconstruction.sub_(target) if in_place else reconstruction - target  # (batch, features)
    flat, n = diff.reshape(-1), _count(diff, reduction)
    loss = torch.dot(flat, flat) / n
    return loss, _lowered(activation_backward_(diff.mul_(2.0 / n), reconstruction, output_activation), low, overwrite)


def bce_with_grad(logits: torch.Tensor, target: torch.Tensor, output_activation: str,
                  overwrite: bool = False, reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """``bce`` from logits and its gradient ``(sigmoid(logits) - target) / n`` with respect to them (the loss in the
    target's float32 for lower-precision logits, the gradient written back into them)."""
    low = logits if logits.dtype != target.dtype else None
    if low is not None:
        logits = torch.empty_like(target).copy_(logits)
    n = _count(logits, reduction)
    loss = (F.binary_cross_entropy_with_logits(logits, target) if reduction == "mean"
            else F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / n)
    return loss, _lowered(torch.sigmoid(logits).sub_(target).mul_(1.0 / n), low, overwrite)


def _lowered(grad: torch.Tensor, like: torch.Tensor | None, overwrite: bool) -> torch.Tensor:
    """``grad`` in ``like``'s lower precision (written into ``like`` with ``overwrite``); None: ``grad`` as it is."""
    if like is None:
        return grad
    return like.copy_(grad) if overwrite else grad.to(like.dtype)


# losses whose gradient the fast path computes by hand ("mean" or "sum" reduction)
LOSSES_WITH_GRAD = {"mse": mse_with_grad, "bce": bce_with_grad}

RECONSTRUCTION_LOSSES: dict[str, Callable[..., torch.Tensor]] = {"mse": mse, "bce": bce, "gaussian": gaussian}


def reconstruction_loss(name: str) -> Callable[..., torch.Tensor]:
    try:
        return RECONSTRUCTION_LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}; choose from {', '.join(RECONSTRUCTION_LOSSES)}") from None
