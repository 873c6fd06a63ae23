"""Steps: what one batch of training does. The loop calls ``train_batch`` and ``eval_batch`` and knows nothing
else about the model; a family with an unusual update (adversarial) brings its own step."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..losses.objective import Objective
from ..losses.reconstruction import LOSSES_WITH_GRAD
from ..models.base import AutoencoderModule
from ..nn.chain import DenseChain
from .distributed import unwrap, world
from .optim import optimizer_step


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
    optimizer_step(optimizer)
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


class DenseChainStep(ReconstructionStep):
    """:class:`ReconstructionStep` for a stack of dense layers trained on a plain reconstruction loss, without
    autograd: the chain's forward, the loss and its gradient in one pass each, the chain's hand-written backward
    (gradients written in place), the optimizer step. Same update up to float rounding; ~10% faster on the
    book's model (see :mod:`aekit.nn.chain`). Evaluation is the ordinary path."""

    def __init__(
        self,
        model: AutoencoderModule,
        chain: DenseChain,
        objective: Objective,
        optimizer: torch.optim.Optimizer,
        corrupt: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__(model, objective, optimizer, corrupt)
        self.chain, self.loss_with_grad = chain, LOSSES_WITH_GRAD[objective.reconstruction_name]

    def train_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        seen = self.corrupt(inputs) if self.corrupt is not None else inputs
        outputs = self.chain.forward(seen)
        if self.chain.target_index is not None:
            targets = outputs[self.chain.target_index]
        loss, grad = self.loss_with_grad(outputs[-1], targets, self.chain.output_activation)
        value = float(loss)
        if not math.isfinite(value):
            raise NonFiniteLoss(f"loss is {value}")
        self.chain.backward(outputs, grad)
        optimizer_step(self.optimizer)
        return {"reconstruction": loss, "loss": loss}


def reconstruction_step(
    model: AutoencoderModule,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    corrupt: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> ReconstructionStep:
    """The step for ``model``: :class:`DenseChainStep` when the model is a dense chain (it has ``dense_chain()``)
    trained on MSE or BCE ("mean") with no penalty terms, in a single process and without anomaly detection;
    otherwise the autograd :class:`ReconstructionStep`."""
    chain = getattr(model, "dense_chain", None)
    chain = chain() if chain is not None else None
    if (chain is None or objective.penalties or objective.reduction != "mean" or world()[1] > 1
            or objective.reconstruction_name not in LOSSES_WITH_GRAD or torch.is_anomaly_enabled()):
        return ReconstructionStep(model, objective, optimizer, corrupt)
    return DenseChainStep(model, chain, objective, optimizer, corrupt)
