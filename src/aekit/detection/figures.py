"""Figures of a fitted anomaly detector: where the threshold cuts the scores, how well they rank the anomalies
(ROC, with labels), and why the most abnormal rows are abnormal (images: input, reconstruction, error map side by
side; tables: the features that contribute most)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..viz._grid import ValueRange, as_image, show_image


def plot_score_histogram(scores: np.ndarray, threshold: float, truth: np.ndarray | None = None, *,
                         train_scores: np.ndarray | None = None, title: str | None = None) -> Figure:
    """Histogram of anomaly scores (higher = more abnormal) with the threshold as a vertical line; with ``truth``
    (1 = anomaly) normal and anomalous rows in two colours; ``train_scores`` as an outline."""
    scores = np.asarray(scores, dtype=np.float64)
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.subplots()
    pool = scores if train_scores is None else np.concatenate([scores, train_scores])
    lo, hi = np.quantile(pool, [0.0, 0.995])  # a few extreme rows would squash the rest into one bar
    hi = max(hi, threshold) if hi > lo else lo + 1.0
    bins = np.linspace(lo, hi, 60)
    clipped = np.clip(scores, lo, hi)
    if truth is None:
        ax.hist(clipped, bins=bins, color="tab:blue", alpha=0.75, label=f"scored rows ({len(scores):,})")
    else:
        truth = np.asarray(truth).astype(bool)
        ax.hist(clipped[~truth], bins=bins, color="tab:blue", alpha=0.65, label=f"normal ({(~truth).sum():,})")
        ax.hist(clipped[truth], bins=bins, color="tab:red", alpha=0.55, label=f"anomalies ({truth.sum():,})")
    if train_scores is not None:
        ax.hist(np.clip(train_scores, lo, hi), bins=bins, histtype="step", color="0.3", linewidth=1.2,
                label=f"training rows ({len(train_scores):,})")
    flagged = float(np.mean(scores > threshold))
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1.5,
               label=f"threshold {threshold:.3g}: flags {flagged:.1%}")
    ax.set_xlabel("anomaly score (higher = more abnormal; the top 0.5% drawn at the right edge)")
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def plot_roc(truth: np.ndarray, scores: np.ndarray, *, title: str | None = None) -> Figure:
    """ROC curve of anomaly ``scores`` against ``truth`` (1 = anomaly), with its AUC and the chance diagonal."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(truth, scores)
    auc = roc_auc_score(truth, scores)
    fig = Figure(figsize=(4.2, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.plot(fpr, tpr, color="tab:red", linewidth=1.8, label=f"detector (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="chance (AUC 0.5)")
    ax.set_xlabel("false positive rate (normal rows flagged)")
    ax.set_ylabel("true positive rate (anomalies flagged)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "ROC")
    return fig


def plot_most_abnormal(rows: np.ndarray, reconstructions: np.ndarray, errors: np.ndarray, scores: np.ndarray,
                       image_shape: Sequence[int], *, value_range: ValueRange = (0.0, 1.0),
                       labels: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """One line per row: the input, its reconstruction and the map of per-pixel errors (``errors``, e.g. the
    detector's :meth:`~aekit.AnomalyDetector.explain`), titled by the row's anomaly score."""
    n = len(rows)
    fig = Figure(figsize=(3 * 1.5 + 0.6, 1.55 * n + (0.3 if title else 0)), layout="constrained")
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        show_image(axes[i, 0], rows[i], image_shape, value_range)
        show_image(axes[i, 1], reconstructions[i], image_shape, value_range)
        err = as_image(errors[i], image_shape)
        if err.ndim == 3:
            err = err.sum(axis=-1)
        axes[i, 2].imshow(err, cmap="inferno", vmin=0, vmax=float(err.max()) or 1.0, interpolation="nearest")
        axes[i, 2].set_xticks([])
        axes[i, 2].set_yticks([])
        tag = f" ({labels[i]})" if labels is not None else ""
        axes[i, 0].set_ylabel(f"score {scores[i]:.3g}{tag}", fontsize=7)
    for j, name in enumerate(("input", "reconstruction", "error map")):
        axes[0, j].set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_contributions(contributions: np.ndarray, scores: np.ndarray, feature_names: Sequence[str] | None = None,
                       *, top: int = 8, title: str | None = None) -> Figure:
    """For each row (the most abnormal ones, say), the ``top`` features contributing most to its score, as
    horizontal bars (tables, where an error map means nothing)."""
    n, d = contributions.shape
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(d)]
    top = min(top, d)
    fig = Figure(figsize=(3.2 * min(n, 4), 0.32 * top * -(-n // 4) + 0.9), layout="constrained")
    axes = fig.subplots(-(-n // 4), min(n, 4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        order = np.argsort(contributions[i])[::-1][:top]
        ax.barh(range(top)[::-1], contributions[i][order], color="tab:red")
        ax.set_yticks(range(top)[::-1], [names[j] for j in order], fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(f"row score {scores[i]:.3g}", fontsize=8)
        ax.set_xlabel("contribution (explain)", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
