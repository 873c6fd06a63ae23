"""Generative autoencoders on the command line:

* ``aekit train --model vae|aae|gsn ...``: the options of each family (``--model ae``, the default, is the plain
  autoencoder); flags that do not apply to the chosen family are refused;
* ``aekit generate RUN --n 64 --out grid.png``: a grid of new samples (``--npy`` also saves them);
* ``aekit evaluate RUN --nll --k 5000`` (VAE: importance-sampled test NLL, and the -ELBO) and ``--parzen``
  (Parzen-window log-likelihood of 10,000 samples, sigma chosen on the last 10,000 training rows).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..cli import (
    UsageError,
    _add_common,
    _emit,
    _int_list,
    _load_run,
    _read_notes,
    _save_npy,
)

ESTIMATORS = {"ae": "Autoencoder", "vae": "VariationalAutoencoder", "aae": "AdversarialAutoencoder", "gsn": "GSN"}
# what an unset --hidden/--activation/--init/--loss/--noise means for each family (the estimators' defaults)
DEFAULTS: dict[str, dict[str, Any]] = {
    "ae": {"hidden": (300, 150), "activation": "elu", "init": "he", "loss": "mse"},
    "vae": {"hidden": (500, 500), "activation": "elu", "init": "he", "loss": "bce"},
    "aae": {"hidden": (1000, 1000), "activation": "relu", "init": "he", "loss": "bce"},
    "gsn": {"hidden": (2000,), "activation": "tanh", "init": "xavier", "loss": "bce", "noise": "saltpepper:0.4"},
}
# estimator parameter <- argparse attribute, per family, beyond the training settings every family takes
_OWN = {
    "vae": {"latent_dim": "latent_dim", "beta": "beta", "binarize": "binarize"},
    "aae": {"latent_dim": "latent_dim", "prior": "prior", "discriminator_layers": "discriminator",
            "discriminator_learning_rate": "discriminator_lr", "generator_learning_rate": "generator_lr"},
    "gsn": {"noise": "noise", "walkback": "walkback", "tie_weights": "tie_weights",
            "coding_activation": "coding_activation"},
}
_SHARED = ("hidden_layers", "activation", "init", "loss", "l2", "optimizer", "learning_rate", "batch_size", "epochs",
           "early_stopping", "validation_fraction", "patience", "random_state", "device", "checkpoint_every")
# flags that only some families take: attribute -> (flag, value when not given, families)
_ONLY_FOR = {
    "latent_dim": ("--latent-dim", None, ("vae", "aae")), "beta": ("--beta", None, ("vae",)),
    "binarize": ("--binarize", None, ("vae",)), "prior": ("--prior", None, ("aae",)),
    "discriminator": ("--discriminator", None, ("aae",)), "discriminator_lr": ("--discriminator-lr", None, ("aae",)),
    "generator_lr": ("--generator-lr", None, ("aae",)),
    "walkback": ("--walkback", None, ("gsn",)), "tie_weights": ("--tie-weights", False, ("ae", "gsn")),
    "noise": ("--noise", None, ("ae", "gsn")), "coding_activation": ("--coding-activation", None, ("ae", "gsn")),
    "sparsity": ("--sparsity", None, ("ae",)), "contractive": ("--contractive", None, ("ae",)),
    "wta": ("--wta", None, ("ae",)), "greedy": ("--greedy", None, ("ae",)),
    "arch": ("--arch conv", "dense", ("ae", "vae")), "coding_size": ("--coding-size", None, ("ae",)),
}
_CONV = ("arch", "channels", "kernel_sizes", "strides", "pool_sizes")  # vae: --arch conv and its layers


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """``--model`` and each family's options, on ``aekit train``."""
    g = p.add_argument_group("generative models (--model vae|aae|gsn)")
    g.add_argument("--model", default="ae", choices=list(ESTIMATORS),
                   help="ae: autoencoder (default); vae: variational; aae: adversarial; gsn: generative stochastic "
                        "network (denoising AE with walkback)")
    g.add_argument("--latent-dim", type=int, help="vae, aae: coding size (default 20 for vae, 8 for aae)")
    g.add_argument("--beta", type=float, help="vae: weight of the KL term (default 1)")
    g.add_argument("--binarize", choices=["static", "dynamic"],
                   help="vae: train on binarized X, one fixed draw (static) or a new draw per batch (dynamic)")
    g.add_argument("--prior", help="aae: gaussian, gaussian:STD, mixture:K[:RADIUS[:STD]] (default gaussian)")
    g.add_argument("--discriminator", type=_int_list, help="aae: discriminator layers (default 1000,1000)")
    g.add_argument("--discriminator-lr", type=float, help="aae: discriminator's learning rate (default 1e-4)")
    g.add_argument("--generator-lr", type=float, help="aae: the encoder's learning rate against the discriminator "
                                                      "(default 5e-4)")
    g.add_argument("--walkback", type=int, help="gsn: corruption-reconstruction steps per batch (default 3); "
                                                "--noise is the chain's corruption (default saltpepper:0.4)")


def resolve_defaults(args: argparse.Namespace) -> None:
    """Unset ``--hidden``, ``--activation``, ``--init``, ``--loss`` (and ``--noise`` for gsn) take the family's
    defaults."""
    for name, value in DEFAULTS[args.model].items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)


def train_estimator(args: argparse.Namespace, params: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """The estimator class ``--model`` names and its parameters, from the plain autoencoder's ``params``."""
    from .. import estimators

    refused = [flag for attr, (flag, unset, families) in _ONLY_FOR.items()
               if args.model not in families and getattr(args, attr, unset) != unset]
    if refused:
        raise UsageError(f"{', '.join(refused)} {'does' if len(refused) == 1 else 'do'} not apply to --model "
                         f"{args.model}" + ("; add --model vae, aae or gsn" if args.model == "ae" else ""))
    cls = getattr(estimators, ESTIMATORS[args.model])
    if args.model == "ae":
        return cls, params
    chosen = {k: params[k] for k in (*_SHARED, *(_CONV if args.model == "vae" else ()))}
    chosen.update({param: getattr(args, attr) for param, attr in _OWN[args.model].items()
                   if getattr(args, attr) is not None})
    return cls, chosen


# -- aekit generate ----------------------------------------------------------------------------------------------
def _samples(est: Any, n: int, seed: int, steps: int) -> np.ndarray:
    if not hasattr(est, "sample"):
        raise UsageError(f"this run holds a {type(est).__name__}, which does not generate; train one with "
                         "--model vae, aae or gsn")
    if hasattr(est, "sample_chain"):
        return est.sample(n, steps, random_state=seed)
    return est.sample(n, random_state=seed)


def cmd_generate(args: argparse.Namespace) -> None:
    from ..viz import plot_samples

    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    est = _load_run(args.run, args.device)
    notes = _read_notes(Path(args.run))
    image_shape = notes.get("image_shape") or getattr(est, "image_shape", None)
    samples = _samples(est, args.n, args.seed, args.steps)
    out = Path(args.out) if args.out else Path(args.run) / "samples.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"{type(est).__name__}: {args.n} samples" + (f" ({args.steps} chain steps)"
                                                         if hasattr(est, "sample_chain") else "")
    plot_samples(samples, image_shape, ncols=args.ncols or int(np.ceil(np.sqrt(args.n))), title=title).savefig(
        out, dpi=80)
    payload = {"out": str(out), "n": args.n, "shape": list(samples.shape)}
    if args.npy:
        _save_npy(args.npy, samples)
        payload["npy"] = args.npy
    _emit(args, f"wrote {out} ({args.n} samples)", payload)


# -- aekit evaluate --nll / --parzen ----------------------------------------------------------------------------
def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generative models")
    g.add_argument("--nll", action="store_true", help="vae: importance-sampled negative log-likelihood of the test "
                                                      "split (and -ELBO), nats per row")
    g.add_argument("--k", type=int, default=5000, help="importance samples per row for --nll (default 5000)")
    g.add_argument("--rows", type=int, help="evaluate only the first ROWS test rows (default: all)")
    g.add_argument("--parzen", action="store_true", help="Parzen-window log-likelihood of generated samples; sigma "
                                                         "picked on the last --parzen-validation training rows")
    g.add_argument("--parzen-samples", type=int, default=10000, help="samples in the kernel density (10000)")
    g.add_argument("--parzen-validation", type=int, default=10000, help="training rows for choosing sigma (10000)")
    g.add_argument("--steps", type=int, default=100, help="gsn: chain steps per sample (default 100)")
    g.add_argument("--seed", type=int, default=0, help="seeds sampling and the test binarization (default 0)")


def generative_metrics(est: Any, args: argparse.Namespace, X_train: np.ndarray,
                       X_test: np.ndarray) -> tuple[list[str], dict[str, Any]]:
    """Text lines and JSON entries for ``--nll`` / ``--parzen``."""
    from ..data import binarize
    from ..evaluation import parzen_evaluation

    lines: list[str] = []
    payload: dict[str, Any] = {}
    X = X_test if args.rows is None else X_test[: args.rows]
    if args.nll:
        if not hasattr(est, "log_likelihood"):
            raise UsageError(f"--nll needs a variational autoencoder run; this one holds a {type(est).__name__} "
                             "(use --parzen for adversarial and GSN runs)")
        if args.k < 1:
            raise UsageError(f"--k must be >= 1, got {args.k}")
        binarized = bool(getattr(est, "binarize", None))
        Xe = binarize(X, seed=args.seed) if binarized else X
        t0 = time.perf_counter()
        ll = est.log_likelihood(Xe, k=args.k, random_state=args.seed)
        seconds = time.perf_counter() - t0
        neg_elbo = float(-est.elbo(Xe, n_samples=1, random_state=args.seed).mean())
        nll, se = float(-ll.mean()), float(ll.std(ddof=1) / np.sqrt(len(ll))) if len(ll) > 1 else 0.0
        payload.update(nll=nll, nll_se=se, k=args.k, rows=len(Xe), neg_elbo=neg_elbo, binarized=binarized,
                       nll_seconds=round(seconds, 1))
        lines.append(f"test NLL (importance sampling, k={args.k}, {len(Xe)} rows"
                     f"{', binarized once, seed ' + str(args.seed) if binarized else ''}): {nll:.2f} +- {se:.2f} "
                     f"nats; -ELBO {neg_elbo:.2f} ({seconds:.0f} s)")
    if args.parzen:
        n_val = min(args.parzen_validation, len(X_train))
        t0 = time.perf_counter()
        samples = _samples(est, args.parzen_samples, args.seed, args.steps)
        result = parzen_evaluation(samples, X_train[len(X_train) - n_val :], X)
        payload.update(result, parzen_seconds=round(time.perf_counter() - t0, 1))
        lines.append(f"Parzen log-likelihood ({result['n_samples']} samples, sigma {result['sigma']:.3f} chosen on "
                     f"{n_val} training rows): {result['parzen_ll']:.1f} +- {result['parzen_se']:.1f}")
    return lines, payload


def add_commands(subparsers: Any) -> None:
    """Add ``generate`` to the ``aekit`` command line."""
    p = subparsers.add_parser("generate", help="write a grid of samples from a generative run (vae, aae, gsn)")
    p.add_argument("run")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", help="PNG file (default RUN/samples.png)")
    p.add_argument("--ncols", type=int, help="samples per grid row (default: square grid)")
    p.add_argument("--npy", help="also save the samples (n, n_features) to this .npy file")
    p.add_argument("--steps", type=int, default=100, help="gsn: chain steps before a sample is taken (default 100)")
    p.add_argument("--seed", type=int, default=0)
    _add_common(p)
    p.set_defaults(func=cmd_generate)
