"""VampPrior (Tomczak & Welling 2018, "VAE with a VampPrior").

The VAE's math (:mod:`aekit.models.variational`) with the prior replaced by the aggregate posterior of K learned
pseudo-inputs u_1..u_K::

    p(z) = 1/K sum_k q(z | u_k)

The pseudo-inputs are parameters (K, features), initialized as the paper does (N(0.05, 0.01) for data in [0, 1],
clipped to [0, 1] by a hardtanh for a Bernoulli decoder; N(0, 1) unclipped for a Gaussian one), and trained with
the rest. The KL has no closed form: its one-sample estimate log q(z|x) - log p(z) is the latent term (and what
``elbo`` uses); ``log_likelihood`` uses the mixture prior; ``sample`` draws a pseudo-input uniformly, then a
coding from its posterior. Free bits hold the batch-mean KL at ``free_bits`` nats per latent unit at least (the
mixture's KL does not split by unit). Each step encodes the K pseudo-inputs once: about K / batch_size times an
encoder pass more than a VAE step.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..params import Param, positive_int
from ..registry import register_estimator, register_model
from .variational import VariationalAutoencoder, VariationalAutoencoderModule, gaussian_log_density

#: (rows x components x latent) values computed at once by the mixture density
_CHUNK = 1 << 22


@register_model("vamp")
class VampPriorModule(VariationalAutoencoderModule):
    """The VAE with a mixture of the posteriors of K learned pseudo-inputs as its prior."""

    def __init__(self, *args: Any, n_components: int = 500, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, seed=seed, **kwargs)
        self.config["n_components"] = int(n_components)
        generator = torch.Generator().manual_seed(seed + 1) if seed is not None else None
        self.clip = self.log_scale is None and self.output_activation == "sigmoid"  # pseudo-images in [0, 1]
        mean, std = (0.05, 0.01) if self.clip else (0.0, 1.0)
        u = torch.empty(int(n_components), self.n_features)
        if u.device.type != "meta":
            u.normal_(mean, std, generator=generator)
        self.pseudo_inputs = nn.Parameter(u)

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The prior's components: q(z | u_k)'s mean and log-variance, (K, latent) each."""
        u = self.pseudo_inputs
        return self.encode_distribution(nn.functional.hardtanh(u, 0.0, 1.0) if self.clip else u)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        mu_k, logvar_k = self.components()
        flat = z.reshape(-1, z.shape[-1])  # (N, latent)
        rows = max(1, _CHUNK // (mu_k.numel()))
        parts = [torch.logsumexp(gaussian_log_density(flat[i:i + rows, None], mu_k, logvar_k), dim=1)
                 for i in range(0, len(flat), rows)]
        return (torch.cat(parts) - math.log(len(mu_k))).view(z.shape[:-1])

    def kl_estimate(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return gaussian_log_density(z, mu, logvar) - self.log_prior(z)

    def batch_kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        kl = self.kl_estimate(mu, logvar, z).mean()
        free_bits = self.config.get("free_bits", 0.0)
        return kl.clamp(min=free_bits * self.n_codings) if free_bits else kl

    @torch.no_grad()
    def sample_codings(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        mu_k, logvar_k = (t.float().cpu() for t in self.components())
        pick = torch.randint(len(mu_k), (n,), generator=generator)
        eps = torch.randn(n, self.n_codings, generator=generator)
        return mu_k[pick] + torch.exp(0.5 * logvar_k[pick]) * eps


@register_estimator("VampPriorVAE", cli="vamp")
class VampPriorVAE(VariationalAutoencoder):
    """A VAE with a VampPrior (Tomczak & Welling 2018): the prior is the mixture of the encoder's posteriors of
    ``n_components`` learned pseudo-inputs. ``elbo`` and ``log_likelihood`` use that prior; ``sample`` draws from
    it. Dense or conv, Bernoulli or Gaussian decoder, KL warm-up and free bits as the VAE."""

    model_name = "vamp"
    own_params = (
        *VariationalAutoencoder.own_params,
        Param("n_components", 500, positive_int(), "Pseudo-inputs K of the prior (the paper: 500 on MNIST).",
              type="int", small=5),
    )

    def _model_config(self, n_features: int) -> dict[str, Any]:
        return {**super()._model_config(n_features), "n_components": self.n_components}
