"""``aekit info RUN``: what a run folder holds."""

from __future__ import annotations

import argparse

from ..runs import read_notes
from ._shared import emit, load_run, norm


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("run")
    p.add_argument("--json", action="store_true", help="make the last line of stdout a JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    est = load_run(args.run, "cpu")
    notes = read_notes(args.run)
    info = {
        "estimator": type(est).__name__,
        "model": est.model_.config,
        "params": {k: norm(v) for k, v in est.get_params().items()},
        "epochs_done": est.n_epochs_,
        "n_parameters": sum(p.numel() for p in est.model_.parameters()),
        "last_epoch": est.history_[-1] if est.history_ else None,
        **{k: notes[k] for k in ("data", "metrics") if k in notes},
    }
    emit(args, "\n".join(f"{k}: {v}" for k, v in info.items()), info)
