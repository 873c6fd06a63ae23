"""``aekit train``: train any registered family (``--model NAME``, default ``ae``) and write a run folder.

The families, their flags and each flag's default come from the registry and the estimators' declarations
(:mod:`aekit.commands._flags`); a flag the chosen family does not take is refused.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TrainingInterrupted
from ..registry import FAMILIES
from ..runs import load_split, read_notes, write_notes, position_text
from ._flags import add_flags, cli_defaults, flagged, given_params
from ._shared import add_common, add_data_args, emit, load_run, norm, spec_of

# settings that may change when a run is continued; any other difference means a different run
MAY_CHANGE = ("epochs", "device", "early_stopping", "validation_fraction", "patience", "checkpoint_every")


def families() -> dict[str, type]:
    return dict(FAMILIES.items())


def add_parser(p: argparse.ArgumentParser) -> None:
    add_data_args(p)
    known = families()
    p.add_argument("--model", default="ae", choices=sorted(known),
                   help="the model family: " + "; ".join(f"{cli}: {cls.__name__}" for cli, cls in sorted(known.items()))
                        + " (default ae)")
    add_flags(p, list(known.values()), names={cls: cli for cli, cls in known.items()})
    p.add_argument("--out", help="run folder (default runs/<dataset>); one holding a checkpoint resumes")
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--report", action="store_true", help="write RUN/report.html at the end (aekit report)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common(p, device=False)  # --device is a training parameter, declared with the others
    p.set_defaults(func=run)


def _default_run(args: argparse.Namespace) -> Path:
    return Path("runs") / (args.dataset or (Path(args.data).stem if args.data else "digits"))


def run(args: argparse.Namespace) -> None:
    from ..io import has_checkpoint
    from ..training.distributed import init_from_env, is_main_process
    from ..viz import plot_reconstructions

    known = families()
    cls = known[args.model]
    given = given_params(args, cls, f"--model {args.model}", alternatives=known)
    device = init_from_env(given.get("device"))  # under torchrun: join the group, pick this rank's device
    if device is not None:
        given["device"] = device
    main = is_main_process()  # only rank 0 writes files and prints
    if args.resume:
        run_dir = Path(args.resume)
        if not has_checkpoint(run_dir):
            raise ConfigError(f"--resume {run_dir}: no checkpoint there (expected {run_dir}/config.json)")
    else:
        run_dir = Path(args.out) if args.out else _default_run(args)
    notes = read_notes(run_dir)
    spec = spec_of(args, notes if args.resume else None)
    X_train, X_test, image_shape = load_split(spec)[:3]
    wanted = {**cli_defaults(cls), **given}
    verbose = 0 if args.quiet else 1
    if has_checkpoint(run_dir) and not args.overwrite:
        est = load_run(run_dir, given.get("device"))
        if not args.resume:
            saved = est.get_params()
            defaults = {p.name: p.default for p in cls.declared_params()}
            diff = ["model"] if type(est) is not cls else [
                k for k in flagged(cls) if k not in MAY_CHANGE and norm(saved[k]) != norm(wanted.get(k, defaults[k]))]
            if diff:
                raise ConfigError(f"{run_dir} already holds a run with other settings ({', '.join(diff)}); use another "
                                  "--out, --overwrite to replace it, or --resume to continue it")
        if "epochs" in given or not args.resume:
            est.set_params(epochs=wanted.get("epochs", cls.declared("epochs").default))
        if "checkpoint_every" in given:
            est.set_params(checkpoint_every=given["checkpoint_every"])
        est.set_params(warm_start=True, checkpoint_dir=str(run_dir), verbose=verbose)
        if main:
            print(f"resuming {run_dir} at {position_text(est)}")
    else:
        extra: dict[str, Any] = {"image_shape": image_shape} if "image_shape" in cls._get_param_names() else {}
        est = cls(**wanted, **extra, checkpoint_dir=str(run_dir), verbose=verbose)
    fresh = not run_dir.exists()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_notes(run_dir, {**notes, "data": spec, "image_shape": image_shape})
    t0 = time.perf_counter()
    try:
        est.fit(X_train)
    except TrainingInterrupted as exc:
        exc.run = run_dir
        raise
    except BaseException:
        if main and not has_checkpoint(run_dir):  # failed before the first epoch ended: leave nothing behind
            (run_dir / "run.json").unlink(missing_ok=True)
            if fresh and not any(run_dir.iterdir()):
                run_dir.rmdir()
        raise
    seconds = time.perf_counter() - t0
    if not main:
        return
    est.save(run_dir)  # also when no epoch ran (e.g. already complete)
    test_mse = -est.score(X_test)
    fig = plot_reconstructions(X_test[:10], est.predict(X_test[:10]), image_shape)
    fig.savefig(run_dir / "reconstructions.png", dpi=100)
    metrics = {"test_mse": test_mse, "epochs": est.n_epochs_, "train_seconds": round(seconds, 2),
               "n_parameters": sum(p.numel() for p in est.model_.parameters())}
    write_notes(run_dir, {**notes, "data": spec, "image_shape": image_shape, "metrics": metrics})
    if args.report:
        from ..viz.report import write_report

        metrics["report"] = str(write_report(run_dir, dataset=spec.get("dataset"), data=spec.get("file"),
                                             label_column=spec.get("label_column"),
                                             device=given.get("device") or "cpu"))
    where = spec.get("dataset") or spec.get("file")
    emit(args, f"test reconstruction MSE on {where}: {test_mse:.5f}  ({est.n_epochs_} epochs, {seconds:.1f} s; "
               f"run folder: {run_dir})", {**metrics, "run": str(run_dir)})
