"""``aekit export RUN --format onnx|torchscript --part encoder|decoder|model --out FILE``: a trained model out of
aekit (:mod:`aekit.export`)."""

from __future__ import annotations

import argparse

from ..export import FORMATS, PARTS
from ..runs import check_output
from ._shared import add_common, emit, load_run


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="onnx (needs aekit[export]) or torchscript "
                                                                      "(default onnx)")
    p.add_argument("--part", choices=PARTS, default="encoder", help="encoder: rows -> codings; decoder: codings -> "
                                                                    "reconstructions; model: both (default encoder)")
    p.add_argument("--out", required=True, help="the file to write, .onnx or .pt (required)")
    add_common(p, device=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ..export import example_input, export

    check_output(args.out)
    est = load_run(args.run, "cpu")
    path = export(est, args.out, args.format, args.part)
    shape = list(example_input(est, args.part).shape[1:])
    emit(args, f"wrote {path} ({args.format}, {args.part}: input (batch, {shape[0]}))",
         {"out": str(path), "format": args.format, "part": args.part, "input_features": shape[0]})
