"""The ``aekit`` command line: train | evaluate | encode | reconstruct | info.

User errors (bad data, missing files, corrupt checkpoints, bad flags) print one ``error:`` line and exit with
code 2, without a traceback (set ``AEKIT_DEBUG=1`` to see one). ``--json`` makes the last stdout line a JSON object.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .errors import AekitError
from .training.loop import TrainingInterrupted

# modules with ``add_commands(subparsers)``: each adds its subcommands (helpers below are shared with them)
COMMAND_MODULES: list[str] = ["aekit.commands.report", "aekit.commands.hash", "aekit.commands.classify",
                              "aekit.commands.generative"]

RUN_FILE = "run.json"  # the CLI's own notes beside a checkpoint: data source, image shape, metrics


# -- helpers ---------------------------------------------------------------------------------------------------
class UsageError(AekitError):
    pass


def _ints(text: str, minimum: int, example: str) -> tuple[int, ...]:
    try:
        values = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like {example}, got {text!r}") from None
    if not values or min(values) < minimum:
        raise argparse.ArgumentTypeError(f"expected integers >= {minimum} like {example}, got {text!r}")
    return values


def _int_list(text: str) -> tuple[int, ...]:
    """Positive sizes, e.g. ``300,150``."""
    return _ints(text, 1, "300,150")


def _non_negative_ints(text: str) -> tuple[int, ...]:
    """Integers >= 0, e.g. radii or row numbers ``0,1,2``."""
    return _ints(text, 0, "0,1,2")


def _one_or_all(values: tuple[int, ...]) -> int | tuple[int, ...]:
    """One value for every layer as a plain int (the estimator's default form), else the tuple."""
    return values[0] if len(values) == 1 else values


def _float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.01,0.001, got {text!r}") from None


def _data_spec(args: argparse.Namespace, run_notes: dict[str, Any] | None = None) -> dict[str, Any]:
    if getattr(args, "dataset", None) and getattr(args, "data", None):
        raise UsageError("give either --dataset or --data, not both")
    if getattr(args, "data", None):
        return {"file": str(Path(args.data).resolve()), "label_column": args.label_column}
    if getattr(args, "dataset", None):
        return {"dataset": args.dataset}
    if run_notes and "data" in run_notes:
        return run_notes["data"]
    return {"dataset": "digits"}


class DataSplit(NamedTuple):
    X_train: np.ndarray
    X_test: np.ndarray
    image_shape: Any
    y_train: np.ndarray | None
    y_test: np.ndarray | None
    name: str  # dataset name or file name
    split: str  # what X_test is: "test split" or "whole file"


def _load_split(spec: dict[str, Any]) -> DataSplit:
    """The data a spec names; a user file is used whole for both training and testing."""
    from .data import load_dataset, load_file

    if "dataset" in spec:
        ds = load_dataset(spec["dataset"])
        return DataSplit(ds.X_train, ds.X_test, ds.image_shape, ds.y_train, ds.y_test, spec["dataset"], "test split")
    X, y, image_shape = load_file(spec["file"], label_column=spec.get("label_column"))
    return DataSplit(X, X, image_shape, y, y, Path(spec["file"]).name, "whole file")


def _load_data(spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, Any]:
    """(X_train, X_test, image_shape) of :func:`_load_split`."""
    return tuple(_load_split(spec)[:3])


def _read_notes(run: Path) -> dict[str, Any]:
    try:
        return json.loads((run / RUN_FILE).read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise AekitError(f"{run / RUN_FILE} is not valid JSON; delete it or use another run folder") from None


def _write_notes(run: Path, notes: dict[str, Any]) -> None:
    from .io import atomic_write

    atomic_write(run / RUN_FILE, json.dumps(notes, indent=2).encode())


def _save_npy(path: str, array: np.ndarray) -> None:
    from .io import atomic_write

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buf.getvalue())


def _emit(args: argparse.Namespace, text: str, payload: dict[str, Any]) -> None:
    print(text)
    if args.json:
        print(json.dumps(payload))


def _load_run(run: str, device: str | None):
    from .estimators import load

    return load(run, device=device)


# -- commands --------------------------------------------------------------------------------------------------
# settings that may change when a run is continued; any other difference means a different run
_MAY_CHANGE = ("epochs", "device", "early_stopping", "validation_fraction", "patience", "checkpoint_every")


def cmd_train(args: argparse.Namespace) -> None:
    from .commands.generative import resolve_defaults, train_estimator
    from .io import has_checkpoint
    from .training.distributed import init_from_env, is_main_process
    from .viz import plot_reconstructions

    args.device = init_from_env(args.device)  # under torchrun: join the group, pick this rank's device
    main = is_main_process()  # only rank 0 writes files and prints
    if args.resume:
        run = Path(args.resume)
        if not has_checkpoint(run):
            raise UsageError(f"--resume {run}: no checkpoint there (expected {run}/config.json)")
    else:
        default = Path("runs") / (args.dataset or (Path(args.data).stem if args.data else "digits"))
        run = Path(args.out) if args.out else default
    notes = _read_notes(run)
    spec = _data_spec(args, notes if args.resume else None)
    X_train, X_test, image_shape = _load_data(spec)
    resolve_defaults(args)  # unset --hidden, --activation, --init, --loss: the --model family's defaults
    params = dict(
        hidden_layers=args.hidden, activation=args.activation, init=args.init, tie_weights=args.tie_weights,
        loss=args.loss, l2=args.l2, optimizer=args.optimizer, learning_rate=args.lr, batch_size=args.batch_size,
        epochs=args.epochs, early_stopping=args.early_stopping, validation_fraction=args.validation_fraction,
        patience=args.patience, random_state=args.seed, device=args.device or "auto",
        noise=args.noise, sparsity=args.sparsity, contractive=args.contractive, wta=args.wta,
        coding_activation=args.coding_activation,
        pretrain="greedy" if args.greedy else None, greedy_strategy=args.greedy or "phases",
        phase_epochs=args.phase_epochs, phase_batch_sizes=args.phase_batch_sizes,
        phase_learning_rates=args.phase_lrs, cache_codings=not args.no_cache, fine_tune_epochs=args.fine_tune_epochs,
        checkpoint_every=args.checkpoint_every or 0,
        arch=args.arch, channels=args.channels, kernel_sizes=_one_or_all(args.kernel_sizes),
        strides=_one_or_all(args.strides), pool_sizes=_one_or_all(args.pool_sizes), coding_size=args.coding_size,
    )
    estimator, params = train_estimator(args, params)  # --model picks the class; its own options join params
    if has_checkpoint(run) and not args.overwrite:
        est = _load_run(str(run), args.device)
        if not args.resume:
            saved = est.get_params()
            diff = ["model"] if type(est) is not estimator else [
                k for k in params if k not in _MAY_CHANGE and _norm(saved[k]) != _norm(params[k])]
            if diff:
                raise UsageError(
                    f"{run} already holds a run with other settings ({', '.join(diff)}); use another --out, "
                    "--overwrite to replace it, or --resume to continue it"
                )
        if args.epochs_given or not args.resume:
            est.set_params(epochs=args.epochs)
        if args.checkpoint_every is not None:
            est.set_params(checkpoint_every=args.checkpoint_every)
        est.set_params(warm_start=True, checkpoint_dir=str(run), verbose=0 if args.quiet else 1)
        state = est._train_state or {}
        step, phase = (int(state.get(f"position.{key}", 0)) for key in ("step", "phase"))
        if phase:  # stopped inside greedy pretraining: that phase's own epochs
            phases = est._phases()
            where, done, total = (f"greedy phase {phase}/{len(phases)}, ", int(state["position.epoch"]),
                                  phases[phase - 1].epochs)
        else:
            where, done, total = "", est.n_epochs_, est.epochs
        if main:
            print(f"resuming {run} at {where}epoch {done + 1 if step else done}/{total}"
                  + (f", batch {step}" if step else ""))
    else:
        est = estimator(**params, checkpoint_dir=str(run), image_shape=image_shape, verbose=0 if args.quiet else 1)
    fresh = not run.exists()
    if main:
        run.mkdir(parents=True, exist_ok=True)
        _write_notes(run, {**notes, "data": spec, "image_shape": image_shape})
    t0 = time.perf_counter()
    try:
        est.fit(X_train)
    except TrainingInterrupted as exc:
        exc.run = run
        raise
    except BaseException:
        if main and not has_checkpoint(run):  # failed before the first epoch ended: leave nothing behind
            (run / RUN_FILE).unlink(missing_ok=True)
            if fresh and not any(run.iterdir()):
                run.rmdir()
        raise
    seconds = time.perf_counter() - t0
    if not main:
        return
    est.save(run)  # also when no epoch ran (e.g. already complete)
    test_mse = -est.score(X_test)
    fig = plot_reconstructions(X_test[:10], est.predict(X_test[:10]), image_shape)
    fig.savefig(run / "reconstructions.png", dpi=100)
    metrics = {"test_mse": test_mse, "epochs": est.n_epochs_, "train_seconds": round(seconds, 2),
               "n_parameters": sum(p.numel() for p in est.model_.parameters())}
    _write_notes(run, {**notes, "data": spec, "image_shape": image_shape, "metrics": metrics})
    if args.report:
        from .viz.report import write_report

        metrics["report"] = str(write_report(run, dataset=spec.get("dataset"), data=spec.get("file"),
                                             label_column=spec.get("label_column"), device=args.device or "cpu"))
    where = spec.get("dataset") or spec.get("file")
    _emit(args, f"test reconstruction MSE on {where}: {test_mse:.5f}  ({est.n_epochs_} epochs, {seconds:.1f} s; "
                f"run folder: {run})", {**metrics, "run": str(run)})


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else value


def cmd_evaluate(args: argparse.Namespace) -> None:
    est = _load_run(args.run, args.device)
    spec = _data_spec(args, _read_notes(Path(args.run)))
    X_train, X_test, _ = _load_data(spec)
    test_mse = -est.score(X_test)
    lines, payload = [f"test reconstruction MSE: {test_mse:.6f}"], {"test_mse": test_mse}
    if args.nll or args.parzen:  # generative runs
        from .commands.generative import generative_metrics

        more_lines, more = generative_metrics(est, args, X_train, X_test)
        lines, payload = lines + more_lines, {**payload, **more}
    _emit(args, "\n".join(lines), payload)


def _transform_cmd(args: argparse.Namespace, method: str) -> None:
    est = _load_run(args.run, args.device)
    spec = _data_spec(args, _read_notes(Path(args.run)))
    X_train, X_test, _ = _load_data(spec)
    X = X_test if args.split == "test" else X_train
    out = getattr(est, method)(X)
    _save_npy(args.out, out)
    _emit(args, f"wrote {args.out} {out.shape}", {"out": args.out, "shape": list(out.shape)})


def cmd_info(args: argparse.Namespace) -> None:
    est = _load_run(args.run, "cpu")
    notes = _read_notes(Path(args.run))
    info = {
        "estimator": type(est).__name__,
        "model": est.model_.config,
        "params": {k: _norm(v) for k, v in est.get_params().items()},
        "epochs_done": est.n_epochs_,
        "n_parameters": sum(p.numel() for p in est.model_.parameters()),
        "last_epoch": est.history_[-1] if est.history_ else None,
        **{k: notes[k] for k in ("data", "metrics") if k in notes},
    }
    lines = [f"{k}: {v}" for k, v in info.items()]
    _emit(args, "\n".join(lines), info)


# -- parser ----------------------------------------------------------------------------------------------------
def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="named dataset: digits (embedded), mnist, fashion-mnist")
    p.add_argument("--data", help="a .npy, .npz, .csv file or an image folder")
    p.add_argument("--label-column", help="CSV column holding labels (index or name), dropped from X")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="auto (default: CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="make the last line of stdout a JSON object")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aekit", description="Train and use autoencoders.")
    from . import __version__
    from .commands import generative

    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train an autoencoder and write a run folder")
    _add_data_args(p)
    # unset --hidden, --activation, --init, --loss take the --model family's defaults (ae: 300,150, elu, he, mse)
    p.add_argument("--hidden", type=_int_list, help="encoder sizes, e.g. 300,150 (default 300,150)")
    p.add_argument("--activation", choices=["elu", "selu", "relu", "sigmoid", "tanh", "linear"])
    p.add_argument("--init", choices=["he", "lecun", "xavier"])
    p.add_argument("--tie-weights", action="store_true")
    p.add_argument("--loss", choices=["mse", "bce", "gaussian"], help="mse (default), bce; gaussian: vae only")
    p.add_argument("--l2", type=float, default=0.0)
    p.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=150)
    p.add_argument("--epochs", type=int, default=None, help="total epochs (default 10)")
    p.add_argument("--early-stopping", action="store_true")
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    r = p.add_argument_group("regularization (compose freely)")
    r.add_argument("--noise", help="denoising: gaussian:STD, dropout:RATE, mask:RATE or saltpepper:RATE")
    r.add_argument("--sparsity", help="kl:TARGET:WEIGHT (sigmoid codings) or l1:WEIGHT")
    r.add_argument("--contractive", help="weight of ||d codings/d x||_F^2, optionally WEIGHT:METHOD")
    r.add_argument("--wta", type=float, help="winner-take-all lifetime sparsity rate, e.g. 0.05")
    r.add_argument("--coding-activation", choices=["elu", "selu", "relu", "sigmoid", "tanh", "linear"],
                   help="activation of the coding layer (default: --activation; sigmoid with KL sparsity)")
    g = p.add_argument_group("greedy layer-wise training")
    g.add_argument("--greedy", choices=["phases", "separate"], help="train one layer pair at a time first")
    g.add_argument("--phase-epochs", type=_int_list, help="epochs per phase, e.g. 4,4 (default: --epochs)")
    g.add_argument("--phase-batch-sizes", type=_int_list, help="batch size per phase (default: --batch-size)")
    g.add_argument("--phase-lrs", type=_float_list, help="learning rate per phase (default: --lr)")
    g.add_argument("--no-cache", action="store_true", help="recompute frozen layers every batch instead of caching")
    g.add_argument("--fine-tune-epochs", type=int, default=0, help="end-to-end epochs after greedy training")
    c = p.add_argument_group("convolutional (--arch conv; --hidden and --tie-weights are not used)")
    c.add_argument("--arch", default="dense", choices=["dense", "conv"],
                   help="dense (default) or conv: conv encoder, transposed-conv decoder, on the data's image shape")
    c.add_argument("--channels", type=_int_list, default=(16, 32, 64), help="channels per conv layer, e.g. 16,32,64")
    c.add_argument("--kernel-sizes", type=_int_list, default=(3,), help="kernel size, one or one per layer (3)")
    c.add_argument("--strides", type=_int_list, default=(2,), help="conv stride, one or one per layer (2)")
    c.add_argument("--pool-sizes", type=_int_list, default=(1,),
                   help="max-pooling after each conv, one or one per layer (1: none)")
    c.add_argument("--coding-size", type=int, help="dense coding layer over the last maps (default: the maps)")
    generative.add_train_arguments(p)  # --model vae|aae|gsn and their options
    p.add_argument("--out", help="run folder (default runs/<dataset>); one holding a checkpoint resumes")
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--checkpoint-every", type=int, help="also checkpoint every N batches (and on SIGINT/SIGTERM)")
    p.add_argument("--report", action="store_true", help="write RUN/report.html at the end (aekit report)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="test reconstruction MSE of a run (--nll, --parzen: likelihoods)")
    p.add_argument("run")
    _add_data_args(p)
    generative.add_evaluate_arguments(p)
    _add_common(p)
    p.set_defaults(func=cmd_evaluate)

    for name, method, what in (("encode", "transform", "codings"), ("reconstruct", "predict", "reconstructions")):
        p = sub.add_parser(name, help=f"write the {what} of a data set to .npy")
        p.add_argument("run")
        _add_data_args(p)
        p.add_argument("--split", choices=["train", "test"], default="test")
        p.add_argument("--out", required=True, help="output .npy file")
        _add_common(p)
        p.set_defaults(func=lambda a, m=method: _transform_cmd(a, m))

    p = sub.add_parser("info", help="describe a run folder")
    p.add_argument("run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    for module in COMMAND_MODULES:  # further commands live beside the code they drive
        importlib.import_module(module).add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        args.epochs_given = args.epochs is not None
        args.epochs = 10 if args.epochs is None else args.epochs
    try:
        args.func(args)
        if torch_distributed_initialized():  # ranks leave together: rank 0 may still be writing files
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
        if torch_distributed_initialized():
            import torch.distributed

            torch.distributed.destroy_process_group()
    return 0


def torch_distributed_initialized() -> bool:
    import torch.distributed

    return torch.distributed.is_available() and torch.distributed.is_initialized()


if __name__ == "__main__":
    raise SystemExit(main())
