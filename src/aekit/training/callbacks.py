"""Callbacks for the loop: early stopping (restoring the best weights), per-epoch work (checkpoints), and the
adapter that calls the user's callbacks (:mod:`aekit.callbacks`) with the estimator."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .loop import History
from .schedules import Progress


class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs; :meth:`restore` puts the
    best epoch's weights back. Its state is the history (best value, epochs waited: :meth:`resume` recomputes them)
    and the best weights (saved with the training state), so a resumed run decides and restores as the run it
    continues would have."""

    def __init__(self, model: torch.nn.Module, patience: int = 10, min_delta: float = 0.0, monitor: str = "val_loss") -> None:
        self.model, self.patience, self.monitor = model, patience, monitor
        self.progress = Progress(min_delta=min_delta)
        self.best_state: dict[str, torch.Tensor] | None = None

    @property
    def best(self) -> float:
        return self.progress.best

    @property
    def best_epoch(self) -> int:
        return self.progress.best_epoch

    @property
    def wait(self) -> int:
        """Epochs since the monitored loss last improved."""
        return self.progress.since

    def _update(self, record: dict[str, Any]) -> bool:
        """Take one epoch's record; True if it is the new best."""
        return self.progress.update(record[self.monitor], int(record["epoch"]))

    def resume(self, history: History, best_state: dict[str, torch.Tensor]) -> None:
        """Continue from ``history`` (the records of the epochs already run) and the saved best weights."""
        for record in history:
            if self.monitor in record:
                self._update(record)
        if best_state:
            self.best_state = {k: v.clone() for k, v in best_state.items()}

    def on_epoch_end(self, record: dict[str, Any], history: History) -> bool:
        if self._update(record):
            self.best_state = copy.deepcopy(self.model.state_dict())
            return False
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


class UserCallbacks:
    """The user's callbacks (``callbacks=[...]``), called with the estimator: ``on_train_begin(est)``,
    ``on_epoch_begin(est, epoch)`` (from 1), ``on_epoch_end(est, logs)`` (a copy of the record; True stops),
    ``on_train_end(est)``; each optional."""

    def __init__(self, estimator: Any, callbacks: Sequence[Any] | None) -> None:
        self.estimator, self.callbacks = estimator, list(callbacks or ())

    def _each(self, name: str, *args: Any) -> list[Any]:
        return [getattr(cb, name)(self.estimator, *args) for cb in self.callbacks
                if callable(getattr(cb, name, None))]

    def begin(self) -> None:
        self._each("on_train_begin")

    def end(self) -> None:
        self._each("on_train_end")

    def on_epoch_begin(self, epoch: int, history: History) -> None:
        self._each("on_epoch_begin", epoch + 1)

    def on_epoch_end(self, record: dict[str, Any], history: History) -> bool:
        return any(bool(r) for r in self._each("on_epoch_end", dict(record)))
