"""One thread or two: training steps of dense autoencoders of growing size at 1 and 2 torch threads, interleaved,
with the machine otherwise idle and with another process keeping one core busy. The crossover (the smallest step
at which two threads win when the machine is idle) is what ``n_jobs=None`` uses (aekit/estimators/threads.py).

    python benchmarks/threads.py [--rounds 5] [--steps 150]

Prints per model: multiply-adds per step, ms/step at 1 and 2 threads, idle and loaded.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

import torch

MODELS = [(64, (32, 16)), (64, (300, 150)), (784, (64, 32)), (784, (128, 64)), (784, (300, 150)),
          (784, (1000, 500)), (784, (2000, 1000))]
BATCH = 150


def _busy(stop) -> None:  # another process using a core
    x = 0
    while not stop.is_set():
        x += 1


def madds(n_in: int, hidden: tuple[int, ...]) -> int:
    """Multiply-adds of one training step (forward, input and weight gradients: 3 GEMMs per layer)."""
    sizes = [n_in, *hidden, *reversed(hidden[:-1]), n_in]
    return 3 * BATCH * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def step_time(n_in: int, hidden: tuple[int, ...], threads: int, steps: int) -> float:
    import aekit
    from aekit.losses import Objective
    from aekit.models import DenseAutoencoder
    from aekit.training import make_optimizer, reconstruction_step

    torch.set_num_threads(threads)
    model = DenseAutoencoder(n_in, list(hidden), seed=0)
    step = reconstruction_step(model, Objective("mse"), make_optimizer("adam", model.parameters(), [], 1e-3))
    x = torch.rand(BATCH, n_in)
    for _ in range(10):
        step.train_batch(x, x)
    t0 = time.perf_counter()
    for _ in range(steps):
        step.train_batch(x, x)
    del aekit
    return (time.perf_counter() - t0) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    results: dict[tuple, list[float]] = {}
    for loaded in (False, True):
        stop = multiprocessing.Event()
        busy = multiprocessing.Process(target=_busy, args=(stop,)) if loaded else None
        if busy:
            busy.start()
        for r in range(args.rounds):
            for n_in, hidden in MODELS:
                for threads in ((1, 2) if r % 2 == 0 else (2, 1)):
                    results.setdefault((n_in, hidden, threads, loaded), []).append(
                        step_time(n_in, hidden, threads, args.steps))
        if busy:
            stop.set()
            busy.join()
    print(f"\ntorch {torch.__version__}; batch {BATCH}; {args.rounds} interleaved rounds of {args.steps} steps\n")
    print("| model | multiply-adds per step | idle: 1 thread | idle: 2 threads | loaded: 1 thread | loaded: 2 threads |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n_in, hidden in MODELS:
        cells = [f"{statistics.median(results[(n_in, hidden, t, loaded)]):.2f} ms"
                 for loaded in (False, True) for t in (1, 2)]
        print(f"| {n_in}-{'-'.join(map(str, hidden))} | {madds(n_in, hidden) / 1e6:.1f} M | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
