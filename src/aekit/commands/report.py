"""``aekit report RUN [--dataset NAME] [--out report.html]``: one self-contained HTML report of a run."""

from __future__ import annotations

import argparse

from ._shared import add_common, add_data_args, emit


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run")
    add_data_args(p)
    p.add_argument("--out", help="output .html file (default RUN/report.html)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ..viz.report import write_report

    from ..runs import check_output

    if args.out:
        check_output(args.out)
    path = write_report(args.run, args.out, args.dataset, data=args.data, label_column=args.label_column,
                        device=args.device or "cpu")
    size = path.stat().st_size
    emit(args, f"wrote {path} ({size / 1e6:.2f} MB)", {"out": str(path), "bytes": size})
