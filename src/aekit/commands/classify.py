"""``aekit classify`` (a classifier on a fraction of the labels, reusing a run's encoder) and ``aekit experiment
few-labels`` (from scratch vs pretrained-frozen vs pretrained-fine-tuned over fractions and seeds: table + plot)."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..estimators.parts import float_list, int_list
from ..runs import check_output, figure_bytes, load_split, read_notes, write_notes
from ._flags import add_flags, cli_defaults, given_params
from ._shared import add_common, add_data_args, emit, spec_of

RESULTS = "few_labels"  # file stem of the experiment's outputs: .json, .md, .png
UsageError = ConfigError
# the classifier's parameters the experiment sets (its other settings are the experiment's own)
EXPERIMENT_PARAMS = ("hidden_layers", "batch_size", "learning_rate", "epochs", "steps")


def _classifier() -> type:
    from ..registry import ESTIMATORS

    return ESTIMATORS.get("PretrainedClassifier")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], e.g. 0.1, got {text!r}")
    return value


def _labelled_split(spec: dict[str, Any]):
    split = load_split(spec)
    if split.y_train is None or split.y_test is None:
        raise UsageError(f"{split.name} has no labels; a classifier needs them (--label-column for tables, a 'y' "
                         "array in .npz, one subfolder per class for image folders)")
    return split


# -- aekit classify --------------------------------------------------------------------------------------------
def cmd_classify(args: argparse.Namespace) -> None:
    from ..experiments import labelled_subset

    PretrainedClassifier = _classifier()
    params = {**cli_defaults(PretrainedClassifier), **given_params(args, PretrainedClassifier, "aekit classify")}
    encoder = params.pop("autoencoder", None)
    if encoder is None:
        raise UsageError("aekit classify needs --encoder RUN: the run folder of a trained autoencoder")
    spec = spec_of(args, read_notes(encoder))
    split = _labelled_split(spec)
    seed = params["random_state"]
    marker = params.get("unlabelled", PretrainedClassifier.declared("unlabelled").default)
    labelled = np.flatnonzero(split.y_train != marker) if marker is not None else np.arange(len(split.y_train))
    if not len(labelled):
        raise UsageError(f"{split.name} has no labelled training rows (every label is {marker})")
    rows = labelled[labelled_subset(split.y_train[labelled], args.label_fraction, seed)]
    tested = split.y_test != marker if marker is not None else np.ones(len(split.y_test), dtype=bool)
    if args.out:
        from ..io import has_checkpoint

        check_output(args.out)
        if has_checkpoint(args.out) or Path(args.out).resolve() == Path(encoder).resolve():
            raise UsageError(f"--out {args.out} already holds a run; save the classifier in another folder")
    clf = PretrainedClassifier(encoder, **params, verbose=0 if args.quiet else 1)
    t0 = time.perf_counter()
    clf.fit(split.X_train[rows], split.y_train[rows])
    seconds = time.perf_counter() - t0
    epochs = clf.n_epochs_
    accuracy = float(clf.score(split.X_test[tested], split.y_test[tested]))  # labelled held-out rows only
    result = {"test_accuracy": accuracy, "n_labels": len(rows), "n_test": int(tested.sum()),
              "label_fraction": args.label_fraction,
              "pretrain": clf.pretrain, "freeze": clf.freeze, "epochs": epochs, "train_seconds": round(seconds, 2),
              "encoder": encoder, "seed": seed}
    if args.out:
        clf.save(args.out)  # refused up front if --out holds another run (see below)
        write_notes(Path(args.out), {"data": spec, "metrics": result})
        result["out"] = args.out
    how = "from scratch" if not clf.pretrain else f"pretrained encoder, freeze {clf.freeze}"
    emit(args, f"test accuracy on {split.name} ({split.split}; {int(tested.sum())} labelled rows): {accuracy:.4f}  "
               f"({len(rows)} labels = {args.label_fraction:g} of the {len(labelled)} labelled training rows; {how}; "
               f"{epochs} epochs, {seconds:.1f} s)", result)


# -- aekit experiment few-labels -------------------------------------------------------------------------------
def _experiment_args(args: argparse.Namespace) -> None:
    """The classifier settings of ``experiment few-labels`` (declared by the classifier) as plain attributes."""
    given = given_params(args, _classifier(), "aekit experiment few-labels")
    args.encoder = given.get("autoencoder")
    args.hidden = tuple(given.get("hidden_layers", ()))
    args.batch_size = given.get("batch_size", _classifier().declared("batch_size").default)
    args.lr = given.get("learning_rate", _classifier().declared("learning_rate").default)
    args.epochs = given.get("epochs")
    args.steps = given.get("steps", _classifier().declared("steps").default)
    args.device = given.get("device")


def _settings(args: argparse.Namespace, spec: dict[str, Any]) -> dict[str, Any]:
    autoencoder = ({"encoder": args.encoder} if args.encoder else
                   {"hidden_layers": list(args.ae_hidden), "noise": args.ae_noise, "loss": args.ae_loss,
                    "epochs": args.ae_epochs, "random_state": 0})
    return {"data": spec, "autoencoder": autoencoder, "head": list(args.hidden), "steps": args.steps,
            "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr}


def _pretrained_autoencoder(args: argparse.Namespace, settings: dict[str, Any], X_train, out: Path):
    """The experiment's one autoencoder, trained on every training row (resumed from ``out/autoencoder``)."""
    from ..estimators import Autoencoder, load
    from ..io import has_checkpoint

    if args.encoder:
        return args.encoder, {"encoder": args.encoder}
    folder = out / "autoencoder"
    params = settings["autoencoder"]
    if has_checkpoint(folder):
        ae = load(folder, device=args.device)
        if ae.n_epochs_ >= params["epochs"]:
            return ae, {"folder": str(folder), "reused": True}
        ae.set_params(warm_start=True)
    else:
        ae = Autoencoder(tuple(params["hidden_layers"]), noise=params["noise"], loss=params["loss"], init="he",
                         epochs=params["epochs"], random_state=params["random_state"], device=args.device or "auto",
                         checkpoint_dir=str(folder), verbose=0 if args.quiet else 1)
    wall, cpu = time.perf_counter(), time.process_time()
    ae.fit(X_train)
    ae.save(folder)
    return ae, {"folder": str(folder), "train_seconds": round(time.perf_counter() - wall, 1),
                "cpu_seconds": round(time.process_time() - cpu, 1), "n_samples": len(X_train)}


def cmd_few_labels(args: argparse.Namespace) -> None:
    from ..experiments import markdown_table, plot_few_labels, run_few_labels, summarize
    from ..io import atomic_write

    _experiment_args(args)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    spec = spec_of(args, read_notes(args.encoder) if args.encoder else None)
    if "dataset" not in spec and not args.data:
        spec = {"dataset": "mnist"}
    split = _labelled_split(spec)
    out = Path(args.out or Path("runs") / f"few-labels-{split.name}")
    out.mkdir(parents=True, exist_ok=True)
    settings = _settings(args, spec)
    saved_path = out / f"{RESULTS}.json"
    done: list[dict[str, Any]] = []
    previous: dict[str, Any] = {}
    if saved_path.is_file() and not args.overwrite:
        previous = json.loads(saved_path.read_text())
        if previous.get("settings") != settings:
            raise UsageError(f"{out} holds a few-labels experiment with other settings; use another --out or "
                             "--overwrite")
        done = previous.get("runs", [])
    if args.overwrite and (out / "autoencoder").is_dir():
        import shutil

        shutil.rmtree(out / "autoencoder")
    autoencoder, ae_info = _pretrained_autoencoder(args, settings, split.X_train, out)
    if "train_seconds" not in ae_info and previous.get("autoencoder"):
        ae_info = previous["autoencoder"]  # reused: keep the timing of the run that trained it
    if hasattr(autoencoder, "score"):
        ae_info["test_mse"] = float(-autoencoder.score(split.X_test))

    def save(records: list[dict[str, Any]], final: bool = False) -> dict[str, Any]:
        summary = summarize(records) if records else []
        payload = {"settings": settings, "autoencoder": ae_info, "runs": records, "summary": summary,
                   "complete": final}
        if final:
            payload["cpu_seconds"] = round(time.process_time() - cpu0, 1)
            payload["wall_seconds"] = round(time.perf_counter() - wall0, 1)
        atomic_write(saved_path, json.dumps(payload, indent=1).encode())
        return payload

    records: list[dict[str, Any]] = list(done)

    def on_result(record: dict[str, Any]) -> None:
        records.append(record)
        save(records)
        if not args.quiet:
            print(f"  {record['variant']:>10}  {record['n_labels']:>6} labels  seed {record['seed']}  "
                  f"accuracy {record['test_accuracy']:.4f}  ({record['epochs']} epochs, {record['train_seconds']} s)",
                  flush=True)

    run_few_labels(autoencoder, split.X_train, split.y_train, split.X_test, split.y_test,
                   fractions=args.fractions, seeds=range(args.seeds), steps=args.steps, epochs=args.epochs,
                   batch_size=args.batch_size, learning_rate=args.lr, hidden_layers=args.hidden,
                   device=args.device or "auto", done=done, on_result=on_result)
    payload = save(records, final=True)
    table = markdown_table(payload["summary"])
    cpu_min = payload["cpu_seconds"] / 60
    resumed = f"; {len(done)} runs were done by an earlier invocation" if done else ""
    if args.encoder:
        ae_text = f"Encoder from the run {args.encoder}"
    else:
        noisy = args.ae_noise not in (None, "", "none")
        kind = f"Denoising autoencoder ({args.ae_noise})" if noisy else "Autoencoder (no noise)"
        ae_text = (f"{kind} {split.X_train.shape[1]}-{'-'.join(map(str, args.ae_hidden))}, {args.ae_loss} loss, "
                   f"{args.ae_epochs} epochs, seed 0, trained once on all {len(split.X_train):,} training rows (labels "
                   f"unused; {ae_info.get('train_seconds', '?')} s)")
    budget = (f"{args.epochs} epochs each" if args.epochs else
              f"{args.steps} gradient steps of {args.batch_size} each (rounded up to whole epochs)")
    text = (f"# Few labels on {split.name}: from scratch vs pretrained\n\n{ae_text}; classifiers: encoder + "
            f"head {list(args.hidden) or 'none'} + softmax, Adam lr {args.lr}, {budget}; test accuracy (%) mean ± std "
            f"over {args.seeds} seeds (stratified labelled subsets, the same for the three variants).\n\n{table}\n"
            f"CPU time of this command: {cpu_min:.1f} min (wall {payload['wall_seconds'] / 60:.1f} min{resumed}).\n")
    atomic_write(out / f"{RESULTS}.md", text.encode())
    fig = plot_few_labels(payload["summary"], title=f"{split.name}: unsupervised pretraining with few labels")
    atomic_write(out / f"{RESULTS}.png", figure_bytes(fig))
    emit(args, f"{table}\nwrote {out}/{RESULTS}.md, .json, .png", {
        "out": str(out), "summary": payload["summary"], "cpu_minutes": round(cpu_min, 2),
        "wall_minutes": round(payload["wall_seconds"] / 60, 2)})


# -- parsers ---------------------------------------------------------------------------------------------------
def add_classify(p: argparse.ArgumentParser) -> None:
    """``aekit classify``."""
    add_data_args(p)
    p.add_argument("--label-fraction", type=_fraction, default=1.0,
                   help="fraction of the training labels used, stratified (default 1.0)")
    add_flags(p, [_classifier()])
    p.add_argument("--out", help="save the classifier's checkpoint in this folder (default: not saved)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common(p, device=False)
    p.set_defaults(func=cmd_classify)


def add_experiment(top: argparse.ArgumentParser) -> None:
    """``aekit experiment few-labels``."""
    sub = top.add_subparsers(dest="experiment", required=True)
    p = sub.add_parser("few-labels", help="from scratch vs pretrained-frozen vs pretrained-fine-tuned classifiers "
                                          "over label fractions and seeds")
    add_data_args(p)
    p.add_argument("--fractions", type=float_list, default=(0.01, 0.1, 1.0), help="default 0.01,0.1,1.0")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    p.add_argument("--ae-hidden", type=int_list, default=(300, 150), help="autoencoder layers (default 300,150)")
    p.add_argument("--ae-noise", default="mask:0.3", help="its input corruption (default mask:0.3, denoising)")
    p.add_argument("--ae-loss", default="bce", choices=["mse", "bce"], help="its reconstruction loss (default bce)")
    p.add_argument("--ae-epochs", type=int, default=15, help="its epochs over all training rows (default 15)")
    add_flags(p, [_classifier()], only=("autoencoder", *EXPERIMENT_PARAMS, "device"))
    p.add_argument("--out", help="output folder (default runs/few-labels-<dataset>); resumes what is there")
    p.add_argument("--overwrite", action="store_true", help="start again in --out")
    p.add_argument("--quiet", action="store_true", help="no per-run lines or progress bars")
    add_common(p, device=False)
    p.set_defaults(func=cmd_few_labels)
