"""From anomaly scores to what PyOD users read: outlier probabilities and the confidence of each label.

Both are measured against the training rows' scores (``decision_scores_``, higher = more abnormal):

- :func:`rank_probability` (``predict_proba(method="rank")``, the default): the share of training rows scored at
  most as high, ``(1 + #{train <= s}) / (2 + n)``: distribution-free, and 0.9 means "more abnormal than 90% of
  the training rows" whatever the score's units;
- :func:`linear_probability` (``method="linear"``, PyOD's default): the score min-max scaled over the training
  scores, clipped to [0, 1];
- :func:`unify_probability` (``method="unify"``, Kriegel et al. 2011, PyOD's ``"unify"``): a Gaussian fitted to
  the training scores, ``max(0, erf((s - mean) / (std * sqrt 2)))``;
- :func:`exceed_confidence`: ExCeeD (Perini et al. 2020), PyOD's ``predict_confidence``: the probability that a
  row's label would stay the same if the training set were drawn again, ``1 - BinomCDF(n - floor(n *
  contamination); n, p)`` with ``p`` the rank probability above, flipped for rows labelled inliers.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf
from scipy.stats import binom


def _counts(train_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(train_scores), scores, side="right")  # #{train <= s}


def rank_probability(train_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return (1.0 + _counts(train_scores, scores)) / (2.0 + len(train_scores))


def linear_probability(train_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(train_scores)), float(np.max(train_scores))
    return np.clip((scores - lo) / ((hi - lo) or 1.0), 0.0, 1.0)


def unify_probability(train_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    mean, std = float(np.mean(train_scores)), float(np.std(train_scores))
    std = std if std > 0 else 1.0
    return np.clip(erf((scores - mean) / (std * np.sqrt(2.0))), 0.0, 1.0)


def exceed_confidence(train_scores: np.ndarray, scores: np.ndarray, contamination: float,
                      outlier: np.ndarray) -> np.ndarray:
    n = len(train_scores)
    posterior = rank_probability(train_scores, scores)
    confidence = 1.0 - binom.cdf(n - int(n * contamination), n, posterior)
    return np.where(outlier, confidence, 1.0 - confidence)
