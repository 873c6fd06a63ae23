"""Variational autoencoders (Kingma & Welling 2014, "Auto-Encoding Variational Bayes"; Géron ch. 15).

The encoder gives the mean and gamma = log sigma^2 of a diagonal Gaussian; codings are sampled with the
reparameterization mu + exp(gamma / 2) * eps; the latent loss is the analytic KL to N(0, I),
0.5 * sum(exp(gamma) + mu^2 - 1 - gamma), returned as the model's own loss term (times ``beta``).

Decoders: Bernoulli (logits; BCE summed over pixels) or Gaussian with one learned standard deviation shared by all
features (``gaussian_decoder``; its log is ``AEOutput.log_scale``, the Gaussian NLL reads it). With
``dynamic_binarization`` each training batch is resampled as Bernoulli(x) and that sample is also the target
(Burda et al. 2015's dynamically binarized MNIST); evaluation data is binarized once, outside the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..nn.layers import activation as get_activation
from ..nn.layers import init_linear_, linear_layers
from ..registry import register_model
from .base import AEOutput, AutoencoderModule


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row: (batch,)."""
    return 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum(dim=1)


@register_model("vae")
class VariationalAutoencoder(AutoencoderModule):
    def __init__(
        self,
        n_features: int,
        hidden_layers: Sequence[int],
        latent_dim: int,
        activation: str = "elu",
        init: str = "he",
        output_activation: str = "sigmoid",
        beta: float = 1.0,
        gaussian_decoder: bool = False,
        dynamic_binarization: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        hidden_layers = [int(h) for h in hidden_layers]
        self.config = dict(n_features=int(n_features), hidden_layers=hidden_layers, latent_dim=int(latent_dim),
                           activation=activation, init=init, output_activation=output_activation, beta=float(beta),
                           gaussian_decoder=bool(gaussian_decoder), dynamic_binarization=bool(dynamic_binarization))
        self.output_activation = output_activation
        self.act = get_activation(activation)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.encoder = linear_layers([int(n_features), *hidden_layers], init, generator)
        self.mean = nn.Linear(hidden_layers[-1], int(latent_dim))
        self.logvar = nn.Linear(hidden_layers[-1], int(latent_dim))
        for head in (self.mean, self.logvar):
            init_linear_(head.weight, head.bias, "xavier", generator)
        self.decoder = linear_layers([int(latent_dim), *reversed(hidden_layers), int(n_features)], init, generator)
        # log of the Gaussian decoder's standard deviation, one for all features (per-pixel scales collapse on
        # MNIST's always-black border pixels)
        self.log_scale = nn.Parameter(torch.zeros(())) if gaussian_decoder else None

    def encode_distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.encoder:
            x = self.act(layer(x))
        return self.mean(x), self.logvar(x)  # (batch, latent) each

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_distribution(x)[0]  # the mean: deterministic codings for transform

    def decode(self, codings: torch.Tensor) -> torch.Tensor:
        h = codings
        for j, layer in enumerate(self.decoder):
            h = layer(h)
            if j < len(self.decoder) - 1:
                h = self.act(h)
        return h  # logits

    def forward(self, x: torch.Tensor) -> AEOutput:
        target = None
        if self.training and self.config["dynamic_binarization"]:
            x = target = torch.bernoulli(x)  # a fresh binary image per batch, reconstructed as drawn
        mu, logvar = self.encode_distribution(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # reparameterization
        kl = gaussian_kl(mu, logvar).mean()
        return AEOutput(self.decode(z), mu, self.output_activation, terms={"kl": self.config["beta"] * kl},
                        target=target, log_scale=self.log_scale)
