"""``aekit encode RUN`` / ``aekit reconstruct RUN``: the codings or reconstructions of a data split, to .npy."""

from __future__ import annotations

import argparse
import inspect

from ..data.sources import is_source
from ..errors import ConfigError
from ..runs import check_output, head, load_split, save_npy, write_npy_rows
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
    split = load_split(run_spec(args, args.run), in_memory=est.in_memory)
    X = split.X_test if args.split == "test" else split.X_train
    fn = getattr(est, method)
    if is_source(X):  # streamed: the output goes to disk through a memory map as it is computed
        if "out" not in inspect.signature(fn).parameters:
            raise ConfigError(f"{type(est).__name__}.{method} cannot write a streamed data set's output yet; "
                              "use a subset that fits in memory (--rows) or another family")
        first = fn(head(X, 1))
        shape = (len(X), *first.shape[1:])
        write_npy_rows(args.out, shape, first.dtype, lambda out: fn(X, out=out))
    else:
        out = fn(X)
        shape = out.shape
        save_npy(args.out, out)
    emit(args, f"wrote {args.out} {tuple(shape)}", {"out": args.out, "shape": list(shape)})
