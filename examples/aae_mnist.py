"""Adversarial autoencoder on MNIST (Makhzani et al. 2016; TECHNIQUES.md section 10): Parzen-window
log-likelihood of 10,000 generated samples beside the paper's 340 +- 2.

Protocol (Goodfellow et al. 2014's, which the paper follows): train on the first 50,000 training images; a Gaussian
kernel density on 10,000 samples (decoded prior draws); its bandwidth sigma picked on the last 10,000 training
images (held out); the log-likelihood of the 10,000 test images reported as mean +- standard error.

    OMP_NUM_THREADS=1 AEKIT_DATA_DIR=../shared/data nohup python examples/aae_mnist.py --minutes 25 \
        > runs/aae.log 2>&1 &

Writes the run to runs/aae and a grid of samples to docs/aae-samples.png.
"""

from __future__ import annotations

import argparse
import time

import torch
from _budget import train_within  # examples/_budget.py

import aekit
from aekit.evaluation import parzen_evaluation
from aekit.viz import plot_samples


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", default="1000,1000")
    ap.add_argument("--discriminator", default="500,500")
    ap.add_argument("--latent", type=int, default=8)
    ap.add_argument("--prior", default="gaussian")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--discriminator-lr", type=float, default=1e-4)
    ap.add_argument("--generator-lr", type=float, default=5e-4)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=25.0, help="training budget, wall clock")
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--out", default="runs/aae")
    ap.add_argument("--figure", default="docs/aae-samples.png")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = aekit.load_dataset("mnist")
    X_train, X_val = ds.X_train[:50000], ds.X_train[50000:]
    aae = aekit.AdversarialAutoencoder(_ints(args.hidden), latent_dim=args.latent,
                                       discriminator_layers=_ints(args.discriminator), prior=args.prior,
                                       activation="relu", init="he", loss="bce", learning_rate=args.lr,
                                       discriminator_learning_rate=args.discriminator_lr,
                                       generator_learning_rate=args.generator_lr, batch_size=args.batch_size, epochs=0,
                                       warm_start=True, random_state=0, device="cpu", checkpoint_dir=args.out)
    print(f"AAE 784-{args.hidden}-{args.latent}, discriminator {args.latent}-{args.discriminator}-1, prior "
          f"{args.prior}, Adam {args.lr}, D {args.discriminator_lr}, G {args.generator_lr}, batch {args.batch_size}, budget {args.minutes} "
          f"min, {torch.get_num_threads()} thread", flush=True)
    train_within(aae, X_train, args.minutes, lambda r, _: (
        f"reconstruction {r['reconstruction']:.4f}, discriminator {r['discriminator']:.3f}, "
        f"generator {r['generator']:.3f}, D accuracy {r['prior_accuracy']:.3f}"))
    Z = aae.transform(X_val)
    print(f"codings of held-out images: mean {Z.mean(0).round(2).tolist()}, std {Z.std(0).round(2).tolist()} "
          "(prior: 0, 1)", flush=True)

    t0, c0 = time.perf_counter(), time.process_time()
    samples = aae.sample(args.samples, random_state=0)
    result = parzen_evaluation(samples, X_val, ds.X_test)
    print(f"Parzen log-likelihood on the test set: {result['parzen_ll']:.1f} +- {result['parzen_se']:.1f} "
          f"(sigma {result['sigma']:.3f} chosen on 10,000 held-out training images, validation LL "
          f"{result['validation_ll']:.1f}; paper: 340 +- 2) ({(time.perf_counter() - t0) / 60:.1f} min wall, "
          f"{(time.process_time() - c0) / 60:.1f} CPU min)", flush=True)
    fig = plot_samples(samples[:100], ds.image_shape, ncols=10,
                       title=f"AAE 784-{args.hidden}-{args.latent}, {aae.n_epochs_} epochs: decoded prior draws")
    fig.savefig(args.figure, dpi=80)
    print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
