"""``aekit train``: train any registered family (``--model NAME``, default ``ae``) and write a run folder.

The families, their flags and each flag's default come from the registry and the estimators' declarations
(:mod:`aekit.commands._flags`); a flag the chosen family does not take is refused.

Nothing is written until everything has been checked: the flags against the family, a resumed run's settings and
data against what it was trained with, the data against the settings, the model's size against the machine.
The run folder's writer lock is then held for the whole run, so a second trainer on the same folder is refused at
once; a command that fails before its first checkpoint leaves the folder as it found it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..data.sources import is_source
from ..errors import ConfigError, DataError, TrainingInterrupted
from ..registry import FAMILIES
from ..runs import (RUN_FILE, epochs_text, figure_bytes, head, load_split, position_text, read_notes, write_file,
                    write_notes)
from ._flags import add_flags, cli_defaults, flagged, given_params
from ._shared import add_common, add_data_args, add_rows_arg, emit, load_run, norm, spec_of

# settings that may change when a run is continued; any other difference means a different run
MAY_CHANGE = ("epochs", "max_epochs", "device", "early_stopping", "validation_fraction", "patience", "checkpoint_every",
              "n_jobs", "precision")
FROM_DATA = ("image_shape",)  # taken from the data unless given: compared only when given


def families() -> dict[str, type]:
    return dict(FAMILIES.items())


def add_parser(p: argparse.ArgumentParser) -> None:
    add_data_args(p)
    add_rows_arg(p)
    known = families()
    p.add_argument("--model", choices=sorted(known),
                   help="the model family: " + "; ".join(f"{cli}: {cls.__name__}" for cli, cls in sorted(known.items()))
                        + " (default ae; a run being continued keeps its own)")
    add_flags(p, list(known.values()), names={cls: cli for cli, cls in known.items()})
    p.add_argument("--out", help="run folder (default runs/<dataset>); one holding a checkpoint resumes")
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN where it stopped (default: none; a --out "
                                                   "that holds a checkpoint also resumes)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--report", action="store_true", help="write RUN/report.html at the end (aekit report)")
    p.add_argument("--tensorboard", metavar="LOGDIR", help="also log every epoch's metrics for TensorBoard there "
                                                          "(needs tensorboard; default: none; RUN/metrics.csv is "
                                                          "always written)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common(p, device=False)  # --device is a training parameter, declared with the others
    p.set_defaults(func=run)


def _default_run(args: argparse.Namespace) -> Path:
    return Path("runs") / (args.dataset or (Path(args.data).stem if args.data else "digits"))


def _family_of(est: Any, known: dict[str, type]) -> str | None:
    return next((name for name, cls in known.items() if type(est) is cls), None)


def _continued(args: argparse.Namespace, run_dir: Path, known: dict[str, type], device: str | None):
    """The run already in ``run_dir`` and its family name, after checking that the command does not contradict
    it (its family, its settings; with ``--resume`` every given flag but those that may change)."""
    est = load_run(run_dir, device)
    name = _family_of(est, known)
    if name is None:
        raise ConfigError(f"{run_dir} holds a {type(est).__name__}, which aekit train does not train; use another "
                          "--out")
    if args.model is not None and args.model != name:
        raise ConfigError(f"{run_dir} holds a run of --model {name}, not {args.model}; drop --model to continue it, "
                          "or use another --out" + ("" if args.resume else " (or --overwrite to replace it)"))
    return est, name


def run(args: argparse.Namespace) -> None:
    from ..io import checkpoint_dir, has_checkpoint
    from ..locking import folder_lock
    from ..training.distributed import init_from_env, is_main_process
    from ..viz import plot_reconstructions

    known = families()
    # -- which run, which family --------------------------------------------------------------------------------
    if args.resume:
        run_dir = Path(args.resume)
        if args.out and Path(args.out).resolve() != run_dir.resolve():
            raise ConfigError(f"--resume {run_dir} continues that run in its own folder; --out {args.out} "
                              "contradicts it: drop --out (copy the run folder first to continue it elsewhere)")
        if args.overwrite:
            raise ConfigError("--resume continues a run and --overwrite replaces it; give one of them")
        if not has_checkpoint(run_dir):
            raise ConfigError(f"--resume {run_dir}: no checkpoint there (expected {run_dir}/checkpoint.json)")
    else:
        run_dir = Path(args.out) if args.out else _default_run(args)
    continuing = has_checkpoint(run_dir) and not args.overwrite
    name = args.model or "ae"
    device_flag = getattr(args, "param_device", None)
    device = init_from_env(device_flag)  # under torchrun: join the group, pick this rank's device
    est = None
    if continuing:
        est, name = _continued(args, run_dir, known, device)
    cls = known[name]
    given = given_params(args, cls, f"--model {name}", alternatives=known)
    if device is not None:
        given["device"] = device
    main = is_main_process()  # only rank 0 writes files and prints
    notes = read_notes(run_dir)
    spec = spec_of(args, notes if continuing else None)
    if continuing and notes.get("data") not in (None, spec):
        raise ConfigError(f"{run_dir} holds a run trained on {_data_text(notes['data'])}, not on {_data_text(spec)}; "
                          "drop --dataset/--data to continue it, or use another --out")
    in_memory = given.get("in_memory", est.in_memory if est is not None else cls.declared("in_memory").default)
    X_train, X_test, image_shape, y_train, y_test = load_split(spec, in_memory)[:5]
    if not getattr(cls, "conditional", False):  # only a conditional family reads the labels
        y_train = y_test = None
    elif y_train is None or y_test is None:
        raise ConfigError(f"--model {name} is conditioned on labels, but {_data_text(spec)} has none: use a "
                          "labelled data set (--dataset mnist, or --data FILE --label-column NAME)")
    wanted = {**cli_defaults(cls), **given}
    if "image_shape" in given:  # the shape of one row as an image: flat CSV/.npy rows for a conv model
        image_shape = tuple(given["image_shape"])
    verbose = 0 if args.quiet else 1
    # -- the estimator, checked against the run it continues --------------------------------------------------------
    if continuing:
        saved = est.get_params()
        defaults = {p.name: p.default for p in cls.declared_params()}
        if args.resume:
            diff = [k for k in given if k not in MAY_CHANGE and norm(saved[k]) != norm(given[k])]
            if diff:
                flags = ", ".join(f"{_flag(cls, k)} {_text(given[k])} (the run has {_text(saved[k])})" for k in diff)
                raise ConfigError(f"--resume {run_dir} continues the run as it was trained, but {flags}: drop "
                                  f"{'that flag' if len(diff) == 1 else 'those flags'}, or train another run with "
                                  "--out")
        else:
            diff = [k for k in flagged(cls) if k not in MAY_CHANGE and (k not in FROM_DATA or k in given)
                    and norm(saved[k]) != norm(wanted.get(k, defaults[k]))]
            if diff:
                raise ConfigError(f"{run_dir} already holds a run with other settings ({', '.join(diff)}); use another "
                                  "--out, --overwrite to replace it, or --resume to continue it")
        if "epochs" in given or not args.resume:
            est.set_params(epochs=wanted.get("epochs", cls.declared("epochs").default))
        if "checkpoint_every" in given:
            est.set_params(checkpoint_every=given["checkpoint_every"])
        est.set_params(warm_start=True, checkpoint_dir=str(run_dir), verbose=verbose)
    else:
        extra: dict[str, Any] = ({"image_shape": image_shape} if "image_shape" in cls._get_param_names()
                                 and "image_shape" not in wanted else {})
        est = cls(**wanted, **extra, checkpoint_dir=str(run_dir), verbose=verbose)
    if args.tensorboard:
        from ..callbacks import TensorBoardLogger

        est.set_params(callbacks=[TensorBoardLogger(args.tensorboard)])
    est.check_fit(X_train, y_train)  # everything fit would refuse, before anything is written
    if not is_source(X_test) and not np.isfinite(X_test).all():  # streamed rows are checked as they are read
        raise DataError(f"the test rows of {spec.get('dataset') or Path(spec['file']).name} hold NaN or infinite "
                        "values; clean or impute them first")
    # -- train, holding the run folder ------------------------------------------------------------------------------
    existed = run_dir.exists()
    before = checkpoint_dir(run_dir) if has_checkpoint(run_dir) else None
    old_notes = (run_dir / RUN_FILE).read_bytes() if (run_dir / RUN_FILE).is_file() else None
    if not main:
        est.fit(X_train, y_train)
        return
    with folder_lock(run_dir):
        if continuing:
            print(f"resuming {run_dir} at {position_text(est)}")
        write_notes(run_dir, {**notes, "data": spec, "image_shape": image_shape})
        t0 = time.perf_counter()
        try:
            est.fit(X_train, y_train)
        except TrainingInterrupted as exc:
            exc.run = run_dir
            raise
        except BaseException:
            now = checkpoint_dir(run_dir) if has_checkpoint(run_dir) else None
            if now == before:  # failed before its first checkpoint: leave the folder as it was
                _restore_notes(run_dir, old_notes)
                if not existed:
                    _remove_new_folder(run_dir)
            raise
        seconds = time.perf_counter() - t0
        est.save(run_dir)  # also when no epoch ran (e.g. already complete)
        test_mse = -est.score(X_test, y_test)
        if image_shape is not None:  # a table's rows drawn as pictures would mean nothing
            labels = () if y_test is None else (y_test[:10],)  # a conditional family reconstructs with the labels
            shown = head(X_test, 10)
            write_file(run_dir, "reconstructions.png",
                       figure_bytes(plot_reconstructions(shown, est.predict(shown, *labels), image_shape)))
        metrics = {"test_mse": test_mse, "epochs": est.n_epochs_, "train_seconds": round(seconds, 2),
                   "n_parameters": sum(p.numel() for p in est.model_.parameters())}
        write_notes(run_dir, {**notes, "data": spec, "image_shape": image_shape, "metrics": metrics})
        if args.report:
            from ..viz.report import write_report

            metrics["report"] = str(write_report(run_dir, dataset=spec.get("dataset"), data=spec.get("file"),
                                                 label_column=spec.get("label_column"),
                                                 device=given.get("device") or "cpu"))
    where = spec.get("dataset") or spec.get("file")
    stopped = getattr(est, "stopped_", "")
    why = f"; {stopped}" if est.epochs == "auto" and stopped else ""  # epochs=auto: what ended training
    emit(args, f"test reconstruction MSE on {where}: {test_mse:.5f}  ({epochs_text(est)}, {seconds:.1f} s; "
               f"run folder: {run_dir}){why}", {**metrics, "run": str(run_dir), "stopped": stopped})


def _restore_notes(run_dir: Path, old: bytes | None) -> None:
    path = run_dir / RUN_FILE
    if old is None:
        path.unlink(missing_ok=True)
    elif not path.is_file() or path.read_bytes() != old:
        write_file(run_dir, RUN_FILE, old)


def _remove_new_folder(run_dir: Path) -> None:
    """Remove a run folder this command created, if it holds nothing but the lock."""
    from ..locking import LOCK_FILE

    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {LOCK_FILE}:
        (run_dir / LOCK_FILE).unlink(missing_ok=True)
        run_dir.rmdir()


def _flag(cls: type, name: str) -> str:
    return cls.declared(name).flag_name or name


def _text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _data_text(spec: dict[str, Any]) -> str:
    return f"--dataset {spec['dataset']}" if "dataset" in spec else f"--data {spec.get('file')}"
