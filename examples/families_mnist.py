"""Two of the families' checks on real data (docs/results.md, "More families"):

    # conditional VAE on MNIST: a classifier trained on the real training labels judges 1,000 samples
    OMP_NUM_THREADS=1 AEKIT_DATA_DIR=../shared/data python examples/families_mnist.py cvae
    # VQ-VAE on Fashion-MNIST: test MSE next to continuous autoencoders of the same coding budget, codebook use
    OMP_NUM_THREADS=1 AEKIT_DATA_DIR=../shared/data python examples/families_mnist.py vq-vae

Each training run prints its CPU time (one thread).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import aekit


def timed(fit):
    c0, t0 = time.process_time(), time.perf_counter()
    est = fit()
    return est, time.process_time() - c0, time.perf_counter() - t0


def cvae(args: argparse.Namespace) -> None:
    ds = aekit.load_dataset("mnist")
    judge, cpu, _ = timed(lambda: aekit.PretrainedClassifier(hidden_layers=(300, 150), pretrain=False, epochs=10,
                                                             random_state=0).fit(ds.X_train, ds.y_train))
    print(f"judge: an MLP 784-300-150-10 trained on the 60,000 labelled training images: test accuracy "
          f"{judge.score(ds.X_test, ds.y_test):.4f} ({cpu / 60:.1f} CPU min)", flush=True)
    est, cpu, wall = timed(lambda: aekit.ConditionalVAE((500, 500), latent_dim=args.latent, epochs=args.epochs,
                                                        label_dropout=args.label_dropout, batch_size=100,
                                                        learning_rate=2e-3, lr_schedule="cosine",
                                                        random_state=0).fit(ds.X_train, ds.y_train))
    print(f"cvae 784-500-500-{args.latent} (+ the label), label dropout {args.label_dropout}, {est.n_epochs_} epochs: {cpu / 60:.1f} CPU min "
          f"({wall / 60:.1f} min wall)", flush=True)
    asked = np.resize(np.arange(10), 1000)
    for how, fitted in (("prior N(0, I)", False), ("mixture of 10 on the training codings", True)):
        if fitted:
            est.fit_sampler(ds.X_train, ds.y_train, n_components=10)
        samples = est.sample(1000, y=asked, random_state=0)
        hits = judge.predict(samples) == asked
        per_class = [hits[asked == c].mean() for c in range(10)]
        print(f"codings from the {how}: {hits.mean():.1%} of 1,000 samples (100 per class) judged the class asked "
              f"for; per class {min(per_class):.0%}-{max(per_class):.0%}", flush=True)
    if args.figure:
        from aekit.viz import plot_samples

        grid = est.sample(100, y=np.repeat(np.arange(10), 10), random_state=1)
        plot_samples(grid, ds.image_shape, ncols=10, title="conditional VAE: 10 samples per class (rows 0-9)"
                     ).savefig(args.figure, dpi=70)
        print(f"wrote {args.figure}")


def vq_vae(args: argparse.Namespace) -> None:
    ds = aekit.load_dataset("fashion-mnist")
    common = dict(arch="conv", channels=(32, 64), image_shape=ds.image_shape, epochs=args.epochs, batch_size=128,
                  random_state=0)
    rows = []
    est, cpu, wall = timed(lambda: aekit.VQVAE(n_codes=512, code_dim=16, **common).fit(ds.X_train))
    positions = est.model_.positions
    test = est.codebook_usage(ds.X_test)
    last = est.history_[-1]
    rows.append(("VQ-VAE, 512 codes of 16", f"{positions} codes ({positions * 9} bits)", -est.score(ds.X_test), cpu))
    print(f"vq-vae: {positions} positions x 512 codes; last epoch: usage {last['usage']:.1%}, perplexity "
          f"{last['perplexity']:.0f}; test set: usage {test['usage']:.1%}, perplexity {test['perplexity']:.0f}; "
          f"test MSE {-est.score(ds.X_test):.5f} ({cpu / 60:.1f} CPU min, {wall / 60:.1f} min wall)", flush=True)
    for size in (positions, round(positions * 9 / 32)):
        ae, cpu, _ = timed(lambda: aekit.Autoencoder(coding_size=size, **common).fit(ds.X_train))
        rows.append((f"continuous conv AE, coding_size {size}", f"{size} floats ({size * 32} bits)",
                     -ae.score(ds.X_test), cpu))
        print(f"conv AE, {size} continuous codings: test MSE {-ae.score(ds.X_test):.5f} ({cpu / 60:.1f} CPU min)",
              flush=True)
    print("\n| model | codings | test MSE | CPU min |\n| --- | --- | --- | --- |")
    for name, codes, mse, cpu in rows:
        print(f"| {name} | {codes} | {mse:.5f} | {cpu / 60:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("check", choices=("cvae", "vq-vae"))
    ap.add_argument("--epochs", type=int, default=None, help="default: 30 (cvae), 15 (vq-vae)")
    ap.add_argument("--latent", type=int, default=8)
    ap.add_argument("--label-dropout", type=float, default=0.0)
    ap.add_argument("--figure", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.check == "cvae":
        args.epochs = args.epochs or 30
        cvae(args)
    else:
        args.epochs = args.epochs or 15
        vq_vae(args)


if __name__ == "__main__":
    main()
