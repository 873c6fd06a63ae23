"""Callbacks for the loop: early stopping (restoring the best weights) and per-epoch checkpoints."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from .loop import History


class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs; restore the best weights."""

    def __init__(self, model: torch.nn.Module, patience: int = 10, min_delta: float = 0.0, monitor: str = "val_loss") -> None:
        self.model, self.patience, self.min_delta, self.monitor = model, patience, min_delta, monitor
        self.best = float("inf")
        self.best_state: dict[str, torch.Tensor] | None = None
        self.wait = 0

    def on_epoch_end(self, record: dict[str, Any], history: History) -> bool:
        value = record[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
            return False
        self.wait += 1
        return self.wait >= self.patience

    def restore(self) -> None:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)


class EpochCallback:
    """Calls ``fn(record, history)`` after every epoch (checkpointing, logging)."""

    def __init__(self, fn: Callable[[dict[str, Any], History], None]) -> None:
        self.fn = fn

    def on_epoch_end(self, record: dict[str, Any], history: History) -> bool:
        self.fn(record, history)
        return False
