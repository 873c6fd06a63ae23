"""What every command shares: the data and device options, ``--json`` output, loading a run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..runs import data_spec, read_notes


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="named dataset: digits (embedded), mnist, fashion-mnist, cifar10 (default: the "
                                     "run's data, else digits)")
    p.add_argument("--data", help="a .npy, .npz, .csv file or an image folder (default: none)")
    p.add_argument("--label-column", help="CSV column holding labels (index or name), dropped from X (default: none)")
    p.add_argument("--test-fraction", type=float, help="of a --data file, held out as its test rows, seeded "
                                                       "(default 0.2; a run's own file keeps the run's split)")


def add_rows_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", type=int, dest="train_rows",
                   help="train on a seeded subsample of this many training rows (default: all)")


def add_common(p: argparse.ArgumentParser, device: bool = True) -> None:
    if device:
        p.add_argument("--device", default=None, help="auto (default: CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="make the last line of stdout a JSON object")


def spec_of(args: argparse.Namespace, notes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The data ``args`` name (``--dataset``/``--data``), else the run's (``notes``)."""
    return data_spec(getattr(args, "dataset", None), getattr(args, "data", None), getattr(args, "label_column", None),
                     notes, getattr(args, "test_fraction", None), getattr(args, "train_rows", None))


def run_spec(args: argparse.Namespace, run: str | Path) -> dict[str, Any]:
    return spec_of(args, read_notes(run))


def emit(args: argparse.Namespace, text: str, payload: dict[str, Any]) -> None:
    print(text)
    if getattr(args, "json", False):
        print(json.dumps(payload))


#: the command for each kind of run, named when a command is given a run it cannot use
_COMMAND_FOR = {"AnomalyDetector": "aekit detect score|evaluate", "PretrainedClassifier": "aekit classify",
                "SemanticHasher": "aekit hash"}


def load_run(run: str | Path, device: str | None, needs: tuple[str, ...] = (), command: str = "this command"):
    """The estimator in the run folder ``run``; ``needs``: the methods ``command`` calls on it, refused with a
    clear error (naming the command that fits the run) when it lacks one."""
    from ..errors import ConfigError
    from ..estimators.base import load

    est = load(run, device=device)
    missing = [m for m in needs if not callable(getattr(est, m, None))]
    if missing:
        name = type(est).__name__
        fits = _COMMAND_FOR.get(name)
        article = "an" if name[0] in "AEIOU" else "a"
        raise ConfigError(f"{run} holds {article} {name}, which {command} cannot use (it has no {missing[0]})"
                          + (f"; use {fits}" if fits else ""))
    return est


def norm(value: Any) -> Any:
    """Lists and tuples compare equal (JSON gives lists back)."""
    return [norm(v) for v in value] if isinstance(value, (tuple, list)) else value
