"""Threads chosen for the work: a training step smaller than :data:`SMALL_STEP` multiply-adds runs on one CPU
thread, a larger one on torch's threads (all cores unless ``OMP_NUM_THREADS`` or ``torch.set_num_threads`` said
fewer); ``n_jobs`` / ``--threads`` overrides.

Measured on this 2-core machine (``python benchmarks/threads.py``, docs/benchmarks.md): with the machine otherwise
idle two threads beat one from about 10-50 M multiply-adds per step (1.3x at 47 M, 1.75x at 250 M), but with another
process keeping one core busy two threads lose 3-10x below 250 M (the quick start's step, 58 M: 1.7 ms on one
thread either way, 1.2 ms idle or 9.7 ms loaded on two). Below 100 M the rule takes one thread: at most 1.5x slower
on an idle machine, never 5x slower on a busy one. The choice depends on the configuration alone, never on the
machine's load, so a seeded run stays bit-for-bit repeatable (float results differ between thread counts).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

SMALL_STEP = 100e6


def step_madds(model: torch.nn.Module, n_features: int, batch: int) -> float:
    """Multiply-adds of one training step of ``model`` on ``batch`` rows: three times its forward's (forward,
    input and weight gradients), counted on one row (``torch.utils.flop_counter``)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    x = torch.zeros(1, n_features, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad(), \
                FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return 3 * batch * counter.get_total_flops() / 2


def chosen(n_jobs: int | None, madds: float) -> int:
    """The thread count for a step of ``madds`` multiply-adds: ``n_jobs`` (-1: every core this process may use),
    else one thread below :data:`SMALL_STEP`, else torch's current count."""
    if n_jobs is not None:
        return len(os.sched_getaffinity(0)) if n_jobs == -1 else int(n_jobs)
    return 1 if madds < SMALL_STEP else torch.get_num_threads()


@contextmanager
def using(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` for the block, then as they were."""
    before = torch.get_num_threads()
    if threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
