"""Slow paths chosen knowingly: before training, the step that will run is timed against the plain model's step on
one batch, and a configuration that costs more than :data:`NOTICE_RATIO` times as much says so once, with the
epoch time it implies.

The probe changes nothing: no optimizer update, random generators forked (the same draws follow), the model's
buffers restored; the gradients it writes are overwritten by the first real step.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import torch

NOTICE_RATIO = 3.0


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def relative_cost(step, plain, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> tuple[float, float] | None:
    """(seconds per step of ``step``, its ratio to ``plain``'s) on the batch ``x``, or None where a step cannot
    be timed without an update (a step with several updates, like the adversarial one)."""
    if not (hasattr(step, "forward_backward") and hasattr(plain, "forward_backward")):
        return None
    y = x if y is None else y
    buffers = {(id(m), key): (m, None if b is None else b.clone())
               for m in model.modules() for key, b in m._buffers.items()}
    devices = [x.device] if x.is_cuda else []
    try:
        with torch.random.fork_rng(devices=devices):
            seen = step.corrupt(x) if getattr(step, "corrupt", None) is not None else x
            times: dict[int, list[float]] = {id(step): [], id(plain): []}
            for candidate, batch in ((plain, x), (step, seen)) * 3:
                times[id(candidate)].append(_timed(lambda: candidate.forward_backward(batch, y), x.device))
    finally:  # the buffers as they were (a running statistic may also have changed shape: it is put back whole)
        for (_, key), (module, saved) in buffers.items():
            module._buffers[key] = saved
    mine, base = min(times[id(step)][1:]), min(times[id(plain)][1:])  # the first call of each warms up
    return mine, mine / max(base, 1e-9)


def notice(what: str, seconds: float, ratio: float, batches: int) -> None:
    warnings.warn(f"aekit: a training step of this configuration ({what}) takes {ratio:.1f}x the plain model's "
                  f"step: about {seconds * batches:.0f} s per epoch of {batches} batches on this machine",
                  RuntimeWarning, stacklevel=3)
