"""Variational autoencoders (Kingma & Welling 2014, "Auto-Encoding Variational Bayes"; Géron ch. 15).

The encoder gives the mean and gamma = log sigma^2 of a diagonal Gaussian; codings are sampled with the
reparameterization mu + exp(gamma / 2) * eps; the latent loss is the analytic KL to N(0, I),
0.5 * sum(exp(gamma) + mu^2 - 1 - gamma), returned as the model's own loss term (times ``beta``).

Decoders: Bernoulli (logits; BCE summed over pixels) or Gaussian with one learned standard deviation shared by all
features (``gaussian_decoder``; its log is ``AEOutput.log_scale``, the Gaussian NLL reads it). With
``dynamic_binarization`` each training batch is resampled as Bernoulli(x) and that sample is also the target
(Burda et al. 2015's dynamically binarized MNIST); evaluation data is binarized once, outside the model.

Convolutional encoder (``channels``, with ``image_shape``): the conv stages of :mod:`aekit.nn.conv` (each followed
by the activation), flattened, then the dense ``hidden_layers`` and the two heads; the decoder mirrors it (dense
layers back to the last maps' size, then the transposed convolutions, whose last layer gives logits).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import DataError
from ..nn.chain import DenseChain, DenseLayer, VariationalChain, supports
from ..nn.conv import (
    as_images,
    conv_encoder,
    conv_shapes,
    conv_stages,
    transposed_decoder,
)
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
        image_shape: Sequence[int] | None = None,
        channels: Sequence[int] | None = None,
        kernel_sizes: int | Sequence[int] = 3,
        strides: int | Sequence[int] = 2,
        pool_sizes: int | Sequence[int] = 1,
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
        flat = int(n_features)  # what the dense layers see: the rows, or the last feature maps flattened
        self.n_conv = 0
        if channels:
            stages = conv_stages(channels, kernel_sizes, strides, pool_sizes)
            self.shapes = conv_shapes(image_shape, stages)  # [(C, H, W) of the input, after stage 0, ...]
            if math.prod(self.shapes[0]) != int(n_features):
                raise DataError(f"rows have {n_features} features, but image_shape {tuple(image_shape)} holds "
                                f"{math.prod(self.shapes[0])} values")
            self.config.update(image_shape=list(self.shapes[0]), channels=[s.out_channels for s in stages],
                               kernel_sizes=[s.kernel_size for s in stages], strides=[s.stride for s in stages],
                               pool_sizes=[s.pool for s in stages])
            self.n_conv, flat = len(stages), math.prod(self.shapes[-1])
        sizes = [flat, *hidden_layers]
        self.encoder = linear_layers(sizes, init, generator)
        self.mean = nn.Linear(sizes[-1], int(latent_dim))
        self.logvar = nn.Linear(sizes[-1], int(latent_dim))
        for head in (self.mean, self.logvar):
            init_linear_(head.weight, head.bias, "xavier", generator)
        self.decoder = linear_layers([int(latent_dim), *reversed(sizes)], init, generator)
        if self.n_conv:  # conv blocks first in the encoder, transposed layers last in the decoder
            self.encoder = nn.ModuleList([*conv_encoder(self.shapes[0], stages, init, generator), *self.encoder])
            self.decoder.extend(transposed_decoder(self.shapes, stages, init, generator))
        # log of the Gaussian decoder's standard deviation, one for all features (per-pixel scales collapse on
        # MNIST's always-black border pixels)
        self.log_scale = nn.Parameter(torch.zeros(())) if gaussian_decoder else None

    def encode_distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n_conv:
            x = as_images(x, self.shapes[0])
            for block in self.encoder[: self.n_conv]:
                x = self.act(block(x))
            x = x.flatten(1)  # (batch, C * h * w)
        for layer in self.encoder[self.n_conv :]:
            x = self.act(layer(x))
        return self.mean(x), self.logvar(x)  # (batch, latent) each

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_distribution(x)[0]  # the mean: deterministic codings for transform

    def variational_chain(self) -> VariationalChain | None:
        """The model for the hand-written fast path (:class:`~aekit.nn.chain.VariationalChain`), or None where it
        does not apply: conv layers, a Gaussian decoder, an activation without a hand-written derivative, or a
        subclass that computes something else."""
        own = all(getattr(type(self), name) is getattr(VariationalAutoencoder, name)
                  for name in ("encode_distribution", "decode", "forward"))
        act = self.config["activation"]
        if self.n_conv or self.log_scale is not None or not own or not (supports(act) and supports(self.output_activation)):
            return None
        last = len(self.decoder) - 1
        return VariationalChain(
            DenseChain([DenseLayer(layer.weight, layer.bias, act) for layer in self.encoder]),
            DenseLayer(self.mean.weight, self.mean.bias, "linear"),
            DenseLayer(self.logvar.weight, self.logvar.bias, "linear"),
            DenseChain([DenseLayer(layer.weight, layer.bias, act if j < last else "linear")
                        for j, layer in enumerate(self.decoder)], self.output_activation),
            beta=self.config["beta"], binarize=self.config["dynamic_binarization"])

    def decode(self, codings: torch.Tensor) -> torch.Tensor:
        h = codings
        first_transposed = len(self.decoder) - self.n_conv
        for j, layer in enumerate(self.decoder):
            if self.n_conv and j == first_transposed:
                h = h.view(len(h), *self.shapes[-1])  # (batch, C, h, w)
            h = layer(h)
            if j < len(self.decoder) - 1:
                h = self.act(h)
        return h.flatten(1)  # logits (batch, features)

    def forward(self, x: torch.Tensor) -> AEOutput:
        target = None
        if self.training and self.config["dynamic_binarization"]:
            x = target = torch.bernoulli(x)  # a fresh binary image per batch, reconstructed as drawn
        mu, logvar = self.encode_distribution(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # reparameterization
        kl = gaussian_kl(mu, logvar).mean()
        return AEOutput(self.decode(z), mu, self.output_activation, terms={"kl": self.config["beta"] * kl},
                        target=target, log_scale=self.log_scale)
