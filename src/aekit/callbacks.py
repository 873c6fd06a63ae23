"""Callbacks: your code at fixed points of training, and the built-in loggers.

A callback is any object with some of these methods (each optional; the estimator calls those it has):

- ``on_train_begin(estimator)``, ``on_train_end(estimator)``;
- ``on_epoch_begin(estimator, epoch)`` (``epoch`` counts from 1);
- ``on_epoch_end(estimator, logs)``: ``logs`` is a copy of the epoch's record (``epoch``, ``loss``, each loss term,
  ``val_*``, ``lr``, ``time``); returning True stops training after this epoch.

Pass them as ``callbacks=[...]`` to any estimator trained by the loop. They run after the epoch's checkpoint, so
what they do never changes what a resumed run computes; they are not saved in checkpoints (a resumed run gets the
callbacks you pass it).

Built in: :class:`CSVLogger`, :class:`JSONLLogger` (the run folder's ``metrics.csv`` is written anyway, see
:func:`aekit.runs.write_metrics`), :class:`TensorBoardLogger` (needs ``tensorboard``: ``pip install
"aekit[tensorboard]"``) and :class:`MLflowLogger` (needs ``mlflow``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import ConfigError, MissingDependency

METHODS = ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end")


def check_callbacks(callbacks: Any) -> None:
    """Refuse a callback that has none of :data:`METHODS` (a class passed instead of an instance, a typo)."""
    for cb in callbacks or ():
        if isinstance(cb, type) or not any(callable(getattr(cb, m, None)) for m in METHODS):
            raise ConfigError(f"callback {cb!r} is a class or has none of the methods {', '.join(METHODS)}; pass "
                              "an object that defines at least one (an instance, not its class)")


def _scalars(logs: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in logs.items()
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)}


class Callback:
    """A base with every method a no-op, to subclass (not required: any object with some of them works)."""

    def on_train_begin(self, estimator: Any) -> None: ...

    def on_epoch_begin(self, estimator: Any, epoch: int) -> None: ...

    def on_epoch_end(self, estimator: Any, logs: dict[str, Any]) -> bool | None: ...

    def on_train_end(self, estimator: Any) -> None: ...


class JSONLLogger(Callback):
    """One JSON object per epoch, appended to ``path`` (flushed each epoch)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def on_epoch_end(self, estimator: Any, logs: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(logs) + "\n")


class CSVLogger(Callback):
    """One CSV row per epoch, appended to ``path``; the header (the first epoch's keys) is written once."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.columns: list[str] | None = None

    def on_epoch_end(self, estimator: Any, logs: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        if self.columns is None:
            self.columns = (self.path.read_text().splitlines()[0].split(",") if not new else list(logs))
        with self.path.open("a") as f:
            if new:
                f.write(",".join(self.columns) + "\n")
            f.write(",".join("" if logs.get(c) is None else str(logs[c]) for c in self.columns) + "\n")


class TensorBoardLogger(Callback):
    """Every scalar of each epoch's record as a TensorBoard scalar (tag ``train/loss``, ``val/loss``, ``lr``, ...)
    under ``log_dir``; ``tensorboard --logdir LOG_DIR`` shows them."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        self.log_dir = str(log_dir)
        self.writer = None

    def on_train_begin(self, estimator: Any) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingDependency("TensorBoardLogger needs tensorboard: pip install tensorboard (or "
                                    "aekit[tensorboard])") from None
        self.writer = SummaryWriter(self.log_dir)

    def on_epoch_end(self, estimator: Any, logs: dict[str, Any]) -> None:
        if self.writer is None:
            self.on_train_begin(estimator)
        for key, value in _scalars(logs).items():
            tag = f"val/{key[4:]}" if key.startswith("val_") else (key if key in ("lr", "time") else f"train/{key}")
            self.writer.add_scalar(tag, value, int(logs["epoch"]))
        self.writer.flush()

    def on_train_end(self, estimator: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __deepcopy__(self, memo: dict) -> TensorBoardLogger:  # scikit-learn's clone copies parameters
        return TensorBoardLogger(self.log_dir)


class MLflowLogger(Callback):
    """Each epoch's scalars as MLflow metrics (``step`` = epoch) in the active run, or one this logger starts
    (``run_name``) and ends; the estimator's parameters are logged once."""

    def __init__(self, run_name: str | None = None, tracking_uri: str | None = None) -> None:
        self.run_name, self.tracking_uri = run_name, tracking_uri
        self._started = False

    def _mlflow(self):
        try:
            import mlflow
        except ImportError:
            raise MissingDependency("MLflowLogger needs mlflow: pip install mlflow") from None
        return mlflow

    def on_train_begin(self, estimator: Any) -> None:
        mlflow = self._mlflow()
        if self.tracking_uri:
            mlflow.set_tracking_uri(self.tracking_uri)
        if mlflow.active_run() is None:
            mlflow.start_run(run_name=self.run_name)
            self._started = True
        mlflow.log_params({k: str(v) for k, v in estimator.get_params(deep=False).items() if k != "callbacks"})

    def on_epoch_end(self, estimator: Any, logs: dict[str, Any]) -> None:
        self._mlflow().log_metrics(_scalars(logs), step=int(logs["epoch"]))

    def on_train_end(self, estimator: Any) -> None:
        if self._started:
            self._mlflow().end_run()
            self._started = False
