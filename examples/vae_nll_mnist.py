"""Importance-sampled test NLL of a VAE on binarized MNIST (Burda et al. 2015; TECHNIQUES.md section 9), with a
budget of training time: train on dynamically binarized MNIST (a fresh Bernoulli draw per batch) until the next
epoch would pass ``--minutes``, then report the test -ELBO and the importance-sampled NLL (k samples per image) on
the test set binarized once (seed 0).

    OMP_NUM_THREADS=1 AEKIT_DATA_DIR=../shared/data nohup python examples/vae_nll_mnist.py --minutes 30 \
        > runs/vae-nll.log 2>&1 &

Learning rate: 1e-3, then 3e-4 after 60% of the budget and 1e-4 after 85% (a step decay done by continuing the
run with ``warm_start`` and a new ``learning_rate``; Adam's moments carry over).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _budget import train_within  # examples/_budget.py

import aekit
from aekit.data import binarize
from aekit.viz import plot_samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", default="500,500")
    ap.add_argument("--latent", type=int, default=50)
    ap.add_argument("--activation", default="elu")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=30.0, help="training budget, wall clock")
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--rows", type=int, default=None, help="test rows to evaluate (default all 10,000)")
    ap.add_argument("--out", default="runs/vae-nll")
    ap.add_argument("--figure", default=None, help="sample grid PNG (default: none)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    ds = aekit.load_dataset("mnist")
    vae = aekit.VariationalAutoencoder(hidden, latent_dim=args.latent, activation=args.activation, init="he",
                                       binarize="dynamic", batch_size=args.batch_size, learning_rate=1e-3,
                                       lr_schedule="constant", epochs=0, warm_start=True, random_state=0, device="cpu",
                                       checkpoint_dir=args.out)
    print(f"784-{args.hidden}-{args.latent} {args.activation}, dynamic binarization, batch {args.batch_size}, "
          f"budget {args.minutes} min, {torch.get_num_threads()} thread", flush=True)
    budget = 60 * args.minutes

    def schedule(elapsed: float) -> dict:  # step the learning rate down over the budget
        return {"learning_rate": 1e-3 if elapsed < 0.6 * budget else 3e-4 if elapsed < 0.85 * budget else 1e-4}

    train_within(vae, ds.X_train, args.minutes, lambda r, p: (
        f"loss {r['loss']:.2f} (reconstruction {r['reconstruction']:.2f}, KL {r['kl']:.2f}), lr {p['learning_rate']:g}"),
        schedule)

    X_test = binarize(ds.X_test[: args.rows], seed=0)  # one fixed binarization of the test set
    neg_elbo = -vae.elbo(X_test, n_samples=1, random_state=0)
    print(f"test -ELBO ({len(X_test)} images, binarized, seed 0): {neg_elbo.mean():.2f} nats", flush=True)
    t0, c0 = time.perf_counter(), time.process_time()
    ll = vae.log_likelihood(X_test, k=args.k, random_state=0)
    print(f"test NLL, importance sampling k={args.k}: {-ll.mean():.2f} +- {ll.std(ddof=1) / np.sqrt(len(ll)):.2f} "
          f"nats ({(time.perf_counter() - t0) / 60:.1f} min wall, {(time.process_time() - c0) / 60:.1f} CPU min)",
          flush=True)
    if args.figure:
        fig = plot_samples(vae.sample(64, random_state=0), ds.image_shape, ncols=8,
                           title=f"VAE 784-{args.hidden}-{args.latent}, {vae.n_epochs_} epochs, binarized MNIST: "
                                 "decoded prior samples (means)")
        fig.savefig(args.figure, dpi=80)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
