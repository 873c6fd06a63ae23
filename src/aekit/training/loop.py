"""The one training loop. It feeds batches to a step and knows nothing about which autoencoder it trains.

Fast path for in-memory data: the whole array lives as one tensor on the device; each epoch draws one
permutation and gathers every batch with ``index_select(..., out=buffer)`` into a preallocated buffer, so
there is no per-sample Dataset/DataLoader machinery and no per-batch allocation for the inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from ..allocator import keep_freed_memory
from ..errors import TrainingError, TrainingInterrupted
from .distributed import world
from .steps import NonFiniteLoss

History = list[dict[str, Any]]


class Step(Protocol):
    model: torch.nn.Module

    def train_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def eval_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]: ...


class Callback(Protocol):
    """What the loop calls; ``on_epoch_begin(epoch, history)`` is optional (a learning-rate schedule has it)."""

    def on_epoch_end(self, record: dict[str, Any], history: History) -> bool | None:
        """Called after each epoch with its record (already in ``history``); may add keys; True stops training."""


def _sum_terms(totals: dict[str, torch.Tensor], terms: dict[str, torch.Tensor], weight: int) -> None:
    for key, value in terms.items():
        if key in totals:
            totals[key].add_(value.detach(), alpha=weight)  # in place, in float64: no new tensor per batch
        else:
            totals[key] = value.detach().double() * weight


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
def map_batches(fn: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor, batch_size: int = 4096,
                min_rows: int = 1) -> torch.Tensor:
    """``fn`` applied to ``X`` in chunks (bounded memory), concatenated; a chunk of fewer than ``min_rows`` rows is
    padded with zero rows, and only its own rows are kept."""
    outputs = []
    for start in range(0, len(X), batch_size):
        chunk = X[start : start + batch_size]
        n = len(chunk)
        if n < min_rows:
            chunk = torch.cat([chunk, chunk.new_zeros((min_rows - n, *chunk.shape[1:]))])
        outputs.append(fn(chunk)[:n])
    return torch.cat(outputs)


@dataclass
class Position:
    """Where training stands, precisely enough to resume it bit for bit: ``epoch`` epochs are complete and
    ``step`` batches of the next one are done; ``shuffle_state`` is the shuffling generator's state at the
    start of that epoch (it redraws the same permutation); ``totals`` are the epoch's running term sums.
    ``phase``: 0 for end-to-end training, k for greedy layer-wise phase k (its epochs counted from 0)."""

    epoch: int = 0
    step: int = 0
    shuffle_state: torch.Tensor | None = None
    totals: dict[str, float] = field(default_factory=dict)
    phase: int = 0

    def where(self) -> str:
        """The batch it stands at, in words: "epoch 3, batch 40" ("greedy phase 2, epoch 3, batch 40")."""
        return (f"greedy phase {self.phase}, " if self.phase else "") + f"epoch {self.epoch + 1}, batch {self.step}"


def _gather(X: torch.Tensor, Y: torch.Tensor | None, perm: torch.Tensor, local_batch: int, first: int, n_batches: int,
            x_buf: torch.Tensor, y_buf: torch.Tensor | None):
    """Batches ``first ..`` of the in-memory rows in ``perm``'s order, gathered into the preallocated buffers."""
    for b in range(first, n_batches):
        idx = perm[b * local_batch : (b + 1) * local_batch]
        xb = torch.index_select(X, 0, idx, out=x_buf[: len(idx)])
        yield xb, (xb if Y is None else torch.index_select(Y, 0, idx, out=y_buf[: len(idx)]))


def _all_reduce(values: torch.Tensor) -> torch.Tensor:
    if world()[1] > 1:
        torch.distributed.all_reduce(values)
    return values


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
    start: Position | None = None,
    callbacks: Sequence[Callback] = (),
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[Position], None] | None = None,
    stop_requested: Callable[[], int] | None = None,
    divergence_factor: float = 1e4,
    progress: bool = False,
    description: str = "train",
    record_extra: dict[str, Any] | None = None,
) -> History:
    """Train ``step.model`` for epochs ``start_epoch+1 .. epochs`` on ``(X, Y)`` (``Y`` defaults to ``X``).

    Returns the history: one record per epoch with the mean of each training term, ``val_*`` terms when
    validation data is given, ``time`` in seconds, and ``record_extra`` (e.g. the phase) merged in.

    - ``start`` resumes inside an epoch (see :class:`Position`; its ``phase`` is carried into every position this
      run reports); ``on_checkpoint(position)`` is called every
      ``checkpoint_every`` batches and when a stop is requested (``stop_requested()`` returns a signal number),
      after which :class:`TrainingInterrupted` is raised.
    - Raises :class:`~aekit.errors.TrainingError` if the loss becomes NaN/inf (that update is not applied) or
      exceeds ``divergence_factor`` times its first value.
    - Under ``torch.distributed`` each rank takes its shard of every epoch's permutation (same seed on all ranks)
      and ``batch_size // world_size`` rows per step; epoch metrics are summed across ranks.
    """
    history = [] if history is None else history
    keep_freed_memory()
    position = start or Position(epoch=start_epoch)
    phase = position.phase  # kept in every position this run reports
    rank, n_ranks = world()
    streamed = hasattr(X, "batches")  # a data set read per window (aekit.data.stream.Stream), not a tensor
    if streamed and Y is not None:
        raise TypeError("streamed data trains autoencoders only (targets are the rows themselves); pass Y=None")
    n = len(X) - len(X) % n_ranks  # equal shards, so every rank takes the same number of steps
    local_batch = max(1, min(int(batch_size) // n_ranks, n // n_ranks))
    x_buf = torch.empty((local_batch, *X.shape[1:]), dtype=X.dtype, device=X.device)
    y_buf = None if Y is None else torch.empty((local_batch, *Y.shape[1:]), dtype=Y.dtype, device=Y.device)
    n_batches = -(-(n // n_ranks) // local_batch)
    first_loss: float | None = None
    total = (epochs - position.epoch) * n_batches - position.step
    bar = tqdm(total=total, desc=description, disable=not progress or rank != 0 or total <= 0, mininterval=0.5,
               unit="batch")
    if position.shuffle_state is not None:  # resuming: the shuffling goes on where it stood, even when no epoch is
        generator.set_state(position.shuffle_state)  # left here (a finished greedy phase: the next one's order)
    batches = None
    try:
        for epoch in range(position.epoch, epochs):
            for callback in callbacks:  # also for an epoch resumed from its middle: the same rates as before
                begin = getattr(callback, "on_epoch_begin", None)
                if begin is not None:
                    begin(epoch, history)
            t0 = time.perf_counter()
            step.model.train()
            epoch_start_state = generator.get_state()
            first_step = position.step
            if streamed:
                batches = X.batches(X.epoch_seed(generator), rank, n_ranks, local_batch, first_step, x_buf)
            else:
                perm = torch.randperm(len(X), generator=generator)[:n][rank::n_ranks].to(X.device)
                batches = _gather(X, Y, perm, local_batch, first_step, n_batches, x_buf, y_buf)
            totals = {k: torch.tensor(v, dtype=torch.float64, device=X.device) for k, v in position.totals.items()}
            bar.set_description(f"{description} epoch {epoch + 1}/{epochs}", refresh=False)
            for b, (xb, yb) in enumerate(batches, first_step):
                where = f"epoch {epoch + 1}, batch {b + 1}/{n_batches}"
                try:
                    terms = step.train_batch(xb, yb)
                except NonFiniteLoss as exc:
                    raise TrainingError(
                        f"training diverged at {where}: {exc}. The update was not applied and the last checkpoint "
                        "(if any) is intact; try a lower learning rate."
                    ) from None
                loss = float(terms["loss"])
                first_loss = loss if first_loss is None else first_loss
                if loss > divergence_factor * max(abs(first_loss), 1e-12):
                    raise TrainingError(
                        f"training diverged at {where}: the loss reached {loss:.4g}, over {divergence_factor:g} times "
                        f"its first value ({first_loss:.4g}). The last checkpoint (if any) is intact; try a lower "
                        "learning rate."
                    )
                _sum_terms(totals, terms, len(xb))
                bar.update()
                signum = stop_requested() if stop_requested is not None else 0
                if n_ranks > 1 and stop_requested is not None:  # every rank stops at the same step
                    signum = int(_all_reduce(torch.tensor([signum], device=X.device)).max())
                if signum or (checkpoint_every and (b + 1) % checkpoint_every == 0 and b + 1 < n_batches):
                    position = Position(epoch, b + 1, epoch_start_state, {k: float(v) for k, v in totals.items()},
                                        phase)
                    if on_checkpoint is not None:
                        on_checkpoint(position)
                    if signum:
                        raise TrainingInterrupted(position, signum)
            names = sorted(totals)
            summed = _all_reduce(torch.stack([totals[k].double().cpu() for k in names]).to(X.device)) if names else []
            record: dict[str, Any] = {"epoch": epoch + 1, **(record_extra or {})}
            record.update({k: float(v) / n for k, v in zip(names, summed)})
            if X_val is not None and len(X_val):
                record.update({f"val_{k}": v for k, v in evaluate(step, X_val, Y_val, max(batch_size, 1024)).items()})
            record["time"] = time.perf_counter() - t0
            history.append(record)
            position = Position(epoch + 1, phase=phase)
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k in ("loss", "val_loss")}, refresh=False)
            stop = False
            for callback in callbacks:
                stop = bool(callback.on_epoch_end(record, history)) or stop
            if stop:
                break
    finally:
        if batches is not None:
            batches.close()  # a streamed epoch's reader thread ends here when training stops inside the epoch
        bar.close()
    return history
