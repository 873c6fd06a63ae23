"""The step for supervised training (a classifier's fine-tuning) through the one loop: the loop hands it
``(inputs, targets)`` batches with integer class indices (int64) as targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .precision import FP32, Precision
from .steps import apply_update


class ClassificationStep:
    """Forward to logits, softmax cross-entropy, backward, optimizer step. Terms: ``loss`` (mean cross-entropy)
    and ``accuracy`` (fraction of the batch classified right), so the history has both, and ``val_*`` too."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, precision: Precision = FP32) -> None:
        self.model, self.optimizer, self.precision = model, optimizer, precision
        self.scaler = torch.amp.GradScaler("cuda") if precision.scaled else None

    def _logits(self, inputs: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast(inputs.device):
            logits = self.model(inputs)
        return logits.float()

    @staticmethod
    def _terms(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = F.cross_entropy(logits, targets)  # logits (batch, classes), targets (batch,) int64
        accuracy = (logits.detach().argmax(dim=1) == targets).float().mean()
        return {"loss": loss, "accuracy": accuracy}

    def train_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return apply_update(self.optimizer, self._terms(self._logits(inputs), targets), self.scaler)

    @torch.no_grad()
    def eval_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._terms(self._logits(inputs), targets)
