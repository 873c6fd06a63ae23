"""Shared by the generative examples: train a warm-startable estimator one epoch at a time for a wall-clock budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def train_within(
    estimator: Any,
    X: Any,
    minutes: float,
    describe: Callable[[dict[str, Any], dict[str, Any]], str],
    schedule: Callable[[float], dict[str, Any]] = lambda elapsed: {},
) -> None:
    """Fit ``estimator`` (``warm_start=True``) one more epoch at a time while the next epoch, judged by the last
    one's time, still fits in ``minutes`` of wall clock. ``schedule(elapsed seconds)`` gives extra parameters for
    the next epoch (e.g. a learning rate); ``describe(history record, those parameters)`` is printed after each
    epoch, then the totals (epochs, wall and CPU minutes)."""
    budget, wall, cpu, epoch_time = 60 * minutes, time.perf_counter(), time.process_time(), 0.0
    while (elapsed := time.perf_counter() - wall) + epoch_time <= budget:
        params = schedule(elapsed)
        t0 = time.perf_counter()
        epochs = estimator.n_epochs_ + 1 if hasattr(estimator, "model_") else 1
        estimator.set_params(epochs=epochs, **params).fit(X)
        epoch_time = time.perf_counter() - t0
        record = estimator.history_[-1]
        print(f"epoch {record['epoch']}: {describe(record, params)}, {epoch_time:.1f} s", flush=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"training: {estimator.n_epochs_} epochs, {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU min", flush=True)
