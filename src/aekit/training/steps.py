"""Steps: what one batch of training does. The loop calls ``train_batch`` and ``eval_batch`` and knows nothing
else about the model; a family with an unusual update (adversarial) brings its own step."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..losses.objective import Objective
from ..models.base import AutoencoderModule
from .distributed import unwrap


class NonFiniteLoss(FloatingPointError):
    """Raised by a step before it applies an update computed from a NaN/inf loss."""


def apply_update(optimizer: torch.optim.Optimizer, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One optimizer update from ``terms["loss"]``, refused (:class:`NonFiniteLoss`) before it is applied if the
    loss is NaN/inf; returns the terms detached."""
    loss = terms["loss"]
    value = float(loss.detach())  # one host read per step (the loop's divergence check needs it anyway)
    if not math.isfinite(value):
        raise NonFiniteLoss(f"loss is {value}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {k: v.detach() for k, v in terms.items()}


class ReconstructionStep:
    """Forward (optionally on a corrupted copy of the inputs), objective, backward, optimizer step."""

    def __init__(
        self,
        model: AutoencoderModule,
        objective: Objective,
        optimizer: torch.optim.Optimizer,
        corrupt: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.model, self.objective, self.optimizer, self.corrupt = model, objective, optimizer, corrupt

    def train_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        seen = self.corrupt(inputs) if self.corrupt is not None else inputs
        return apply_update(self.optimizer, self.objective(self.model(seen), targets, seen, unwrap(self.model)))

    @torch.no_grad()
    def eval_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.objective(self.model(inputs), targets, inputs, unwrap(self.model))
