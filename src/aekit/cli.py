"""The ``aekit`` command line. Each subcommand lives in :mod:`aekit.commands` beside what it drives; this module
only names them and runs the chosen one, importing nothing heavy until a subcommand is chosen (``aekit --help``
starts without torch).

User errors (bad data, missing files, corrupt checkpoints, bad flags) print one ``error:`` line and exit with
code 2, without a traceback (set ``AEKIT_DEBUG=1`` to see one). ``--json`` makes the last stdout line a JSON object.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from . import __version__
from .errors import AekitError, TrainingInterrupted

# subcommand -> ("module:function that adds its arguments", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("aekit.commands.train:add_parser", "train an autoencoder of any family and write a run folder"),
    "evaluate": ("aekit.commands.evaluate:add_parser",
                 "test reconstruction MSE of a run (--nll, --parzen: likelihoods)"),
    "encode": ("aekit.commands.transform:add_encode", "write the codings of a data set to .npy"),
    "reconstruct": ("aekit.commands.transform:add_reconstruct", "write the reconstructions of a data set to .npy"),
    "info": ("aekit.commands.info:add_parser", "describe a run folder"),
    "generate": ("aekit.commands.generate:add_parser",
                 "write a grid of samples from a generative run (vae, aae, gsn, ...)"),
    "report": ("aekit.commands.report:add_parser",
               "write an HTML report of a run (configuration, curves, metrics, figures), images embedded"),
    "hash": ("aekit.commands.hash:add_parser", "semantic hashing: train, index, query, evaluate"),
    "detect": ("aekit.commands.detect:add_parser",
               "anomaly detection: train a detector, score rows, evaluate against labels"),
    "classify": ("aekit.commands.classify:add_classify",
                 "train a classifier on a fraction of the labels, reusing the encoder of a run; report test accuracy"),
    "experiment": ("aekit.commands.classify:add_experiment", "reproducible experiments with a table and a plot"),
    "export": ("aekit.commands.export:add_parser",
               "write a trained model's encoder, decoder or whole model as ONNX or TorchScript"),
}


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the arguments of the subcommand that ``argv`` chooses (of every subcommand when ``argv``
    is None); the others are listed by name and help only."""
    parser = argparse.ArgumentParser(prog="aekit", description="Train and use autoencoders.")
    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = set(COMMANDS) if argv is None else {_chosen(argv)}
    for name, (target, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name in chosen:
            module, _, function = target.partition(":")
            getattr(importlib.import_module(module), function)(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        args.func(args)
        if _distributed():  # ranks leave together: rank 0 may still be writing files
            import torch.distributed

            torch.distributed.barrier()
    except TrainingInterrupted as exc:
        run = getattr(exc, "run", None)
        print(f"aekit {args.command}: stopped by signal {exc.signum} at {exc.position.where()}; checkpoint written"
              + (f" to {run}; continue with: aekit train --resume {run}" if run else ""), file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (AekitError, ValueError, TypeError, OSError) as exc:
        if os.environ.get("AEKIT_DEBUG"):
            raise
        print(f"aekit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if _distributed():
            import torch.distributed

            torch.distributed.destroy_process_group()
    return 0


def _distributed() -> bool:
    if "torch" not in sys.modules:
        return False
    import torch.distributed

    return torch.distributed.is_available() and torch.distributed.is_initialized()


if __name__ == "__main__":
    raise SystemExit(main())
