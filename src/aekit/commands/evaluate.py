"""``aekit evaluate RUN``: the test reconstruction MSE of a run; ``--nll`` (models with ``log_likelihood``: the
importance-sampled test NLL and the -ELBO) and ``--parzen`` (models that ``sample``: the Parzen-window
log-likelihood of 10,000 samples, sigma chosen on the last 10,000 training rows)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..runs import head, load_split
from ._shared import add_common, add_data_args, emit, load_run, run_spec


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run")
    add_data_args(p)
    g = p.add_argument_group("generative models")
    g.add_argument("--nll", action="store_true", help="importance-sampled negative log-likelihood of the test split "
                                                      "(and -ELBO), nats per row (models with a likelihood: vae)")
    g.add_argument("--k", type=int, default=5000, help="importance samples per row for --nll (default 5000)")
    g.add_argument("--rows", type=int, help="evaluate only the first ROWS test rows (default: all)")
    g.add_argument("--parzen", action="store_true", help="Parzen-window log-likelihood of generated samples; sigma "
                                                         "picked on the last --parzen-validation training rows")
    g.add_argument("--parzen-samples", type=int, default=10000, help="samples in the kernel density (default 10000)")
    g.add_argument("--parzen-validation", type=int, default=10000, help="training rows for choosing sigma (default 10000)")
    g.add_argument("--steps", type=int, default=100, help="gsn: chain steps per sample (default 100)")
    g.add_argument("--seed", type=int, default=0, help="seeds sampling and the test binarization (default 0)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    est = load_run(args.run, args.device, needs=("score", "transform"), command="aekit evaluate")
    split = load_split(run_spec(args, args.run), in_memory=est.in_memory)  # the MSE streams a file that does not fit
    test_mse = -est.score(split.X_test)
    lines, payload = [f"test reconstruction MSE: {test_mse:.6f}"], {"test_mse": test_mse}
    if args.nll or args.parzen:  # generative runs
        more_lines, more = generative_metrics(est, args, split.X_train, split.X_test)
        lines, payload = lines + more_lines, {**payload, **more}
    emit(args, "\n".join(lines), payload)


def samples(est: Any, n: int, seed: int, steps: int) -> np.ndarray:
    """``n`` samples of a generative run (a chain model runs ``steps`` steps per sample)."""
    from ..registry import FAMILIES

    if not hasattr(est, "sample"):
        generative = sorted(name for name, cls in FAMILIES.items() if hasattr(cls, "sample"))
        name = type(est).__name__
        raise ConfigError(f"this run holds {'an' if name[0] in 'AEIOU' else 'a'} {name} model, which does not "
                          f"generate; train one with --model {', '.join(generative)}")
    if hasattr(est, "sample_chain"):
        return est.sample(n, steps, random_state=seed)
    return est.sample(n, random_state=seed)


def generative_metrics(est: Any, args: argparse.Namespace, X_train: np.ndarray,
                       X_test: np.ndarray) -> tuple[list[str], dict[str, Any]]:
    """Text lines and JSON entries for ``--nll`` / ``--parzen``."""
    from ..data import binarize
    from ..evaluation import parzen_evaluation

    lines: list[str] = []
    payload: dict[str, Any] = {}
    X = head(X_test, args.rows)  # in memory (a streamed split's rows are loaded: checked against the limit)
    if args.nll:
        if not hasattr(est, "log_likelihood"):
            raise ConfigError(f"--nll needs a variational autoencoder run (a model with a likelihood); this one holds "
                              f"a {type(est).__name__} (use --parzen for other generative runs)")
        if args.k < 1:
            raise ConfigError(f"--k must be >= 1, got {args.k}")
        binarized = bool(getattr(est, "binarize_", None))
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
        drawn = samples(est, args.parzen_samples, args.seed, args.steps)
        result = parzen_evaluation(drawn, head(X_train, n_val, len(X_train) - n_val), X)
        payload.update(result, parzen_seconds=round(time.perf_counter() - t0, 1))
        lines.append(f"Parzen log-likelihood ({result['n_samples']} samples, sigma {result['sigma']:.3f} chosen on "
                     f"{n_val} training rows): {result['parzen_ll']:.1f} +- {result['parzen_se']:.1f}")
    return lines, payload
