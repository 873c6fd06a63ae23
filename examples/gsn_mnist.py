"""A generative stochastic network on MNIST (Bengio et al. 2013, 2014; TECHNIQUES.md section 10): a denoising
autoencoder trained with walkback, sampled by its corruption-reconstruction Markov chain.

    OMP_NUM_THREADS=1 AEKIT_DATA_DIR=../shared/data nohup python examples/gsn_mnist.py --minutes 15 \
        > runs/gsn.log 2>&1 &

Trains on the first 50,000 training images; writes docs/gsn-chain.png (10 chains from uniform noise, every 10th
step of 100), docs/gsn-samples.png (the last state of 100 chains after 100 steps) and the Parzen-window
log-likelihood of 10,000 such samples (sigma chosen on the last 10,000 training images, as for the AAE).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _budget import train_within  # examples/_budget.py

import aekit
from aekit.evaluation import parzen_evaluation
from aekit.viz import plot_samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", default="2000")
    ap.add_argument("--activation", default="tanh")
    ap.add_argument("--noise", default="saltpepper:0.4")
    ap.add_argument("--walkback", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--minutes", type=float, default=15.0, help="training budget, wall clock")
    ap.add_argument("--steps", type=int, default=100, help="chain steps per sample")
    ap.add_argument("--samples", type=int, default=10000, help="samples in the Parzen density (0: skip)")
    ap.add_argument("--out", default="runs/gsn")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = aekit.load_dataset("mnist")
    X_train, X_val = ds.X_train[:50000], ds.X_train[50000:]
    hidden = tuple(int(h) for h in args.hidden.split(","))
    gsn = aekit.GSN(hidden, noise=args.noise, walkback=args.walkback, activation=args.activation, init="xavier",
                    loss="bce", learning_rate=args.lr, batch_size=100, epochs=0, warm_start=True, random_state=0,
                    device="cpu", checkpoint_dir=args.out)
    print(f"GSN 784-{args.hidden}-784 {args.activation}, noise {args.noise}, walkback {args.walkback}, Adam "
          f"{args.lr}, budget {args.minutes} min, {torch.get_num_threads()} thread", flush=True)
    train_within(gsn, X_train, args.minutes, lambda r, _: (
        f"loss {r['loss']:.4f} (first reconstruction {r['reconstruction']:.4f}, walkback {r.get('walkback', 0.0):.4f})"))

    chain = gsn.sample_chain(10, steps=args.steps, random_state=0)  # (steps, 10, 784)
    every = max(1, args.steps // 10)
    rows = np.stack([chain[every - 1 :: every][:10, i] for i in range(10)]).reshape(-1, chain.shape[-1])
    plot_samples(rows, ds.image_shape, ncols=10,
                 title=f"GSN: 10 chains from uniform noise (rows), steps {every}, {2 * every}, ..., "
                       f"{10 * every} (reconstruction means)").savefig("docs/gsn-chain.png", dpi=80)
    samples = gsn.sample(100, args.steps, random_state=1)
    plot_samples(samples, ds.image_shape, ncols=10,
                 title=f"GSN, {gsn.n_epochs_} epochs: 100 chains after {args.steps} steps").savefig(
        "docs/gsn-samples.png", dpi=80)
    print("wrote docs/gsn-chain.png, docs/gsn-samples.png", flush=True)
    if args.samples:
        t0, c0 = time.perf_counter(), time.process_time()
        result = parzen_evaluation(gsn.sample(args.samples, args.steps, random_state=2), X_val, ds.X_test)
        print(f"Parzen log-likelihood on the test set: {result['parzen_ll']:.1f} +- {result['parzen_se']:.1f} "
              f"(sigma {result['sigma']:.3f} chosen on 10,000 held-out training images; GSN paper: 214 +- 1.1) "
              f"({(time.perf_counter() - t0) / 60:.1f} min wall, {(time.process_time() - c0) / 60:.1f} CPU min)",
              flush=True)


if __name__ == "__main__":
    main()
