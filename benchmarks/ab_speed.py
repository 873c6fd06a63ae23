"""A/B training speed of two aekit source trees, side by side in one run: the book's model untied and tied
(784-300-150-300-784, ELU, batch 150) and the book's VAE (784-500-500-20), one-epoch fits on MNIST, each divided by
its GEMM floor measured just before and just after it (this machine switches between a quiet and a slow state).
Each tree runs in a worker process of its own that loads the data once; rounds alternate the order.

    git worktree add /tmp/aekit-base <REV>
    AEKIT_DATA_DIR=../shared/data python benchmarks/ab_speed.py --base /tmp/aekit-base/src [--rounds 9]

Prints per variant the median x-floor ratio of A (the base) and B (this tree, or ``--candidate SRC``) and the median
of the per-round B/A ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import REFERENCE_GEMMS, VAE_GEMMS, floor_epoch  # noqa: E402

VARIANTS = {"untied": REFERENCE_GEMMS, "tied": REFERENCE_GEMMS, "vae": VAE_GEMMS}

WORKER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import aekit
X = np.load(sys.argv[2])
def fit(kind):
    if kind == "vae":
        aekit.VariationalAutoencoder((500, 500), latent_dim=20, binarize=None, epochs=1, batch_size=150,
                                     random_state=0,
                                     device="cpu").fit(X)
    else:
        aekit.Autoencoder((300, 150), tie_weights=kind == "tied", epochs=1, batch_size=150, random_state=0,
                          device="cpu").fit(X)
fit("untied")  # warm-up
print("ready", aekit.__file__, flush=True)
for line in sys.stdin:
    t0 = time.perf_counter()
    fit(line.strip())
    print(time.perf_counter() - t0, flush=True)
"""


class Worker:
    def __init__(self, src: str, data: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, src, data], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            raise SystemExit(f"worker for {src} did not start")
        self.where = line[1]

    def __call__(self, kind: str) -> float:
        self.proc.stdin.write(kind + "\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="src folder of the A tree (e.g. a git worktree's src)")
    parser.add_argument("--candidate", default=str(Path(__file__).resolve().parents[1] / "src"),
                        help="src folder of the B tree (default: this checkout)")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    import torch

    import aekit

    X = aekit.load_dataset("mnist").X_train
    tmp = tempfile.TemporaryDirectory()
    path = f"{tmp.name}/x.npy"
    np.save(path, X)
    Xt = torch.from_numpy(X)
    workers = {"A": Worker(args.base, path), "B": Worker(args.candidate, path)}
    print(f"A: {workers['A'].where}\nB: {workers['B'].where}", file=sys.stderr)
    ratios = {(v, w): [] for v in VARIANTS for w in workers}
    floors: list[float] = []
    for r in range(args.rounds):
        order = [(v, w) for v in VARIANTS for w in ("AB" if r % 2 == 0 else "BA")]
        for variant, w in order:
            t = []
            for step in ("floor", "fit", "floor"):
                if step == "floor":
                    t0 = time.perf_counter()
                    floor_epoch(Xt, VARIANTS[variant])
                    t.append(time.perf_counter() - t0)
                else:
                    t.append(workers[w](variant))
            floors += [t[0], t[2]] if variant != "vae" else []
            ratios[(variant, w)].append(t[1] / ((t[0] + t[2]) / 2))
            print(f"round {r + 1}: {variant} {w} {t[1]:.2f} s, {ratios[(variant, w)][-1]:.3f}x floor",
                  file=sys.stderr, flush=True)
    for w in workers.values():
        w.close()
    quiet = min(floors)
    print(f"\ntorch {torch.__version__}, CPU {torch.get_num_threads()} threads, {args.rounds} interleaved rounds; "
          f"floor (reference GEMMs) median {statistics.median(floors):.2f} s, fastest {quiet:.2f} s\n")
    print("| variant | A x floor (median) | B x floor (median) | B / A (median of per-round ratios) |\n"
          "| --- | --- | --- | --- |")
    for variant in VARIANTS:
        a, b = ratios[(variant, "A")], ratios[(variant, "B")]
        per_round = [y / x for x, y in zip(a, b)]
        print(f"| {variant} | {statistics.median(a):.3f} | {statistics.median(b):.3f} | "
              f"{statistics.median(per_round):.3f} |")
    tmp.cleanup()


if __name__ == "__main__":
    main()
