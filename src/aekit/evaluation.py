"""Likelihoods of generative autoencoders, each computed in chunks so that memory stays bounded.

* Importance-sampled log p(x) of a VAE (Burda, Grosse & Salakhutdinov 2015, "Importance Weighted Autoencoders",
  eq. 8, with the encoder q(z|x) as the proposal)::

      log p(x) ~= logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k,   z_i ~ q(z|x)

  a lower bound in expectation that tightens as k grows (k = 1 is the ELBO); k = 5000 in the paper.
* The ELBO: E_q[log p(x|z)] (Monte Carlo) - KL(q(z|x) || N(0, I)) (analytic).
* Parzen-window log-likelihood (Breuleux, Bengio & Vincent 2011; the protocol of Goodfellow et al. 2014 and
  Makhzani et al. 2016): a Gaussian kernel density of generated samples with one bandwidth ``sigma``, chosen by
  grid search on validation data, evaluated on test data; reported as mean +- standard error over test rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .errors import ConfigError
from .losses.reconstruction import reconstruction_loss
from .models.base import AEOutput
from .models.variational import LOG_2PI
from .models.variational import VariationalAutoencoderModule as VariationalAutoencoder


def _decoder_log_likelihood(model: VariationalAutoencoder, loss: str, z: torch.Tensor,
                            x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) per row, (rows,): the decoder's Bernoulli (``bce``) or Gaussian (``gaussian``) density (the
    model's ``decode_rows`` and ``target_of``: a conditional family reads each row's label)."""
    output = AEOutput(model.decode_rows(z, x), z, model.output_activation, log_scale=model.log_scale)
    return -reconstruction_loss(loss)(output, model.target_of(x), "rows")


def _check_likelihood(loss: str) -> None:
    if loss not in ("bce", "gaussian"):
        raise ConfigError(f"a log-likelihood needs a decoder density: loss='bce' (Bernoulli) or 'gaussian', "
                          f"but this model was trained with loss={loss!r} (a squared error, not a density)")


@torch.no_grad()
def importance_log_likelihood(model: VariationalAutoencoder, X: torch.Tensor, k: int = 5000, *, loss: str = "bce",
                              max_pairs: int = 16384, generator: torch.Generator | None = None) -> torch.Tensor:
    """Importance-sampled log p(x) of each row of ``X``: (n,) float64, in nats.

    ``max_pairs`` bounds the (row, sample) pairs decoded at once, so memory is about ``max_pairs * n_features``
    floats times a few, whatever ``k``; the k log-weights of a row are combined with one log-sum-exp.
    """
    _check_likelihood(loss)
    if k < 1:
        raise ConfigError(f"k must be >= 1 importance samples, got {k}")
    was_training = model.training
    model.eval()
    rows = max(1, min(len(X), max_pairs // k))
    per_pass = max(1, min(k, max_pairs // rows))
    results = []
    try:
        for start in range(0, len(X), rows):
            x = X[start : start + rows]  # (r, d)
            mu, logvar = model.encode_distribution(x)  # (r, latent) each
            std = torch.exp(0.5 * logvar)
            log_w = []
            for s0 in range(0, k, per_pass):
                s = min(per_pass, k - s0)
                eps = torch.randn((s, *mu.shape), generator=generator).to(mu.device)  # a CPU generator
                z = mu + std * eps  # (s, r, latent)
                log_q = -0.5 * (eps.pow(2) + logvar + LOG_2PI).sum(-1)  # (s, r)
                log_prior = model.log_prior(z)  # (s, r): the family's prior
                log_px = _decoder_log_likelihood(model, loss, z.reshape(-1, z.shape[-1]),
                                                 x.expand(s, *x.shape).reshape(-1, x.shape[-1])).view(s, -1)
                log_w.append((log_px + log_prior - log_q).double())
            results.append(torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k))
    finally:
        model.train(was_training)
    return torch.cat(results)


@torch.no_grad()
def elbo(model: VariationalAutoencoder, X: torch.Tensor, n_samples: int = 1, *, loss: str = "bce",
         batch_size: int = 1024, generator: torch.Generator | None = None) -> torch.Tensor:
    """The evidence lower bound of each row: (n,) float64; the reconstruction term averages ``n_samples`` codings
    drawn from q(z|x), the KL is the model's (``kl_estimate``: analytic for the standard normal prior, else one sample per draw) and
    unweighted: the true ELBO, whatever ``beta`` training used."""
    _check_likelihood(loss)
    was_training = model.training
    model.eval()
    results = []
    try:
        for start in range(0, len(X), batch_size):
            x = X[start : start + batch_size]
            mu, logvar = model.encode_distribution(x)
            total = torch.zeros(len(x), dtype=torch.float64, device=x.device)
            for _ in range(n_samples):
                eps = torch.randn(mu.shape, generator=generator).to(mu.device)
                z = mu + torch.exp(0.5 * logvar) * eps
                total += _decoder_log_likelihood(model, loss, z, x).double() - model.kl_estimate(mu, logvar, z).double()
            results.append(total / n_samples)
    finally:
        model.train(was_training)
    return torch.cat(results)


# -- Parzen windows ----------------------------------------------------------------------------------------------
DEFAULT_SIGMAS = tuple(float(s) for s in np.logspace(-1, 0, 21))  # 0.1 .. 1, the grid of Goodfellow et al.'s code


@torch.no_grad()
def parzen_log_likelihood(samples: Any, X: Any, sigmas: float | Sequence[float], *,
                          max_entries: int = 1 << 22) -> np.ndarray:
    """log p(x) of each row of ``X`` under a Gaussian kernel density on ``samples`` (isotropic, bandwidth sigma):
    ``logsumexp_j(-||x - s_j||^2 / (2 sigma^2)) - log N - d/2 log(2 pi sigma^2)``.

    Returns (n,) for one ``sigma``, (n, len(sigmas)) for a grid (the squared distances are computed once, in
    float64, ``max_entries`` (row, sample) pairs at a time).
    """
    S = torch.as_tensor(np.asarray(samples), dtype=torch.float64)
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float64)
    if S.ndim != 2 or Xt.ndim != 2 or S.shape[1] != Xt.shape[1]:
        raise ConfigError(f"samples {tuple(S.shape)} and X {tuple(Xt.shape)} must be 2-D with the same columns")
    one = np.ndim(sigmas) == 0
    sig = torch.tensor(np.atleast_1d(np.asarray(sigmas, dtype=np.float64)))
    if (sig <= 0).any():
        raise ConfigError(f"Parzen bandwidths must be > 0, got {sigmas}")
    n, d = S.shape
    s_norms = S.pow(2).sum(1)  # (N,)
    const = -math.log(n) - 0.5 * d * torch.log(2 * math.pi * sig.pow(2))  # (n_sigmas,)
    rows = max(1, max_entries // n)
    out = []
    for start in range(0, len(Xt), rows):
        x = Xt[start : start + rows]
        d2 = (x.pow(2).sum(1, keepdim=True) - 2 * x @ S.T + s_norms).clamp_min_(0)  # (b, N)
        out.append(torch.stack([torch.logsumexp(d2 * (-0.5 / float(s) ** 2), dim=1) for s in sig], 1) + const)
    ll = torch.cat(out).numpy()
    return ll[:, 0] if one else ll


def parzen_evaluation(samples: Any, X_val: Any, X_test: Any,
                      sigmas: Sequence[float] = DEFAULT_SIGMAS) -> dict[str, Any]:
    """Pick sigma on ``X_val`` (highest mean log-likelihood over the grid), then score ``X_test`` with it.

    Returns ``{"parzen_ll", "parzen_se" (standard error over test rows), "sigma", "n_samples",
    "validation_ll"}``.
    """
    val = parzen_log_likelihood(samples, X_val, list(sigmas)).mean(0)
    best = int(np.argmax(val))
    if best in (0, len(sigmas) - 1) and len(sigmas) > 1:
        import warnings

        warnings.warn(f"the best Parzen sigma {sigmas[best]:.3g} lies on the edge of the grid "
                      f"[{min(sigmas):.3g}, {max(sigmas):.3g}]; widen it", stacklevel=2)
    test = parzen_log_likelihood(samples, X_test, float(sigmas[best]))
    return {"parzen_ll": float(test.mean()), "parzen_se": float(test.std(ddof=1) / math.sqrt(len(test))),
            "sigma": float(sigmas[best]), "n_samples": len(samples), "validation_ll": float(val[best])}


# -- disentanglement ---------------------------------------------------------------------------------------------
def mutual_information_gap(codes: Any, factors: Any, n_bins: int = 20) -> dict[str, Any]:
    """The mutual information gap (MIG; Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs"), as
    disentanglement_lib computes it (Locatello et al. 2019): each coding dimension is cut into ``n_bins``
    equal-width bins, its discrete mutual information with each factor is taken, and for each factor k the gap
    between the two dimensions most informative about it, divided by the factor's entropy::

        MIG = mean_k (I(z_a; v_k) - I(z_b; v_k)) / H(v_k),   a, b the top two dimensions for v_k

    0: no dimension singles a factor out; 1: each factor is captured by one dimension alone. ``codes`` (n, d),
    d >= 2 (the posterior means); ``factors`` (n, K) discrete values. Factors with one value are skipped.
    Returns ``{"mig", "per_factor" (K,) (NaN for a skipped factor), "mutual_information" (d, K) in nats,
    "entropy" (K,)}``.
    """
    from sklearn.metrics import mutual_info_score

    Z = np.asarray(codes, dtype=np.float64)
    V = np.asarray(factors)
    if Z.ndim != 2 or V.ndim != 2 or len(Z) != len(V):
        raise ConfigError(f"codes (n, d) and factors (n, K) must be 2-D with the same rows, got {Z.shape} and "
                          f"{V.shape}")
    if Z.shape[1] < 2:
        raise ConfigError(f"MIG compares the two most informative coding dimensions: codes need >= 2 columns, got "
                          f"{Z.shape[1]}")
    if not np.isfinite(Z).all():
        raise ConfigError("codes hold NaN or infinite values")
    binned = np.stack([np.digitize(z, np.histogram_bin_edges(z, int(n_bins))[1:-1]) for z in Z.T], 1)
    mi = np.array([[mutual_info_score(v, b) for v in V.T] for b in binned.T])  # (d, K)
    entropy = np.array([mutual_info_score(v, v) for v in V.T])  # (K,)
    top = np.sort(mi, axis=0)[::-1]
    per_factor = np.where(entropy > 0, (top[0] - top[1]) / np.where(entropy > 0, entropy, 1.0), np.nan)
    if np.isnan(per_factor).all():
        raise ConfigError("every factor has a single value: nothing to disentangle")
    return {"mig": float(np.nanmean(per_factor)), "per_factor": per_factor, "mutual_information": mi,
            "entropy": entropy}
