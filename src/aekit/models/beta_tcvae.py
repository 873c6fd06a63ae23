"""beta-TCVAE (Chen, Li, Grosse & Duvenaud 2018, "Isolating Sources of Disentanglement in VAEs").

The VAE's math (:mod:`aekit.models.variational`) with the KL term split in three and the total correlation
weighted on its own::

    E_x KL(q(z|x) || p(z)) = I_q(x; z)                 (index-code mutual information, weight alpha)
                           + KL(q(z) || prod_d q(z_d))  (total correlation, weight beta)
                           + sum_d KL(q(z_d) || p(z_d)) (dimension-wise KL, weight gamma)

q(z) and q(z_d) are estimated on the batch by minibatch-weighted sampling (the paper's eq. 4, MWS): for B
codings z_i drawn from their posteriors and N training rows,
``log q(z_i) ~= logsumexp_j log q(z_i | x_j) - log(N B)``, and likewise per dimension. alpha = gamma = 1 and
beta = 6 are the paper's dSprites setting. KL warm-up scales the three terms; free bits apply to the dimension-
wise KL of each unit. The estimate is biased for small batches (it needs B codings of the same batch), and the
decomposition's terms are recorded per epoch (``mi``, ``tc``, ``dim_kl``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..params import Param, non_negative_float
from ..registry import register_estimator, register_model
from .variational import VariationalAutoencoder, VariationalAutoencoderModule, gaussian_log_density


@register_model("beta-tcvae")
class BetaTCVAEModule(VariationalAutoencoderModule):
    """The VAE with the KL decomposed into mutual information, total correlation and dimension-wise KL."""

    def __init__(self, *args: Any, alpha: float = 1.0, gamma: float = 1.0, dataset_size: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.update(alpha=float(alpha), gamma=float(gamma), dataset_size=int(dataset_size))

    def decomposition(self, mu: torch.Tensor, logvar: torch.Tensor,
                      z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mutual information, total correlation, dimension-wise KL per unit (latent,)), batch means, by
        minibatch-weighted sampling."""
        batch = z.shape[0]
        log_nb = math.log(self.config["dataset_size"] * batch)
        # log q(z_i,d | x_j): (B, B, latent)
        pairs = gaussian_log_density(z[:, None, :, None], mu[None, :, :, None], logvar[None, :, :, None])
        log_q_marginals = torch.logsumexp(pairs, dim=1) - log_nb  # log q(z_i,d): (B, latent)
        log_qz = torch.logsumexp(pairs.sum(2), dim=1) - log_nb  # log q(z_i): (B,)
        log_qz_x = gaussian_log_density(z, mu, logvar)  # (B,)
        log_pz_d = -0.5 * (z.pow(2) + math.log(2 * math.pi))  # (B, latent)
        mi = (log_qz_x - log_qz).mean()
        tc = (log_qz - log_q_marginals.sum(1)).mean()
        dim_kl = (log_q_marginals - log_pz_d).mean(0)  # (latent,)
        return mi, tc, dim_kl

    def latent_terms(self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                     z: torch.Tensor) -> dict[str, torch.Tensor]:
        mi, tc, dim_kl = self.decomposition(mu, logvar, z)
        free_bits = self.config.get("free_bits", 0.0)
        if free_bits:
            dim_kl = dim_kl.clamp(min=free_bits)
        w, cfg = self.kl_weight, self.config
        return {"mi": w * cfg["alpha"] * mi, "tc": w * cfg["beta"] * tc, "dim_kl": w * cfg["gamma"] * dim_kl.sum()}


@register_estimator("BetaTCVAE", cli="beta-tcvae")
class BetaTCVAE(VariationalAutoencoder):
    """A beta-TCVAE: the VAE's KL split into index-code mutual information (``alpha``), total correlation
    (``beta``, default 6) and dimension-wise KL (``gamma``), estimated on each batch by minibatch-weighted
    sampling. The loss's terms are recorded per epoch (``mi``, ``tc``, ``dim_kl``, each weighted); ``elbo`` and
    ``log_likelihood`` are the VAE's (the model is a VAE; only its training objective differs)."""

    model_name = "beta-tcvae"
    own_params = (
        *(p.replace(default=6.0, doc="Weight of the total correlation (Chen et al. 2018: 6 on dSprites; 1 with "
                                     "alpha = gamma = 1 is the VAE's ELBO).")
          if p.name == "beta" else p.replace(default=10) if p.name == "latent_dim" else p  # 10: the paper's
          for p in VariationalAutoencoder.own_params),
        Param("alpha", 1.0, non_negative_float(), "Weight of the index-code mutual information.", type="float"),
        Param("gamma", 1.0, non_negative_float(), "Weight of the dimension-wise KL.", type="float"),
    )

    def _resolve(self, X: np.ndarray) -> None:
        super()._resolve(X)
        self.dataset_size_ = max(1, len(X))  # N of the minibatch-weighted estimate

    def _model_config(self, n_features: int) -> dict[str, Any]:
        return {**super()._model_config(n_features), "alpha": self.alpha, "gamma": self.gamma,
                "dataset_size": getattr(self, "dataset_size_", 1)}
