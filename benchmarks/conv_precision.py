"""The conv AE of docs/results.md (Fashion-MNIST; conv 16-32-64, 3x3, ReLU, 2x2 max-pooling, 30 linear codings,
transposed convs back; MSE, Adam 1e-3, batch 32, the first 55,000 training images) in float32 and in bf16-mixed,
trained side by side: each epoch of one precision is followed by the same epoch of the other (order alternating),
so both see the same machine states. Prints each precision's median epoch time, the median per-epoch ratio, and
the test MSE after the last epoch.

    AEKIT_DATA_DIR=../shared/data python benchmarks/conv_precision.py [--epochs 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

import aekit
from aekit.training import precision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from conv_mnist import book_conv_ae  # noqa: E402

PRECISIONS = ("32-true", "bf16-mixed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.device == "cpu" and not precision.cpu_has_bf16():
        raise SystemExit("this CPU has no bfloat16 units: nothing to compare")
    ds = aekit.load_dataset("fashion-mnist")
    X = ds.X_train[:55000]
    models = {p: book_conv_ae(batch_size=32, learning_rate=1e-3, random_state=0, device=args.device, precision=p,
                              n_jobs=args.threads) for p in PRECISIONS}
    times: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for epoch in range(1, args.epochs + 1):
        for p in PRECISIONS if epoch % 2 else PRECISIONS[::-1]:
            est = models[p].set_params(epochs=epoch, warm_start=True).fit(X)
            times[p].append(est.history_[-1]["time"])
            print(f"epoch {epoch}: {p} {times[p][-1]:.1f} s, train loss {est.history_[-1]['loss']:.5f}",
                  file=sys.stderr, flush=True)
    mse = {p: -models[p].score(ds.X_test) for p in PRECISIONS}
    ratios = [b / a for a, b in zip(times["32-true"], times["bf16-mixed"])]
    print(f"\ntorch {torch.__version__}, {args.device}, {args.threads} threads; {args.epochs} epochs of 55,000 "
          f"Fashion-MNIST images, batch 32, seed 0; executor: {models['bf16-mixed'].executor_}\n")
    print("| precision | s/epoch (median) | test MSE after the last epoch |\n| --- | --- | --- |")
    for p in PRECISIONS:
        print(f"| {p} | {statistics.median(times[p]):.1f} | {mse[p]:.5f} |")
    print(f"\nbf16-mixed / 32-true epoch time, median of the per-epoch ratios: {statistics.median(ratios):.2f}; "
          f"test MSE {(mse['bf16-mixed'] / mse['32-true'] - 1) * 100:+.2f}%")


if __name__ == "__main__":
    main()
