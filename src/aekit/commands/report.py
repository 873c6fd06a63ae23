"""``aekit report RUN [--dataset NAME] [--out report.html]``: one self-contained HTML report of a run."""

from __future__ import annotations

import argparse
from typing import Any

from ..cli import _add_common, _add_data_args, _emit


def cmd_report(args: argparse.Namespace) -> None:
    from ..viz.report import write_report

    path = write_report(args.run, args.out, args.dataset, data=args.data, label_column=args.label_column,
                        device=args.device or "cpu")
    size = path.stat().st_size
    _emit(args, f"wrote {path} ({size / 1e6:.2f} MB)", {"out": str(path), "bytes": size})


def add_commands(subparsers: Any) -> None:
    """Add ``report`` to the ``aekit`` command line."""
    p = subparsers.add_parser("report", help="write an HTML report of a run (configuration, curves, metrics, "
                                             "figures), images embedded")
    p.add_argument("run")
    _add_data_args(p)
    p.add_argument("--out", help="output .html file (default RUN/report.html)")
    _add_common(p)
    p.set_defaults(func=cmd_report)
