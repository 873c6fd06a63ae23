"""The figures of docs/results.md's anomaly-detection section: a one-class detector for MNIST's 8s (scores and the
threshold, ROC, the most abnormal test images explained) and one for a table (scikit-learn's breast-cancer data,
benign rows as normal: the columns behind the most abnormal rows).

    AEKIT_DATA_DIR=../shared/data python examples/anomaly_figures.py     # writes docs/detection-*.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score

import aekit
from aekit.detection.figures import plot_contributions, plot_most_abnormal, plot_roc, plot_score_histogram
from aekit.runs import figure_bytes

DOCS = Path(__file__).resolve().parents[1] / "docs"


def save(fig, name: str) -> None:
    (DOCS / name).write_bytes(figure_bytes(fig, dpi=90))
    print("wrote", DOCS / name)


def mnist(normal: int = 8) -> None:
    ds = aekit.load_dataset("mnist")
    det = aekit.AnomalyDetector(random_state=0).fit(ds.X_train[ds.y_train == normal])
    truth = (ds.y_test != normal).astype(int)
    scores = det.anomaly_score(ds.X_test)
    print(f"MNIST, normal class {normal}: ROC-AUC {roc_auc_score(truth, scores):.4f}; normal test rows flagged "
          f"{np.mean(scores[truth == 0] > det.threshold_):.1%}")
    save(plot_score_histogram(scores, det.threshold_, truth, train_scores=det.decision_scores_,
                              title=f"one-class MNIST, normal = {normal}"), "detection-mnist8-scores.png")
    save(plot_roc(truth, scores, title=f"one-class MNIST, normal = {normal}"), "detection-mnist8-roc.png")
    # the most abnormal test rows, and the normal test rows that score highest (the hardest for the detector)
    top = np.argsort(-scores)[:4]
    hard = np.flatnonzero(truth == 0)[np.argsort(-scores[truth == 0])[:4]]
    rows = np.r_[top, hard]
    labels = [f"a {ds.y_test[i]}" for i in rows]
    save(plot_most_abnormal(ds.X_test[rows], det.reconstruct(ds.X_test[rows]), det.explain(ds.X_test[rows]),
                            scores[rows], (28, 28), labels=labels,
                            title="4 most abnormal test images, then the 4 highest-scored 8s"),
         "detection-mnist8-most-abnormal.png")


def table() -> None:
    data = load_breast_cancer()
    X, y = data.data, data.target  # 1 = benign
    rng = np.random.default_rng(0)
    benign = rng.permutation(np.flatnonzero(y == 1))
    train, test = benign[:250], np.r_[benign[250:], np.flatnonzero(y == 0)]
    det = aekit.AnomalyDetector(random_state=0).fit(X[train])
    truth = (y[test] == 0).astype(int)
    scores = det.anomaly_score(X[test])
    print(f"breast cancer, benign as normal: ROC-AUC {roc_auc_score(truth, scores):.4f}")
    top = np.argsort(-scores)[:4]
    save(plot_contributions(det.explain(X[test][top]), scores[top], data.feature_names, top=6,
                            title="breast-cancer table: the columns behind the 4 most abnormal rows"),
         "detection-cancer-contributions.png")


if __name__ == "__main__":
    which = sys.argv[1:] or ["mnist", "table"]
    if "mnist" in which:
        mnist()
    if "table" in which:
        table()
