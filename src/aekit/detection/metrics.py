"""How well anomaly scores find the anomalies, given labels (1 = anomaly): the ranking (ROC-AUC, average
precision, precision@n, scikit-learn's and PyOD's definitions) and the labels at the threshold."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError


def anomaly_truth(labels: Any) -> np.ndarray:
    """Labels as 1 = anomaly, 0 = normal: ``{0, 1}`` / booleans as they are (PyOD's convention), ``{-1, 1}`` as
    scikit-learn's ``predict`` gives them (-1 = outlier)."""
    y = np.asarray(labels)
    if y.dtype.kind == "b":
        return y.astype(int)
    if y.dtype.kind not in "iuf" or not np.isfinite(y.astype(np.float64)).all():
        raise DataError(f"anomaly labels must be 0/1 (1 = anomaly) or -1/1 (-1 = anomaly), got dtype {y.dtype}")
    values = set(np.unique(y).tolist())
    if values <= {0, 1}:
        return y.astype(int)
    if values <= {-1, 1}:
        return (y == -1).astype(int)
    raise DataError(f"anomaly labels must be 0/1 (1 = anomaly) or -1/1 (-1 = anomaly), got the values "
                    f"{sorted(values)[:6]}; for class labels, name the normal class(es) (--normal-class)")


def precision_at_n(truth: np.ndarray, scores: np.ndarray, n: int | None = None) -> float:
    """The share of anomalies among the ``n`` highest-scored rows (default: as many as there are anomalies,
    PyOD's ``precision_n_scores``)."""
    truth = np.asarray(truth).astype(bool)
    n = int(truth.sum()) if n is None else int(n)
    if n < 1:
        raise DataError("precision@n needs n >= 1 (and at least one anomaly when n is not given)")
    top = np.argsort(-np.asarray(scores), kind="stable")[:n]
    return float(truth[top].mean())


def evaluate_scores(truth: Any, scores: np.ndarray, threshold: float, n: int | None = None) -> dict[str, Any]:
    """ROC-AUC, average precision, precision@n of ``scores`` against ``truth`` (1 = anomaly), and at the
    ``threshold``: the share flagged, precision, recall and F1."""
    from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

    truth = anomaly_truth(truth)
    if len(truth) != len(scores):
        raise DataError(f"{len(truth)} labels for {len(scores)} scored rows; give one label per row")
    if len(np.unique(truth)) < 2:
        raise DataError(f"the labels hold only {'anomalies' if truth.all() else 'normal rows'}; ROC-AUC needs both")
    flagged = (np.asarray(scores) > threshold).astype(int)
    n_eff = int(truth.sum()) if n is None else int(n)
    return {"n_rows": int(len(truth)), "n_anomalies": int(truth.sum()),
            "roc_auc": float(roc_auc_score(truth, scores)),
            "average_precision": float(average_precision_score(truth, scores)),
            "precision_at_n": precision_at_n(truth, scores, n_eff), "n": n_eff,
            "flagged_share": float(flagged.mean()),
            "precision": float(precision_score(truth, flagged, zero_division=0)),
            "recall": float(recall_score(truth, flagged, zero_division=0)),
            "f1": float(f1_score(truth, flagged, zero_division=0))}
