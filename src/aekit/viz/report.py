"""One self-contained HTML report of a trained run: configuration, curves, test metrics and every figure of
:mod:`aekit.viz` that applies to the model, PNGs embedded as base64 (no other file, no network).

Sections are built from the model's interface alone (``encode``, ``encoder`` layers, an optional ``sample``), so
dense and conv models share this code; only :func:`~aekit.viz.features.layer_features` looks at layer types.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from torch import nn

from .. import __version__
from ._model import as_module, encoder_layers
from .activations import layer_activations, most_variable_units, plot_top_activating
from .curves import plot_history
from .features import first_weight_layer, plot_features
from .latent import plot_latent_map
from .maximization import maximize_activation, plot_activation_maximization
from .reconstructions import plot_reconstructions
from .samples import plot_samples

DPI = 90  # MNIST reports come to well under 1 MB at this resolution
N_UNITS = 8  # units shown per layer (most-activating instances, activation maximisation)
TOP_K = 6  # instances per unit
MAX_CANDIDATES = 20000  # training rows searched for most-activating instances
MAX_LAYERS = 3  # encoder layers shown: the first, the coding layer, and one between

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;margin:2em auto;
     padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
nav ol{columns:2;font-size:.95em} .meta{color:#666;font-size:.9em}
table{border-collapse:collapse;font-size:.9em;margin:.6em 0} td,th{border:1px solid #ddd;padding:3px 8px;
     text-align:left;vertical-align:top} th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0} img{max-width:100%;height:auto;border:1px solid #eee} figcaption{color:#555;font-size:.9em}
.tables,.row{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start} .row figure{flex:1 1 400px;max-width:560px}
"""


@dataclass
class Section:
    """One part of the report: an anchor, a heading and its HTML body."""

    id: str
    title: str
    body: str


def figure_html(fig: Figure, caption: str = "", dpi: int = DPI) -> str:
    """A figure as an ``<img>`` with its PNG inlined (base64), under a caption."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    alt = html.escape(caption or "figure", quote=True)
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">{cap}</figure>'


def _table(rows: Mapping[str, Any] | Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    items = list(rows.items()) if isinstance(rows, Mapping) else [tuple(r) for r in rows]
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header) if header else ""
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in items)
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, (list, tuple)):
        value = ", ".join(map(str, value))
    return f"<td>{html.escape(str(value))}</td>"


def _layer_name(index: int, n_layers: int) -> str:
    return "coding layer" if index == n_layers - 1 else f"encoder layer {index}"


def _shown_layers(n_layers: int) -> list[int]:
    if n_layers <= MAX_LAYERS:
        return list(range(n_layers))
    return [0, n_layers // 2, n_layers - 1]


# -- sections --------------------------------------------------------------------------------------------------
def _configuration(est: Any, data_name: str, image_shape: Any) -> Section:
    module = as_module(est)
    n_params = sum(p.numel() for p in module.parameters())
    summary = {
        "estimator": type(est).__name__,
        "model family": getattr(module, "registry_name", type(module).__name__),
        "parameters": int(n_params),
        "epochs trained": int(getattr(est, "n_epochs_", len(getattr(est, "history_", [])))),
        "data": data_name,
        "image shape": "none" if image_shape is None else " x ".join(map(str, image_shape)),
        "encoder layers": ", ".join(_describe(layer) for layer in encoder_layers(module)),
    }
    params = est.params_in_effect() if hasattr(est, "params_in_effect") else (
        est.get_params() if hasattr(est, "get_params") else {})
    config = getattr(module, "config", {})
    body = (f'<div class="tables"><div><h3>Run</h3>{_table(summary)}</div>'
            f'<div><h3>Estimator parameters</h3>{_table(params)}</div>'
            f'<div><h3>Model configuration</h3>{_table(config)}</div></div>')
    return Section("configuration", "Configuration", body)


def _describe(layer: Any) -> str:
    """``Linear 784→300``, ``Conv2d 1→32 3x3``; blocks by their weight layers."""
    parts = []
    for m in layer.modules():
        if isinstance(m, nn.Linear):
            parts.append(f"Linear {m.in_features}→{m.out_features}")
        elif isinstance(m, nn.Conv2d):
            parts.append(f"Conv2d {m.in_channels}→{m.out_channels} {'x'.join(map(str, m.kernel_size))}")
    return " + ".join(parts) or type(layer).__name__


def _curves(est: Any, metrics: Sequence[Mapping[str, Any]] | None = None) -> Section:
    """The learning curves: the run folder's ``metrics.csv`` when given (``metrics``), else the estimator's
    history (the two hold the same epochs)."""
    history = list(metrics or []) or getattr(est, "history_", None) or []
    if not history:
        return Section("curves", "Training curves", "<p>No epochs recorded.</p>")
    fig = plot_history(history)
    source = "the run folder's metrics.csv" if metrics else "the estimator's history"
    return Section("curves", "Training curves",
                   figure_html(fig, f"Mean of each loss term per epoch, from {source} (validation dashed, when "
                                    "there is one; the learning rate dotted, when a schedule moved it)."))


LIKELIHOOD_ROWS = 500  # test rows the report's likelihoods are estimated on
LIKELIHOOD_K = 100  # importance samples per row there (aekit evaluate --nll --k 5000 for the paper's protocol)


def _likelihoods(est: Any, X_test: np.ndarray) -> dict[str, float]:
    """A generative model's test -ELBO and importance-sampled NLL (nats per row), on a test subset; binarized
    test rows for a model trained on binarized data (as ``aekit evaluate --nll`` does)."""
    if not callable(getattr(est, "elbo", None)):
        return {}
    X = X_test[:LIKELIHOOD_ROWS]
    if getattr(est, "binarize_", None):
        from ..data import binarize

        X = binarize(X, seed=0)
    rows = {f"test -ELBO (nats, first {len(X):,} rows)": float(-est.elbo(X, random_state=0).mean())}
    if getattr(est, "loss_", None) in ("bce", "gaussian"):
        ll = est.log_likelihood(X, k=LIKELIHOOD_K, random_state=0)
        rows[f"test NLL (importance sampling, k={LIKELIHOOD_K}, nats)"] = float(-ll.mean())
    return rows


def _metrics(est: Any, X_test: np.ndarray, notes: Mapping[str, Any], data_name: str, split: str) -> Section:
    if hasattr(est, "reconstruction_error"):
        errors = est.reconstruction_error(X_test)  # per row; its mean is -est.score(X_test)
    else:
        errors = ((np.asarray(est.predict(X_test)) - X_test) ** 2).mean(axis=1)
    rows = {
        f"test reconstruction MSE ({split}, {len(X_test):,} rows)": float(errors.mean()),
        "per-row MSE: median": float(np.median(errors)),
        "per-row MSE: 99th percentile": float(np.percentile(errors, 99)),
    }
    rows.update(_likelihoods(est, X_test))
    saved = notes.get("metrics", {})
    body = _table(rows)
    if saved:
        body += "<h3>Recorded when training ended (run.json)</h3>" + _table(saved)
    history = getattr(est, "history_", None) or []
    if history:
        last = {k: v for k, v in history[-1].items() if k != "time"}
        body += "<h3>Last epoch</h3>" + _table(last)
    return Section("metrics", f"Test metrics on {data_name}", body)


def _reconstructions(est: Any, X_test: np.ndarray, image_shape: Any, value_range: tuple[float, float]) -> Section:
    fig = plot_reconstructions(X_test[:10], est.predict(X_test[:10]), image_shape, value_range=value_range)
    return Section("reconstructions", "Reconstructions",
                   figure_html(fig, "The first 10 test instances (top) and their reconstructions (bottom)."))


def _features(est: Any, image_shape: Any) -> Section | None:
    try:
        first_weight_layer(est)
    except TypeError:
        return None
    fig = plot_features(est, image_shape, n_units=48)
    return Section("features", "First-layer features",
                   figure_html(fig, "Each unit's input weights (conv: each filter); mid-grey is 0, white positive, "
                                    "black negative, each panel scaled to its largest weight."))


def _units_per_layer(est: Any, X: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Shown layer -> (its most variable units, their largest activation over ``X``)."""
    shown = {}
    for i in _shown_layers(len(encoder_layers(est))):
        acts = layer_activations(est, X, i)
        units = most_variable_units(acts, N_UNITS)
        shown[i] = (units, acts[:, units].max(axis=0))
    return shown


def _top_activating(est: Any, X: np.ndarray, units: Mapping[int, tuple[np.ndarray, np.ndarray]], image_shape: Any,
                    value_range: tuple[float, float]) -> Section:
    n_layers = len(encoder_layers(est))
    parts = [figure_html(plot_top_activating(est, X, i, u, TOP_K, image_shape, value_range=value_range),
                         f"{_layer_name(i, n_layers)}: the {TOP_K} of {len(X):,} training instances that excite "
                         f"each of its {len(u)} most variable units most (title: activation).")
             for i, (u, _) in units.items()]
    return Section("top-activating", "Most-activating instances", f'<div class="row">{"".join(parts)}</div>')


def _maximization(est: Any, units: Mapping[int, tuple[np.ndarray, np.ndarray]], image_shape: Any,
                  value_range: tuple[float, float], mean: float, n_features: int) -> Section:
    n_layers = len(encoder_layers(est))
    lo, hi = value_range
    noise = (lo, min(hi, lo + 2 * (mean - lo)) if mean > lo else hi)  # as bright as the data on average
    parts = [f"<p>Gradient ascent (Adam, 200 steps) on the input, kept in the data's range [{lo:.3g}, {hi:.3g}] "
             f"by a sigmoid parametrisation, starting from uniform noise over [{noise[0]:.3g}, {noise[1]:.3g}] "
             "(as bright as the training data on average); the same units as above. Each table gives the unit's "
             "activation on the starting noise, after the ascent, their ratio (n/a when the noise drives the unit "
             "to 0 or below), and the unit's largest activation on the training instances searched above.</p>"]
    for i, (u, data_max) in units.items():
        result = maximize_activation(est, u, i, n_features=n_features, value_range=value_range, noise_range=noise)
        name = _layer_name(i, n_layers)
        fig = plot_activation_maximization(result, image_shape, title=f"{name}: inputs that maximise each unit "
                                                                       "(title: unit: start → final activation)")
        start, final = result.start_activation, result.final_activation
        rows = [["unit", *map(int, result.units)], ["on noise", *map(float, start)],
                ["after ascent", *map(float, final)],
                ["after / on noise", *(f"{b / a:.1f}x" if a > 0 else "n/a" for a, b in zip(start, final))],
                ["max on training data", *map(float, data_max)]]
        parts.append(figure_html(fig, f"{name}: the input found for each unit.") + _table(rows))
    return Section("maximization", "Activation maximisation", "".join(parts))


def _latent(est: Any, X_test: np.ndarray, y_test: np.ndarray | None) -> Section:
    codings = est.transform(X_test)
    fig = plot_latent_map(codings, y_test)
    d = codings.shape[1]
    how = "their codings" if d <= 2 else f"the first two principal components of their {d}-D codings"
    coloured = ", coloured by label" if y_test is not None else ""
    return Section("latent", "Latent map", figure_html(fig, f"Test instances placed by {how}{coloured}."))


def _samples(est: Any, image_shape: Any, value_range: tuple[float, float]) -> Section | None:
    if not callable(getattr(est, "sample", None)):
        return None
    fig = plot_samples(np.asarray(est.sample(40)), image_shape, value_range=value_range)
    return Section("samples", "Generated samples", figure_html(fig, "40 samples drawn from the model."))


def _buckets(est: Any, X: np.ndarray, image_shape: Any) -> Section | None:
    if not callable(getattr(est, "hash", None)):
        return None
    from ..hashing import plot_buckets

    fig = plot_buckets(X, est.hash(X), image_shape, n_buckets=8, per_bucket=8, n_bits=getattr(est, "n_bits", None))
    return Section("buckets", "Same-hash buckets", figure_html(
        fig, f"Eight buckets of training images that share a hash (among {len(X):,}), up to eight images each."))


def _anomaly_sections(est: Any, X_test: np.ndarray, truth: np.ndarray | None, image_shape: Any,
                      value_range: tuple[float, float], split: str,
                      feature_names: Sequence[str] | None = None) -> list[Section]:
    """An anomaly detector's sections: its scores against the threshold (and the labels, when known), the ROC,
    and the most abnormal test rows explained (images: input, reconstruction, error map; tables: the features
    that contribute most)."""
    from ..detection.figures import plot_contributions, plot_most_abnormal, plot_roc, plot_score_histogram
    from ..detection.metrics import evaluate_scores

    scores = est.anomaly_score(X_test)
    rows: dict[str, Any] = {"score": est.score_, "scorer": type(est.scorer_).__name__,
                            "contamination": est.contamination, "threshold": est.threshold_,
                            "training rows flagged": f"{np.mean(est.decision_scores_ > est.threshold_):.1%}",
                            f"test rows flagged ({split}, {len(X_test):,} rows)": f"{np.mean(scores > est.threshold_):.1%}"}
    caption = ("Anomaly scores of the test rows, the training rows' outlined; the dashed line is the threshold set "
               "by the contamination on the training rows")
    if truth is not None:
        result = evaluate_scores(truth, scores, est.threshold_)
        rows.update({"anomalies among the test rows": result["n_anomalies"], "ROC-AUC": result["roc_auc"],
                     "average precision": result["average_precision"],
                     f"precision@{result['n']}": result["precision_at_n"], "precision at the threshold":
                     result["precision"], "recall at the threshold": result["recall"], "F1": result["f1"]})
        caption += "; normal rows blue, anomalies red"
    body = _table(rows) + figure_html(plot_score_histogram(scores, est.threshold_, truth,
                                                            train_scores=est.decision_scores_), caption + ".")
    out = [Section("anomaly-scores", "Anomaly scores and the threshold", body)]
    if truth is not None and 0 < int(np.sum(truth)) < len(truth):
        out.append(Section("roc", "ROC curve", figure_html(
            plot_roc(truth, scores), "True against false positive rate as the threshold sweeps the test scores.")))
    top = np.argsort(-scores, kind="stable")[:8]
    contributions = est.explain(X_test[top])
    labels = None if truth is None else ["anomaly" if truth[i] else "normal" for i in top]
    if image_shape is not None:
        fig = plot_most_abnormal(X_test[top], est.reconstruct(X_test[top]), contributions, scores[top], image_shape,
                                 value_range=value_range, labels=labels)
        text = ("The 8 most abnormal test rows: the input, the scorer's reconstruction and each pixel's squared "
                "error (its contribution to the score, explain()), brightest where the reconstruction fails.")
    else:
        names = feature_names if feature_names is not None and len(feature_names) == X_test.shape[1] else None
        fig = plot_contributions(contributions, scores[top], names)
        text = ("The 8 most abnormal test rows: the features that contribute most to each row's score (explain(): "
                "squared reconstruction error per standardized column).")
    out.append(Section("most-abnormal", "Most abnormal rows, explained", figure_html(fig, text)))
    return out


# -- the report ------------------------------------------------------------------------------------------------
def build_report(
    est: Any,
    X_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray | None = None,
    *,
    image_shape: Sequence[int] | None = None,
    notes: Mapping[str, Any] | None = None,
    data_name: str = "data",
    split: str = "test split",
    title: str | None = None,
    anomalies: np.ndarray | None = None,
    metrics: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The HTML report of a fitted estimator, as one string.

    Parameters
    ----------
    est : Autoencoder
        A fitted aekit estimator.
    X_train : numpy.ndarray
        Training rows (most-activating instances are searched among its first 20,000; its range is the
        input range for activation maximisation).
    X_test : numpy.ndarray
        Test rows (metrics, reconstructions, latent map).
    y_test : numpy.ndarray, optional
        Labels of ``X_test`` to colour the latent map.
    image_shape : sequence of int, optional
        Defaults to the estimator's ``image_shape``.
    notes : dict, optional
        The run's ``run.json`` (its ``metrics`` are shown).
    data_name, split : str
        How the data is named in the report.
    title : str, optional
    anomalies : numpy.ndarray, optional
        For an anomaly detector: which test rows are anomalies (1) and which normal (0), for the ROC and the
        metrics.
    metrics : sequence of dict, optional
        The run folder's ``metrics.csv`` (:func:`aekit.runs.read_metrics`), plotted as the learning curves.

    Returns
    -------
    str
        A complete HTML document, images inlined.
    """
    notes = notes or {}
    shape = image_shape if image_shape is not None else getattr(est, "image_shape", None)
    shape = None if shape is None else tuple(int(s) for s in shape)
    lo, hi = float(X_train.min()), float(X_train.max())
    value_range = (lo, hi if hi > lo else lo + 1.0)  # the data's range: images drawn, ascent kept, in it
    candidates = X_train[:MAX_CANDIDATES]
    if hasattr(est, "decision_scores_"):  # an anomaly detector: its scores, then its scorer's training
        sections = [_configuration(est, data_name, shape), _curves(est, metrics),
                    *_anomaly_sections(est, X_test, anomalies, shape, value_range, split,
                                       (notes.get("detect") or {}).get("columns"))]
        return _page(sections, title or f"aekit report: {type(est).__name__} on {data_name}")
    builders: list[Callable[[], Section | None]] = [
        lambda: _configuration(est, data_name, shape),
        lambda: _curves(est, metrics),
        lambda: _metrics(est, X_test, notes, data_name, split),
        lambda: _latent(est, X_test, y_test),
    ]
    if shape is not None:  # the figures that draw rows as pictures: only for images
        units = _units_per_layer(est, candidates)
        builders[3:3] = [
            lambda: _reconstructions(est, X_test, shape, value_range),
            lambda: _features(est, shape),
            lambda: _top_activating(est, candidates, units, shape, value_range),
            lambda: _maximization(est, units, shape, value_range, float(X_train.mean()), X_train.shape[1]),
        ]
        builders += [lambda: _samples(est, shape, value_range), lambda: _buckets(est, candidates, shape)]
    sections = [s for s in (build() for build in builders) if s is not None]
    return _page(sections, title or f"aekit report: {type(est).__name__} on {data_name}")


def _page(sections: Sequence[Section], title: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    toc = "".join(f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>' for s in sections)
    body = "".join(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>{s.body}</section>' for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>'
            f'<body><h1>{html.escape(title)}</h1><p class="meta">aekit {__version__}, written {when}</p>'
            f"<nav><ol>{toc}</ol></nav>{body}</body></html>\n")


def write_report(
    run_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    dataset: str | None = None,
    *,
    data: str | os.PathLike | None = None,
    label_column: int | str | None = None,
    device: str | None = "cpu",
) -> Path:
    """Write the HTML report of the run in ``run_dir`` (a checkpoint folder written by ``aekit train``).

    Parameters
    ----------
    run_dir : str or path-like
        The run folder.
    out : str or path-like, optional
        Where to write; default ``run_dir/report.html``.
    dataset : str, optional
        A named dataset to evaluate on; default: the data recorded in the run's ``run.json`` (else digits).
    data, label_column : optional
        A user file instead of a named dataset (used whole as the test data).
    device : str, default="cpu"

    Returns
    -------
    pathlib.Path
        The file written.
    """
    from ..estimators.base import load
    from ..runs import check_output, data_spec, load_split, read_metrics, read_notes, write_file

    run = Path(run_dir)
    est = load(run, device=device)
    notes = read_notes(run)
    spec = data_spec(dataset, None if data is None else str(data), label_column, notes)
    X_train, X_test, data_shape, _, y_test, name, split = load_split(spec)
    image_shape = notes.get("image_shape") or data_shape or getattr(est, "image_shape", None)
    anomalies = None
    normal = (notes.get("detect") or {}).get("normal_class")
    if normal and y_test is not None:  # a one-class run: the other classes are the anomalies
        anomalies = (~np.isin(np.asarray(y_test).astype(str), [str(c) for c in normal])).astype(int)
    page = build_report(est, X_train, X_test, y_test, image_shape=image_shape, notes=notes, data_name=name,
                        split=split, title=f"aekit report: {run.resolve().name} ({type(est).__name__} on {name})",
                        anomalies=anomalies, metrics=read_metrics(run))
    path = check_output(out) if out is not None else run / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path.parent, path.name, page.encode("utf-8"))
    return path
