"""How a fitted autoencoder of any family scores rows as anomalies: one :class:`Score` per way, registered by name.

An anomaly score is higher for rows that fit the training data worse. Each score reads only the scorer's public
interface (``reconstruction_error``, ``predict``, ``transform``; a VAE's ``elbo`` / ``log_likelihood``), so a
new family gets every score its interface allows without a line here. ``available`` says why a score does not
apply to an estimator, and the detector refuses it with that reason.

- ``reconstruction``: mean squared error between the row and its reconstruction (PyOD's AutoEncoder score);
- ``latent``: mean distance of the row's codings to the codings of its ``k`` nearest training rows (a training
  row's own coding left out, see :func:`knn_distances`);
- ``hybrid`` (what ``score_type="auto"`` picks for clean training rows): both, each divided by its spread on the training rows (median and
  interquartile range), then summed. Measured on the
  one-class protocol (train on one digit, score the 10,000 test images; :file:`benchmarks/one_class.py`),
  default dense autoencoder, seed 0, mean ROC-AUC over the 10 classes: MNIST reconstruction 0.963, latent 0.974,
  hybrid 0.977; Fashion-MNIST 0.917, 0.927, 0.934. The reconstruction error alone ranks simple shapes (a 1 or a
  7 under an 8-detector) as normal because they are easy to reconstruct; their codings lie far from the 8s'.
  With anomalies among the training rows the latent distance suffers (they become the neighbours of the other
  anomalies): trained on one class plus 10% of the others, tested on a split mixed the same way, mean ROC-AUC
  MNIST hybrid 0.883, reconstruction 0.912 (with ``trim=0.1``: 0.897 and 0.920), Fashion-MNIST 0.833 and 0.837
  (``trim=0.1``: 0.864 and 0.863), so ``score_type="auto"`` takes the reconstruction error when ``trim > 0``;
- ``elbo``: the negative evidence lower bound (nats; VAE), ``nll``: the importance-sampled negative
  log-likelihood (VAE). Both measured below the reconstruction error on MNIST (class 2: ELBO 0.857, NLL 0.851,
  reconstruction 0.944): likelihoods favour images with little ink, a known failure of density scores
  (Nalisnick et al. 2019).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError

K_NEIGHBOURS = 5  # neighbours of the latent distance: 5 measured best of 1, 3, 5, 10, 20 on MNIST (0.974)
MAX_REFERENCE = 20000  # training codings kept for the latent distance (a seeded subsample beyond)
NLL_SAMPLES = 100  # importance samples per row of the nll score
ELBO_SAMPLES = 10  # codings drawn per row for the elbo's reconstruction term


@dataclass
class Fitted:
    """What a score keeps from the training rows: tensors saved in the detector's checkpoint, by name."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """One way to score rows. ``fit(est, X, seed)`` keeps what it needs of the training rows; ``__call__(est, X,
    fitted, seed)`` gives the anomaly scores (n,) float64; ``contributions`` the per-feature part of them."""

    name: str
    doc: str
    needs: tuple[str, ...]
    fit: Callable[[Any, np.ndarray, int], Fitted]
    score: Callable[[Any, np.ndarray, Fitted, int], np.ndarray]

    def available(self, est: Any) -> str | None:
        """None if ``est`` can be scored this way, else why not."""
        missing = [m for m in self.needs if not callable(getattr(est, m, None))]
        if missing:
            return (f"score_type={self.name!r} needs a scorer with {', '.join(missing)}; {type(est).__name__} has none "
                    f"(a VariationalAutoencoder has elbo and log_likelihood)")
        return None


SCORES: dict[str, Score] = {}


def register_score(score: Score) -> Score:
    if score.name in SCORES:
        raise ValueError(f"score {score.name!r} is already registered")
    SCORES[score.name] = score
    return score


def get_score(name: str) -> Score:
    try:
        return SCORES[name]
    except KeyError:
        raise ConfigError(f"unknown score {name!r}; available: {', '.join(sorted(SCORES))}") from None


def auto_score(est: Any, contaminated: bool = False) -> str:
    """The score ``score_type="auto"`` picks: hybrid wherever the scorer has codings and the training rows are clean;
    the reconstruction error when they are declared contaminated (``trim > 0``: anomalies among the training
    codings make the other anomalies' neighbours), or when the scorer has no codings."""
    if contaminated or SCORES["hybrid"].available(est) is not None:
        return "reconstruction"
    return "hybrid"


# -- the pieces ----------------------------------------------------------------------------------------------
def squared_errors(est: Any, X: np.ndarray) -> np.ndarray:
    """(n, d) float64: ``(x - reconstruction)**2`` per feature; its row means are the reconstruction score."""
    return (X.astype(np.float64) - est.predict(X).reshape(len(X), -1).astype(np.float64)) ** 2


SELF_TOLERANCE = 1e-5  # a reference coding this close (relative to the codings' RMS norm) is the row's own


def knn_distances(reference: torch.Tensor, queries: torch.Tensor, k: int, max_pairs: int = 1 << 22) -> np.ndarray:
    """Mean Euclidean distance of each query row to its ``k`` nearest reference rows other than itself (float64;
    fewer when the reference holds fewer than ``k + 1`` rows).

    A query's nearest reference coding within ``SELF_TOLERANCE`` of the codings' RMS norm is taken for the row's
    own (float32 rounding apart) and skipped, once: a training row is scored by its neighbours, as a new row is,
    so the threshold set on the training rows holds for new ones; ``predict`` on the training rows gives their
    ``decision_scores_``. Computed in chunks of queries, at most ``max_pairs`` distances at a time."""
    ref = reference.double()
    ref_sq = ref.pow(2).sum(1)
    if len(ref) < 2:
        raise ConfigError(f"the latent distance needs at least 2 training rows, got {len(ref)}")
    k = min(k, len(ref) - 1)  # a reference smaller than k + 1 rows: all the others
    tolerance = (SELF_TOLERANCE ** 2) * float(ref_sq.mean())
    chunk = max(1, max_pairs // len(ref))
    out = []
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk].double()
        d2 = (q.pow(2).sum(1, keepdim=True) - 2 * q @ ref.T + ref_sq).clamp_min_(0)
        nearest = d2.topk(k + 1, dim=1, largest=False).values  # ascending
        own = nearest[:, :1] <= tolerance
        chosen = torch.where(own, nearest[:, 1:], nearest[:, :k])
        out.append(chosen.sqrt().mean(1))
    return torch.cat(out).numpy()


def _reference(est: Any, X: np.ndarray, seed: int) -> torch.Tensor:
    rows = X
    if len(X) > MAX_REFERENCE:
        keep = np.sort(np.random.default_rng(seed).permutation(len(X))[:MAX_REFERENCE])
        rows = X[keep]
    return torch.from_numpy(np.ascontiguousarray(est.transform(rows), dtype=np.float32))


def _spread(values: np.ndarray) -> torch.Tensor:
    """(median, interquartile range) of training scores, the range floored so that a constant score divides."""
    lo, med, hi = np.quantile(values, [0.25, 0.5, 0.75])
    return torch.tensor([med, max(hi - lo, 1e-12 * max(abs(med), 1.0), 1e-30)], dtype=torch.float64)


def _standardized(values: np.ndarray, spread: torch.Tensor) -> np.ndarray:
    med, iqr = spread.tolist()
    return (values - med) / iqr


# -- the scores ----------------------------------------------------------------------------------------------
def _nothing(est: Any, X: np.ndarray, seed: int) -> Fitted:
    return Fitted()


def _reconstruction(est: Any, X: np.ndarray, fitted: Fitted, seed: int) -> np.ndarray:
    return est.reconstruction_error(X).astype(np.float64)


def _fit_latent(est: Any, X: np.ndarray, seed: int) -> Fitted:
    return Fitted({"reference": _reference(est, X, seed)})


def _latent(est: Any, X: np.ndarray, fitted: Fitted, seed: int) -> np.ndarray:
    codings = torch.from_numpy(np.ascontiguousarray(est.transform(X), dtype=np.float32))
    return knn_distances(fitted.tensors["reference"], codings, K_NEIGHBOURS)


def _fit_hybrid(est: Any, X: np.ndarray, seed: int) -> Fitted:
    reference = _reference(est, X, seed)  # the latent spread: over the reference rows (each skips itself)
    latent = knn_distances(reference, reference, K_NEIGHBOURS)
    return Fitted({"reference": reference,
                   "reconstruction_spread": _spread(est.reconstruction_error(X).astype(np.float64)),
                   "latent_spread": _spread(latent)})


def _hybrid(est: Any, X: np.ndarray, fitted: Fitted, seed: int) -> np.ndarray:
    t = fitted.tensors
    return (_standardized(_reconstruction(est, X, fitted, seed), t["reconstruction_spread"])
            + _standardized(_latent(est, X, fitted, seed), t["latent_spread"]))


def _elbo(est: Any, X: np.ndarray, fitted: Fitted, seed: int) -> np.ndarray:
    return -est.elbo(X, n_samples=ELBO_SAMPLES, random_state=int(seed)).astype(np.float64)


def _nll(est: Any, X: np.ndarray, fitted: Fitted, seed: int) -> np.ndarray:
    return -est.log_likelihood(X, k=NLL_SAMPLES, random_state=int(seed)).astype(np.float64)


register_score(Score("reconstruction", "mean squared reconstruction error", ("reconstruction_error",), _nothing,
                     _reconstruction))
register_score(Score("latent", f"mean distance to the {K_NEIGHBOURS} nearest training codings", ("transform",),
                     _fit_latent, _latent))
register_score(Score("hybrid", "reconstruction error + latent distance, each scaled by its training spread",
                     ("reconstruction_error", "transform"), _fit_hybrid, _hybrid))
register_score(Score("elbo", f"negative ELBO, nats ({ELBO_SAMPLES} codings per row)", ("elbo",), _nothing, _elbo))
register_score(Score("nll", f"importance-sampled negative log-likelihood, nats (k={NLL_SAMPLES})",
                     ("log_likelihood",), _nothing, _nll))


def contributions(est: Any, score: str, X: np.ndarray, fitted: Fitted) -> np.ndarray:
    """(n, d) float64: each feature's part of each row's score, in the detector's (standardized) units.

    For ``reconstruction`` the squared errors divided by ``d`` (a row's contributions sum to its score); for
    ``hybrid`` the same over the reconstruction spread (they sum to the reconstruction term; the latent distance
    is a distance between codings and belongs to no single feature); for ``elbo``/``nll`` and ``latent`` the
    squared errors divided by ``d``, the per-feature reconstruction of the row (the features it gets most wrong).
    """
    errors = squared_errors(est, X) / X.shape[1]
    if score == "hybrid":
        return errors / float(fitted.tensors["reconstruction_spread"][1])
    return errors
