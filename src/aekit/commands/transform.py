"""``aekit encode RUN`` / ``aekit reconstruct RUN``: the codings or reconstructions of a data split, to .npy."""

from __future__ import annotations

import argparse

from ..runs import check_output, load_split, save_npy
from ._shared import add_common, add_data_args, emit, load_run, run_spec

def _add_parser(p: argparse.ArgumentParser, method: str) -> None:
    p.add_argument("run")
    add_data_args(p)
    p.add_argument("--split", choices=["train", "test"], default="test",
                   help="which rows: the test split (a --data file's held-out rows) or the training rows (default test)")
    p.add_argument("--out", required=True, help="output .npy file (required)")
    add_common(p)
    p.set_defaults(func=lambda args: run(args, method))


def add_encode(p: argparse.ArgumentParser) -> None:
    _add_parser(p, "transform")


def add_reconstruct(p: argparse.ArgumentParser) -> None:
    _add_parser(p, "predict")


def run(args: argparse.Namespace, method: str) -> None:
    check_output(args.out)  # before any work: never over a run folder's own files
    est = load_run(args.run, args.device, needs=("transform", method),
                   command="aekit encode" if method == "transform" else "aekit reconstruct")
    split = load_split(run_spec(args, args.run))
    X = split.X_test if args.split == "test" else split.X_train
    out = getattr(est, method)(X)
    save_npy(args.out, out)
    emit(args, f"wrote {args.out} {out.shape}", {"out": args.out, "shape": list(out.shape)})
