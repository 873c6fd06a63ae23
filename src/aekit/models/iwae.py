"""Importance weighted autoencoder (Burda, Grosse & Salakhutdinov 2015, "Importance Weighted Autoencoders").

The VAE's network (:mod:`aekit.models.variational`) trained on a tighter bound: for each row, ``k`` codings
z_1..z_k drawn from q(z|x) and

    L_k(x) = logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k,

which is the ELBO for k = 1 and tends to log p(x) as k grows. The estimator reports the loss -L_k in nats as
``reconstruction`` (the first draw's -log p(x|z_1), what a VAE reports) plus ``iw_latent`` (the rest); the two
sum to the bound and its gradient is the bound's. ``log_likelihood`` and ``elbo`` are the VAE's (the same
estimate with k = 5000 at test time). KL warm-up weighs log p(z) - log q(z|x) inside the weights; the bound has
no per-unit KL, so free bits do not apply to it.

``gradient="dreg"``: the doubly reparameterized gradient of the bound (Tucker, Lawson, Gu & Maddison 2018,
"Doubly Reparameterized Gradient Estimators for Monte Carlo Objectives"): the same bound and decoder gradient,
and an encoder gradient without the score-function term, sum_i w~_i^2 d log w_i / d z_i dz_i/dphi (w~ the
normalized weights), whose signal-to-noise ratio does not fall as k grows.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from sklearn.utils._param_validation import StrOptions

from ..data.binarize import bernoulli
from ..estimators.parts import Reconstruction
from ..losses.reconstruction import reconstruction_loss
from ..nn.chain import up
from ..params import Param, positive_int
from ..registry import register_estimator, register_model
from .base import AEOutput
from .variational import VariationalAutoencoder, VariationalAutoencoderModule, gaussian_log_density


GRADIENTS = ("standard", "dreg")


@register_model("iwae")
class IWAEModule(VariationalAutoencoderModule):
    """The VAE trained on the k-sample importance-weighted bound."""

    def __init__(self, *args: Any, k: int = 5, gradient: str = "standard", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {', '.join(GRADIENTS)}, got {gradient!r}")
        self.config["k"] = int(k)
        self.config["gradient"] = gradient

    def log_weights(self, x: torch.Tensor, k: int, stop_q: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """For rows ``x`` and ``k`` draws each: log p(x|z_i) and log p(z_i) - log q(z_i|x), both (k, batch), the
        decoder's logits of the first draw (batch, features), the posterior means (batch, latent) and the draws
        (k, batch, latent). ``stop_q``: q's parameters enter log q(z|x) without gradient (DReG's form)."""
        mu, logvar = self.encode_distribution(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn((k, *mu.shape), dtype=mu.dtype, device=mu.device)
        logits = up(self.decode(z.reshape(-1, z.shape[-1]))).view(k, len(x), -1)  # (k, batch, features), float32
        density = "gaussian" if self.log_scale is not None else "bce"
        output = AEOutput(logits.flatten(0, 1), z.flatten(0, 1), self.output_activation, log_scale=self.log_scale)
        log_px = -reconstruction_loss(density)(output, x.expand(k, *x.shape).flatten(0, 1), "rows").view(k, -1)
        q_mu, q_logvar = (mu.detach(), logvar.detach()) if stop_q else (mu, logvar)
        latent = self.log_prior(z) - gaussian_log_density(z, q_mu, q_logvar)  # (k, batch)
        return log_px, latent, logits[0], mu, z

    def forward(self, x: torch.Tensor) -> AEOutput:
        target = None
        if self.training and self.config["dynamic_binarization"]:
            x = target = bernoulli(x)  # a fresh binary image per batch, reconstructed as drawn
        k = self.config["k"]
        dreg = self.config.get("gradient") == "dreg" and self.training and torch.is_grad_enabled()
        log_px, latent, logits, mu, z = self.log_weights(x, k, stop_q=dreg)
        log_w = (log_px + self.kl_weight * latent).float()  # KL warm-up weighs the latent part
        bound = (torch.logsumexp(log_w, dim=0) - math.log(k)).mean()  # L_k, batch mean
        first = log_px[0].float().mean()
        # the objective adds the first draw's reconstruction term, -log p(x|z_1); this term is the rest of -L_k
        rest = -bound + first
        if dreg:
            w = torch.softmax(log_w.detach(), dim=0)  # (k, batch) normalized weights
            z.register_hook(lambda grad: grad * w.unsqueeze(-1).to(grad.dtype))  # the encoder's path: w~^2 in all
            surrogate = -(w * log_w).sum(0).mean()  # gradient: the decoder's sum w~ dlog w, w~ dlog w/dz to z
            # value -L_k; gradient the surrogate's (the objective's first-draw term cancelled by `first`)
            rest = rest.detach() + (surrogate - surrogate.detach()) + (first - first.detach())
        return AEOutput(logits, mu, self.output_activation, terms={"iw_latent": rest}, target=target,
                        log_scale=self.log_scale)


@register_estimator("IWAE", cli="iwae")
class IWAE(VariationalAutoencoder):
    """An importance weighted autoencoder: the VAE's network trained on the ``k``-sample bound L_k (Burda et al.
    2015; k = 1 is the VAE). ``log_likelihood`` (importance sampling, k = 5000 by default), ``elbo``, ``sample``
    and ``interpolate`` are the VAE's. The decoder must be a density (``loss`` ``"bce"`` or ``"gaussian"``).
    Each step decodes ``k`` codings per row: about k times the decoder's cost of a VAE step."""

    model_name = "iwae"
    beta = 1.0  # the bound has no separate KL term to weight
    free_bits = 0.0
    own_params = (
        *(p for p in VariationalAutoencoder.own_params if p.name not in ("beta", "free_bits")),
        Param("k", 5, positive_int(), "Importance samples per row in training (Burda et al.: 5 or 50).",
              type="int"),
        Param("gradient", "standard", [StrOptions(set(GRADIENTS))],
              "The bound's gradient estimator for the encoder: ``\"standard\"`` (Burda et al.) or ``\"dreg\"`` "
              "(doubly reparameterized, Tucker et al. 2018: no score-function term)."),
    )
    parts = tuple(Reconstruction("auto", ("bce", "gaussian"), auto="gaussian",
                                 doc="The decoder's density: ``\"bce\"`` Bernoulli (sigmoid outputs; X in [0, 1]); "
                                     "``\"gaussian\"`` Gaussian with one learned standard deviation.")
                  if isinstance(part, Reconstruction) else part for part in VariationalAutoencoder.parts)

    def _model_config(self, n_features: int) -> dict[str, Any]:
        return {**super()._model_config(n_features), "k": self.k, "gradient": self.gradient}
