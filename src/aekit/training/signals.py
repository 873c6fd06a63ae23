"""Stopping cleanly on SIGINT/SIGTERM: the handlers only record the signal; the loop checks it after each batch,
writes a checkpoint and raises :class:`~aekit.training.loop.TrainingInterrupted`."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[Callable[[], int]]:
    """Yields ``requested()``: 0, or the number of the first signal received while the block runs. Outside the
    main thread (where handlers cannot be installed) it never requests a stop."""
    received = [0]
    if threading.current_thread() is not threading.main_thread():
        yield lambda: 0
        return

    def handler(signum: int, frame: object) -> None:
        if received[0] and signum == signal.SIGINT:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        received[0] = received[0] or signum

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield lambda: received[0]
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
