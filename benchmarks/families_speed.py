"""Seconds per training epoch of each generative family, aekit against pythae 0.1.2 on the same network and data
(an optional extra: ``pip install pythae``; its rows are skipped when it is missing).

    OMP_NUM_THREADS=1 AEKIT_DATA_DIR=../shared/data python benchmarks/families_speed.py --rounds 3
    OMP_NUM_THREADS=1 AEKIT_DATA_DIR=../shared/data python benchmarks/families_speed.py --rounds 3 --bf16

``--bf16`` adds aekit with ``precision="bf16-mixed"`` to each round (on a CPU with bfloat16 units), interleaved with
the float32 runs, and the bf16 / fp32 ratio of each family.

Network: dense 784-500-500-16 ELU both sides (pythae gets the same layers as custom encoder and decoder), a
Bernoulli decoder (pythae: ``reconstruction_loss="bce"``; WAE and VQ-VAE: squared error), Adam 1e-3, batch 100,
10,000 MNIST training images, one thread. Timed: one epoch of the training loop itself (aekit: the epoch's
``time`` in the history; pythae: ``BaseTrainer.train_step``), after one warm-up epoch; rounds interleave the two
libraries family by family, and the table gives medians and the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
from torch import nn

import aekit

HIDDEN, LATENT, BATCH = (500, 500), 16, 100


def aekit_families(precision: str = "32-true") -> dict:
    common = dict(hidden_layers=HIDDEN, epochs=1, batch_size=BATCH, learning_rate=1e-3, random_state=0,
                  binarize=None, init="he", precision=precision)
    return {
        "vae": lambda: aekit.VariationalAutoencoder(latent_dim=LATENT, **common),
        "beta-vae": lambda: aekit.BetaVAE(latent_dim=LATENT, beta=4.0, **common),
        "beta-tcvae": lambda: aekit.BetaTCVAE(latent_dim=LATENT, beta=6.0, **common),
        "iwae (k=5)": lambda: aekit.IWAE(latent_dim=LATENT, k=5, **common),
        "vamp (K=50)": lambda: aekit.VampPriorVAE(latent_dim=LATENT, n_components=50, **common),
        "wae": lambda: aekit.WAE(latent_dim=LATENT, **{k: v for k, v in common.items() if k != "binarize"}),
        "vq-vae": lambda: aekit.VQVAE(n_codes=512, code_dim=LATENT, n_latents=1,
                                      **{k: v for k, v in common.items() if k != "binarize"}),
    }


def aekit_epoch(make, X: np.ndarray) -> float:
    est = make()
    est.fit(X)
    return est.history_[-1]["time"]


# -- pythae -------------------------------------------------------------------------------------------------------
def pythae_families() -> dict | None:
    try:
        from pythae import models as pm
        from pythae.models.base.base_utils import ModelOutput
        from pythae.models.nn import BaseDecoder, BaseEncoder
    except ImportError:
        return None

    def mlp(sizes):
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ELU()]
        return nn.Sequential(*layers)

    class Encoder(BaseEncoder):
        def __init__(self, variance: bool = True):
            super().__init__()
            self.body = mlp([784, *HIDDEN])
            self.mu = nn.Linear(HIDDEN[-1], LATENT)
            self.logvar = nn.Linear(HIDDEN[-1], LATENT) if variance else None

        def forward(self, x):
            h = self.body(x.reshape(len(x), -1))
            out = ModelOutput(embedding=self.mu(h))
            if self.logvar is not None:
                out["log_covariance"] = self.logvar(h)
            return out

    class Decoder(BaseDecoder):
        def __init__(self, sigmoid: bool = True):
            super().__init__()
            self.body = nn.Sequential(mlp([LATENT, *reversed(HIDDEN)]), nn.Linear(HIDDEN[0], 784))
            self.sigmoid = sigmoid

        def forward(self, z):
            x = self.body(z.reshape(len(z), -1))
            return ModelOutput(reconstruction=(torch.sigmoid(x) if self.sigmoid else x).reshape(len(z), 1, 28, 28))

    shape = dict(input_dim=(1, 28, 28), latent_dim=LATENT)
    return {
        "vae": lambda: pm.VAE(pm.VAEConfig(**shape, reconstruction_loss="bce"), Encoder(), Decoder()),
        "beta-vae": lambda: pm.BetaVAE(pm.BetaVAEConfig(**shape, reconstruction_loss="bce", beta=4.0), Encoder(),
                                       Decoder()),
        "beta-tcvae": lambda: pm.BetaTCVAE(pm.BetaTCVAEConfig(**shape, reconstruction_loss="bce", beta=6.0,
                                                              use_mss=False), Encoder(), Decoder()),
        "iwae (k=5)": lambda: pm.IWAE(pm.IWAEConfig(**shape, reconstruction_loss="bce", number_samples=5),
                                      Encoder(), Decoder()),
        "vamp (K=50)": lambda: pm.VAMP(pm.VAMPConfig(**shape, reconstruction_loss="bce", number_components=50),
                                       Encoder(), Decoder()),
        "wae": lambda: pm.WAE_MMD(pm.WAE_MMD_Config(**shape, kernel_choice="imq", reg_weight=10.0),
                                  Encoder(variance=False), Decoder(sigmoid=False)),
        "vq-vae": lambda: pm.VQVAE(pm.VQVAEConfig(**shape, num_embeddings=512, use_ema=True),
                                   Encoder(variance=False), Decoder(sigmoid=False)),
    }


def pythae_epoch(make, X: np.ndarray, out: str) -> float:
    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    data = torch.from_numpy(X.reshape(-1, 1, 28, 28))
    config = BaseTrainerConfig(output_dir=out, per_device_train_batch_size=BATCH, num_epochs=1, learning_rate=1e-3,
                               no_cuda=True)
    trainer = BaseTrainer(make(), BaseDataset(data, torch.zeros(len(data))), training_config=config)
    trainer.prepare_training()  # optimizer, callbacks: what its train() does before the epochs
    t0 = time.perf_counter()
    trainer.train_step(1)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--only", default=None, help="comma-separated family names (default: all)")
    ap.add_argument("--bf16", action="store_true", help="also aekit in precision='bf16-mixed', interleaved")
    args = ap.parse_args()
    torch.set_num_threads(1)
    X = aekit.load_dataset("mnist").X_train[: args.rows]
    ours, theirs = aekit_families(), pythae_families()
    ours_bf16 = aekit_families("bf16-mixed") if args.bf16 else None
    names = [n for n in ours if args.only is None or n in args.only.split(",")]
    times: dict[str, dict[str, list[float]]] = {n: {"aekit": [], "pythae": [], "bf16": []} for n in names}
    with tempfile.TemporaryDirectory() as out:
        for name in names:  # warm-up: one epoch of each
            aekit_epoch(ours[name], X[:1000])
            if ours_bf16 is not None:
                aekit_epoch(ours_bf16[name], X[:1000])
            if theirs is not None:
                pythae_epoch(theirs[name], X[:1000], out)
        for r in range(args.rounds):
            for name in names:
                times[name]["aekit"].append(aekit_epoch(ours[name], X))
                if ours_bf16 is not None:
                    times[name]["bf16"].append(aekit_epoch(ours_bf16[name], X))
                if theirs is not None:
                    times[name]["pythae"].append(pythae_epoch(theirs[name], X, out))
                bf16 = f", aekit bf16-mixed {times[name]['bf16'][-1]:.2f} s" if ours_bf16 is not None else ""
                print(f"round {r} {name}: aekit {times[name]['aekit'][-1]:.2f} s{bf16}, pythae "
                      f"{times[name]['pythae'][-1] if theirs is not None else float('nan'):.2f} s", flush=True)
    print(f"\n{args.rows} MNIST rows, 784-500-500-{LATENT} ELU, batch {BATCH}, 1 thread, {args.rounds} rounds "
          f"(medians)\n")
    bf16_head = ((" aekit bf16-mixed s/epoch | bf16 / fp32 (median of rounds) |", " --- | --- |") if args.bf16
                 else ("", ""))
    print(f"| family | aekit s/epoch | pythae 0.1.2 s/epoch | pythae / aekit (median of rounds) |{bf16_head[0]}")
    print(f"| --- | --- | --- | --- |{bf16_head[1]}")
    for name in names:
        a = times[name]["aekit"]
        p = times[name]["pythae"]
        b = times[name]["bf16"]
        ratio = statistics.median(pp / aa for aa, pp in zip(a, p)) if p else float("nan")
        bf16 = (f" {statistics.median(b):.2f} | {statistics.median(bb / aa for aa, bb in zip(a, b)):.2f}x |"
                if b else "")
        print(f"| {name} | {statistics.median(a):.2f} | {statistics.median(p) if p else float('nan'):.2f} | "
              f"{ratio:.2f}x |{bf16}")


if __name__ == "__main__":
    main()
