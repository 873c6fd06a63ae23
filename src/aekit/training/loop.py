"""The one training loop. It feeds batches to a step and knows nothing about which autoencoder it trains.

Fast path for in-memory data: the whole array lives as one tensor on the device; each epoch draws one
permutation and gathers every batch with ``index_select(..., out=buffer)`` into a preallocated buffer, so
there is no per-sample Dataset/DataLoader machinery and no per-batch allocation for the inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from ..errors import TrainingError
from .steps import NonFiniteLoss

History = list[dict[str, Any]]


class Step(Protocol):
    model: torch.nn.Module

    def train_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def eval_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]: ...


class Callback(Protocol):
    def on_epoch_end(self, record: dict[str, Any], history: History) -> bool | None:
        """Called after each epoch with its record (already in ``history``); may add keys; True stops training."""


def _sum_terms(totals: dict[str, torch.Tensor], terms: dict[str, torch.Tensor], weight: int) -> None:
    for key, value in terms.items():
        value = value.detach() * weight
        totals[key] = totals[key] + value if key in totals else value


@torch.no_grad()
def evaluate(step: Step, X: torch.Tensor, Y: torch.Tensor | None = None, batch_size: int = 1024) -> dict[str, float]:
    """Mean of each loss term over ``X`` (weighted by batch size), in eval mode, without autograd."""
    was_training = step.model.training
    step.model.eval()
    totals: dict[str, torch.Tensor] = {}
    try:
        for start in range(0, len(X), batch_size):
            xb = X[start : start + batch_size]
            yb = xb if Y is None else Y[start : start + batch_size]
            _sum_terms(totals, step.eval_batch(xb, yb), len(xb))
    finally:
        step.model.train(was_training)
    return {k: float(v) / len(X) for k, v in totals.items()}


@torch.no_grad()
def map_batches(fn: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """``fn`` applied to ``X`` in chunks (bounded memory), concatenated."""
    return torch.cat([fn(X[start : start + batch_size]) for start in range(0, len(X), batch_size)])


def train(
    step: Step,
    X: torch.Tensor,
    Y: torch.Tensor | None = None,
    *,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    X_val: torch.Tensor | None = None,
    Y_val: torch.Tensor | None = None,
    history: History | None = None,
    start_epoch: int = 0,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
    description: str = "train",
    record_extra: dict[str, Any] | None = None,
) -> History:
    """Train ``step.model`` for epochs ``start_epoch+1 .. epochs`` on ``(X, Y)`` (``Y`` defaults to ``X``).

    Returns the history: one record per epoch with the mean of each training term, ``val_*`` terms when
    validation data is given, ``time`` in seconds, and ``record_extra`` (e.g. the phase) merged in.
    Raises :class:`~aekit.errors.TrainingError` if the loss becomes NaN/inf (the update is not applied).
    """
    history = [] if history is None else history
    n = len(X)
    batch_size = max(1, min(int(batch_size), n))
    x_buf = torch.empty((batch_size, *X.shape[1:]), dtype=X.dtype, device=X.device)
    y_buf = None if Y is None else torch.empty((batch_size, *Y.shape[1:]), dtype=Y.dtype, device=Y.device)
    n_batches = -(-n // batch_size)
    bar = tqdm(total=(epochs - start_epoch) * n_batches, desc=description, disable=not progress,
               mininterval=0.5, unit="batch")
    try:
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            step.model.train()
            perm = torch.randperm(n, generator=generator).to(X.device)
            totals: dict[str, torch.Tensor] = {}
            bar.set_description(f"{description} epoch {epoch + 1}/{epochs}", refresh=False)
            for b, start in enumerate(range(0, n, batch_size)):
                idx = perm[start : start + batch_size]
                xb = torch.index_select(X, 0, idx, out=x_buf[: len(idx)])
                yb = xb if Y is None else torch.index_select(Y, 0, idx, out=y_buf[: len(idx)])
                try:
                    terms = step.train_batch(xb, yb)
                except NonFiniteLoss as exc:
                    raise TrainingError(
                        f"training diverged at epoch {epoch + 1}, batch {b + 1}/{n_batches}: {exc}. The update was "
                        "not applied and the last checkpoint (if any) is intact; try a lower learning rate."
                    ) from None
                _sum_terms(totals, terms, len(idx))
                bar.update()
            record: dict[str, Any] = {"epoch": epoch + 1, **(record_extra or {})}
            record.update({k: float(v) / n for k, v in totals.items()})
            if X_val is not None and len(X_val):
                record.update({f"val_{k}": v for k, v in evaluate(step, X_val, Y_val, max(batch_size, 1024)).items()})
            record["time"] = time.perf_counter() - t0
            history.append(record)
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k in ("loss", "val_loss")}, refresh=False)
            stop = False
            for callback in callbacks:
                stop = bool(callback.on_epoch_end(record, history)) or stop
            if stop:
                break
    finally:
        bar.close()
    return history
