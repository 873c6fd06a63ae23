"""Greedy phase 2 with cached codings vs recomputing the frozen layer every batch (Géron ch. 15: "a nice
performance boost"). MNIST, the book's 784-300-150-300-784 ELU model, batch 150, 4 epochs of phase 2; the cached
variant's time includes building the cache. Interleaved rounds in one run; medians, and the median of the
per-round ratios (the two variants of a round run back to back: this machine switches between a fast and a slow
state every few tens of seconds, so only neighbours compare fairly).

    AEKIT_DATA_DIR=../shared/data python benchmarks/greedy_cache.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import aekit
from aekit.models import DenseAutoencoder
from aekit.training.greedy import Phase, greedy_pretrain


def phase2_seconds(X: torch.Tensor, cache: bool, epochs: int) -> float:
    model = DenseAutoencoder(784, [300, 150], seed=0)
    est = aekit.Autoencoder(learning_rate=0.01)  # provides the step factory (Adam, MSE)
    t0 = time.perf_counter()
    greedy_pretrain(model, X, strategy="phases", phases=[Phase(0, 150, 0.01), Phase(epochs, 150, 0.01)],
                    make_step=est._step, loss="mse", generator=torch.Generator().manual_seed(0), cache=cache)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    X = torch.from_numpy(aekit.load_dataset("mnist").X_train)
    times: dict[str, list[float]] = {"cached": [], "recomputed": []}
    phase2_seconds(X[:3000], True, 1)  # warm-up
    for r in range(args.rounds):
        order = [True, False] if r % 2 == 0 else [False, True]
        for cache in order:
            times["cached" if cache else "recomputed"].append(phase2_seconds(X, cache, args.epochs))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds, "
          f"phase 2 x {args.epochs} epochs on {len(X)} rows")
    print("| variant | median s (phase 2, 4 epochs) | s/epoch | all rounds (s) |")
    print("| --- | --- | --- | --- |")
    for k, v in times.items():
        print(f"| {k} | {med[k]:.2f} | {med[k] / args.epochs:.3f} | {', '.join(f'{t:.2f}' for t in v)} |")
    per_round = [r / c for r, c in zip(times["recomputed"], times["cached"])]
    print(f"\nspeed-up from caching: {statistics.median(per_round):.2f}x (median of per-round ratios: "
          f"{', '.join(f'{x:.2f}' for x in per_round)}); ratio of the medians {med['recomputed'] / med['cached']:.2f}x")


if __name__ == "__main__":
    main()
