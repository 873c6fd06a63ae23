"""``aekit detect train|score|evaluate``: anomaly detection from the command line.

* ``train``: fit an :class:`~aekit.AnomalyDetector` (its scorer: any family of ``aekit train --model``, with that
  family's flags) and write a run folder; ``--normal-class`` trains on the rows of those classes only (the
  one-class protocol: the other classes are the anomalies);
* ``score``: anomaly scores, labels, outlier probabilities and confidences of a split, to CSV or ``.npy``;
* ``evaluate``: with labels (``--labels FILE``, the run's normal classes, or a 0/1 label column), ROC-AUC, average
  precision, precision@n and the labels at the threshold.

The run folder is written only at the end, atomically, under its writer lock: a refused or crashed command leaves
it as it was.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..registry import FAMILIES
from ..runs import RUN_FILE, check_output, load_split, read_notes, write_notes
from ._flags import _PREFIX, add_flags, given_params
from ._shared import add_common, add_data_args, emit, load_run, spec_of

OWN = ("score_type", "contamination", "standardize", "missing", "trim")  # the detector's flags; the rest: scorer's
COLUMNS = ("anomaly_score", "outlier", "outlier_probability", "confidence")


def _detector() -> type:
    from ..registry import ESTIMATORS

    return ESTIMATORS.get("AnomalyDetector")


def _classes(text: str) -> tuple[str, ...]:
    values = tuple(s.strip() for s in text.split(",") if s.strip())
    if not values:
        raise argparse.ArgumentTypeError("expected one or more class labels, e.g. 3 or 3,5")
    return values


def _normal_mask(y: np.ndarray | None, normal: Any, where: str) -> np.ndarray:
    """Rows whose label is one of the ``normal`` classes (compared as text, so 3 matches 3 and '3')."""
    if y is None:
        raise ConfigError(f"--normal-class needs labels, but {where} has none (--label-column for tables, a 'y' "
                          "array in .npz, one subfolder per class for image folders)")
    labels = np.asarray(y).astype(str)
    mask = np.isin(labels, [str(c) for c in normal])
    if not mask.any():
        shown = ", ".join(map(str, np.unique(labels)[:10]))
        raise ConfigError(f"--normal-class {','.join(map(str, normal))}: no row of {where} has that label; the "
                          f"labels are {shown}")
    return mask


def _family_params(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """The given flags of the scorer's family (the detector's own flags left out)."""
    scorer_args = argparse.Namespace(**{k: v for k, v in vars(args).items()
                                        if not (k.startswith(_PREFIX) and k[len(_PREFIX):] in OWN)})
    return given_params(scorer_args, FAMILIES.get(name), f"--model {name}", alternatives=dict(FAMILIES.items()))


def _own_params(args: argparse.Namespace) -> dict[str, Any]:
    return {k[len(_PREFIX):]: v for k, v in vars(args).items() if k.startswith(_PREFIX) and k[len(_PREFIX):] in OWN}


# -- train ---------------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> None:
    from ..io import has_checkpoint
    from ..locking import folder_lock
    from .train import _remove_new_folder, _restore_notes

    name = args.model or "ae"
    scorer_params = _family_params(args, name)
    seed = scorer_params.pop("random_state", 0)  # --seed seeds the detector (and so its scorer); default 0
    device = scorer_params.pop("device", None)
    precision = scorer_params.pop("precision", None)
    spec = spec_of(args)
    data = load_split(spec)
    where = spec.get("dataset") or Path(spec["file"]).name
    run = Path(args.out) if args.out else Path("runs") / f"detect-{Path(str(where)).stem}"
    if has_checkpoint(run) and not args.overwrite:
        raise ConfigError(f"{run} already holds a run; use another --out, or --overwrite to replace it")
    X = data.X_train
    normal = args.normal_class
    if normal:
        X = X[_normal_mask(data.y_train, normal, f"the training rows of {where}")]
    image_shape = data.image_shape if "image_shape" not in scorer_params else tuple(scorer_params["image_shape"])
    if image_shape is not None and "image_shape" in FAMILIES.get(name)._get_param_names():
        scorer_params.setdefault("image_shape", tuple(image_shape))
    det = _detector()(name, model_params=scorer_params or None, random_state=seed,
                      **({"device": device} if device else {}), **({"precision": precision} if precision else {}),
                      verbose=0 if args.quiet else 1, **_own_params(args))
    det._validate_params()
    existed = run.exists()
    old_notes = (run / RUN_FILE).read_bytes() if (run / RUN_FILE).is_file() else None
    with folder_lock(run):
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            det.fit(X)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            test_scores = det.anomaly_score(data.X_test)
            metrics: dict[str, Any] = {
                "score": det.score_, "scorer": type(det.scorer_).__name__, "n_train_rows": int(len(X)),
                "epochs": int(det.n_epochs_), "train_seconds": round(wall, 2), "train_cpu_seconds": round(cpu, 2),
                "threshold": det.threshold_, "train_flagged_share": float(det.labels_.mean()),
                "test_flagged_share": float(np.mean(test_scores > det.threshold_))}
            if normal:
                from ..detection.metrics import evaluate_scores

                truth = ~_normal_mask(data.y_test, normal, f"the test rows of {where}")
                if truth.any() and not truth.all():
                    metrics["test"] = evaluate_scores(truth.astype(int), test_scores, det.threshold_)
            det.save(run)
            from ..data.files import table_columns

            columns = table_columns(spec["file"], spec.get("label_column")) if "file" in spec else None
            notes = {"data": spec, "image_shape": None if image_shape is None else list(image_shape),
                     "detect": {"normal_class": list(normal) if normal else None, "columns": columns},
                     "metrics": metrics}
            write_notes(run, notes)
        except BaseException:
            if not has_checkpoint(run) or not existed:
                _restore_notes(run, old_notes)
                if not existed:
                    _remove_new_folder(run)
            raise
    if args.report:
        from ..viz.report import write_report

        metrics["report"] = str(write_report(run, device=device or "cpu"))
    auc = f"; test ROC-AUC {metrics['test']['roc_auc']:.4f}" if "test" in metrics else ""
    emit(args, f"anomaly detector ({name} scorer, {det.score_} score) trained on {len(X)} rows "
               f"({det.n_epochs_} epochs, {wall:.1f} s): threshold {det.threshold_:.4g} flags "
               f"{metrics['train_flagged_share']:.1%} of the training rows and {metrics['test_flagged_share']:.1%} of "
               f"the test rows{auc}; run folder: {run}", {**metrics, "run": str(run)})


# -- score ---------------------------------------------------------------------------------------------------
def _rows(args: argparse.Namespace) -> tuple[Any, np.ndarray, Any, dict[str, Any], Any]:
    """(detector, the rows of the chosen split, their labels, the run's notes, the data split)."""
    det = load_run(args.run, args.device)
    if type(det).__name__ != "AnomalyDetector":
        raise ConfigError(f"{args.run} holds a {type(det).__name__}, not an anomaly detector; train one with "
                          "aekit detect train")
    notes = read_notes(args.run)
    data = load_split(spec_of(args, notes))
    if args.split == "train":
        return det, data.X_train, data.y_train, notes, data
    return det, data.X_test, data.y_test, notes, data


def cmd_score(args: argparse.Namespace) -> None:
    det, X, _, _, data = _rows(args)
    scores = det.anomaly_score(X)
    outlier = (scores > det.threshold_).astype(int)
    table = np.column_stack([scores, outlier, det.proba_of(scores)[:, 1], det.confidence_of(scores)])  # one pass
    summary = (f"scored {len(X)} rows ({args.split} split of {data.name}): {int(outlier.sum())} flagged as outliers "
               f"({outlier.mean():.1%}; threshold {det.threshold_:.4g})")
    payload: dict[str, Any] = {"n_rows": int(len(X)), "n_outliers": int(outlier.sum()), "threshold": det.threshold_}
    if args.out:
        out = Path(args.out)
        if out.suffix == ".npy":
            from ..runs import save_npy

            save_npy(out, table)
        elif out.suffix in (".csv", ".txt"):
            from ..io import atomic_write

            buf = io.StringIO()
            buf.write("row," + ",".join(COLUMNS) + "\n")
            for i, (s, o, p, c) in enumerate(table):
                buf.write(f"{i},{float(s)!r},{int(o)},{float(p)!r},{float(c)!r}\n")
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(check_output(out), buf.getvalue().encode())
        else:
            raise ConfigError(f"--out {out}: write .csv or .npy (columns {', '.join(COLUMNS)})")
        summary += f"; written to {out} (columns {', '.join(COLUMNS)})"
        payload["out"] = str(out)
    else:
        top = np.argsort(-scores, kind="stable")[:args.top]
        summary += "\nmost abnormal rows (row: score, confidence): " + ", ".join(
            f"{i}: {scores[i]:.4g}, {table[i, 3]:.2f}" for i in top)
        payload["most_abnormal"] = [int(i) for i in top]
    emit(args, summary, payload)


# -- evaluate ------------------------------------------------------------------------------------------------
def _read_labels(path: str, n: int) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"--labels {path}: no such file")
    if p.suffix == ".npy":
        y = np.load(p, allow_pickle=False)
    else:
        try:
            y = np.loadtxt(p, delimiter=",", ndmin=1)
        except ValueError:
            y = np.loadtxt(p, delimiter=",", ndmin=1, skiprows=1)  # a header line
    y = np.asarray(y).reshape(-1) if np.ndim(y) == 1 or (np.ndim(y) == 2 and y.shape[1] == 1) else y
    if y.ndim != 1:
        raise DataError(f"--labels {path}: expected one column of labels, got shape {tuple(y.shape)}")
    if len(y) != n:
        raise DataError(f"--labels {path} holds {len(y)} labels, but the split has {n} rows")
    return y


def truth_for(args: argparse.Namespace, y: np.ndarray | None, notes: dict[str, Any], n: int, where: str) -> np.ndarray:
    """1 = anomaly, from ``--labels``, else the normal classes (``--normal-class`` or the run's), else the data's own
    labels read as anomaly flags (0/1 or -1/1)."""
    from ..detection.metrics import anomaly_truth

    if getattr(args, "labels", None):
        return anomaly_truth(_read_labels(args.labels, n))
    normal = getattr(args, "normal_class", None) or (notes.get("detect") or {}).get("normal_class")
    if normal:
        return (~_normal_mask(y, normal, where)).astype(int)
    if y is None:
        raise ConfigError(f"{where} has no labels: give --labels FILE (1 = anomaly), or --normal-class with "
                          "labelled data")
    return anomaly_truth(y)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ..detection.metrics import evaluate_scores

    det, X, y, notes, data = _rows(args)
    truth = truth_for(args, y, notes, len(X), f"the {args.split} rows of {data.name}")
    result = evaluate_scores(truth, det.anomaly_score(X), det.threshold_, args.n)
    write_notes(Path(args.run), {**notes, "detect_metrics": {"split": args.split, **result}})
    emit(args, f"{result['n_rows']} rows ({args.split} split of {data.name}), {result['n_anomalies']} anomalies\n"
               f"ROC-AUC {result['roc_auc']:.4f}   average precision {result['average_precision']:.4f}   "
               f"precision@{result['n']} {result['precision_at_n']:.4f}\n"
               f"at the threshold {det.threshold_:.4g}: {result['flagged_share']:.1%} flagged, precision "
               f"{result['precision']:.4f}, recall {result['recall']:.4f}, F1 {result['f1']:.4f}", result)


# -- parser --------------------------------------------------------------------------------------------------
def _split_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", choices=["train", "test"], default="test",
                   help="which rows: the data's test split (a --data file's held-out rows) or its training rows "
                        "(default test)")


def add_parser(top: argparse.ArgumentParser) -> None:
    """``aekit detect train|score|evaluate``."""
    sub = top.add_subparsers(dest="detect_command", required=True)
    known = dict(FAMILIES.items())

    p = sub.add_parser("train", help="fit an anomaly detector and write a run folder")
    add_data_args(p)
    p.add_argument("--normal-class", type=_classes, metavar="C[,C...]",
                   help="train on the rows of these classes only; the other classes are the anomalies of evaluate "
                        "(default: every training row)")
    p.add_argument("--model", choices=sorted(known),
                   help="the scorer's family: " + "; ".join(f"{n}: {c.__name__}" for n, c in sorted(known.items()))
                        + " (default ae)")
    add_flags(p, [_detector()], only=OWN)
    add_flags(p, list(known.values()), names={cls: n for n, cls in known.items()})
    p.add_argument("--out", help="run folder (default runs/detect-<dataset>)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--report", action="store_true", help="write RUN/report.html at the end (aekit report)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common(p, device=False)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("score", help="anomaly scores and labels of a split, to CSV or .npy")
    p.add_argument("run")
    add_data_args(p)
    _split_arg(p)
    p.add_argument("--out", help=f"a .csv or .npy file (columns {', '.join(COLUMNS)}; default: print the most "
                                 "abnormal rows)")
    p.add_argument("--top", type=int, default=10, help="rows printed without --out (default 10)")
    add_common(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("evaluate", help="ROC-AUC, average precision and precision@n against labels")
    p.add_argument("run")
    add_data_args(p)
    _split_arg(p)
    p.add_argument("--labels", help="a .npy or one-column .csv of labels for the split's rows (1 = anomaly, or -1 = "
                                    "anomaly as predict gives; default: the run's --normal-class, else the data's "
                                    "labels as 0/1 flags)")
    p.add_argument("--normal-class", type=_classes, metavar="C[,C...]",
                   help="rows of these classes are normal, the others anomalies (default: the run's)")
    p.add_argument("--n", type=int, help="precision@n: the n highest-scored rows (default: the number of anomalies)")
    add_common(p)
    p.set_defaults(func=cmd_evaluate)
