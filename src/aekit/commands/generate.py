"""``aekit generate RUN --n 64 --out grid.png``: a grid of new samples from a generative run (``--npy`` also saves
them)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..runs import check_output, figure_bytes, read_notes, save_npy, write_file
from ._shared import add_common, emit, load_run
from .evaluate import samples


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", help="PNG file (default RUN/samples.png)")
    p.add_argument("--ncols", type=int, help="samples per grid row (default: square grid)")
    p.add_argument("--npy", help="also save the samples (n, n_features) to this .npy file (default: none)")
    p.add_argument("--steps", type=int, default=100, help="gsn: chain steps before a sample is taken (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seeds the samples (default 0)")
    p.add_argument("--gmm", type=int, metavar="K", help="draw the codings from a K-component Gaussian mixture fitted "
                   "on the codings of the run's training rows (fit_sampler; pythae's GMM sampler) instead of the "
                   "prior (default: the prior)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ..viz import plot_samples

    if args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    out = check_output(args.out) if args.out else Path(args.run) / "samples.png"
    if args.npy:
        check_output(args.npy, "--npy")
    est = load_run(args.run, args.device)
    notes = read_notes(args.run)
    image_shape = notes.get("image_shape") or getattr(est, "image_shape", None)
    if args.gmm is not None:
        if not hasattr(est, "fit_sampler"):
            raise ConfigError(f"--gmm needs a model that decodes codings from a prior; this run holds a "
                              f"{type(est).__name__}")
        if args.gmm < 1:
            raise ConfigError(f"--gmm must be >= 1 components, got {args.gmm}")
        from ..runs import load_split

        split = load_split(notes.get("data") or {})
        labels = () if not getattr(est, "conditional", False) else (split.y_train,)
        est.fit_sampler(split.X_train, *labels, n_components=args.gmm)
    drawn = samples(est, args.n, args.seed, args.steps)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"{type(est).__name__}: {args.n} samples" + (f" ({args.steps} chain steps)"
                                                         if hasattr(est, "sample_chain") else "") + (
        f", codings from a {args.gmm}-component mixture" if args.gmm else "")
    fig = plot_samples(drawn, image_shape, ncols=args.ncols or int(np.ceil(np.sqrt(args.n))), title=title)
    write_file(out.parent, out.name, figure_bytes(fig, dpi=80))
    payload = {"out": str(out), "n": args.n, "shape": list(drawn.shape)}
    if args.npy:
        save_npy(args.npy, drawn)
        payload["npy"] = args.npy
    emit(args, f"wrote {out} ({args.n} samples)", payload)
