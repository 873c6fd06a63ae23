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

from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..data.binarize import bernoulli
from ..errors import DataError
from ..estimators.base import AutoencoderEstimator, Sampling, generator_from
from ..estimators.parts import Binarization, Conv, ImageShape, Layers, Reconstruction, Training, latent_dim
from ..nn.chain import DenseChain, DenseLayer, VariationalChain, up
from ..nn.conv import (
    as_images,
    conv_encoder,
    conv_geometry,
    transposed_decoder,
)
from ..nn.layers import activation as get_activation
from ..nn.layers import check_sizes, init_linear_, linear_layers
from ..params import Param, non_negative_float, non_negative_int
from ..registry import register_estimator, register_model
from ..training.executors import VARIATIONAL_CHAIN
from .base import AEOutput, AutoencoderModule


LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last axis (broadcasting the leading ones)."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row: (batch,)."""
    return 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum(dim=1)


def _examples(activations):
    """Small float64 dense VAEs for every hand-written configuration (tests/test_common.py)."""
    from .dense import _perturbed

    for act in activations:
        for output, beta, binarize in (("sigmoid", 1.0, False), ("linear", 1.0, False), ("sigmoid", 0.3, True)):
            yield (f"vae {act} out={output} beta={beta} binarize={binarize}",
                   _perturbed(VariationalAutoencoderModule(12, [9, 7], latent_dim=3, activation=act,
                                                           output_activation=output, beta=beta,
                                                           dynamic_binarization=binarize, seed=0)))


@VARIATIONAL_CHAIN.allow(examples=_examples)
@register_model("vae")
class VariationalAutoencoderModule(AutoencoderModule):
    """The VAE's math: Gaussian encoder (mean and log-variance heads), reparameterized codings, the decoder (logits;
    a learned scale for the Gaussian decoder), the KL term as the model's own loss term."""

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
        free_bits: float = 0.0,
        image_shape: Sequence[int] | None = None,
        channels: Sequence[int] | None = None,
        kernel_sizes: int | Sequence[int] = 3,
        strides: int | Sequence[int] = 2,
        pool_sizes: int | Sequence[int] = 1,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        hidden_layers = [int(h) for h in hidden_layers]
        check_sizes("latent_dim", [latent_dim])
        if hidden_layers:
            check_sizes("hidden_layers", hidden_layers)
        self.config = dict(n_features=int(n_features), hidden_layers=hidden_layers, latent_dim=int(latent_dim),
                           activation=activation, init=init, output_activation=output_activation, beta=float(beta),
                           gaussian_decoder=bool(gaussian_decoder), dynamic_binarization=bool(dynamic_binarization))
        if free_bits:
            self.config["free_bits"] = float(free_bits)
        self.kl_weight = 1.0  # the KL term's weight now: KL warm-up raises it to 1 over the first epochs
        self.output_activation = output_activation
        self.act = get_activation(activation)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        flat = int(n_features)  # what the dense layers see: the rows, or the last feature maps flattened
        self.n_conv = 0
        if channels:
            # shapes: [(C, H, W) of the input, after stage 0, ...]
            stages, self.shapes, geometry = conv_geometry(image_shape, channels, kernel_sizes, strides, pool_sizes,
                                                          n_features)
            self.config.update(geometry)
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

    @property
    def n_features(self) -> int:
        return self.config["n_features"]

    @property
    def n_codings(self) -> int:
        return self.config["latent_dim"]

    def encode_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's last hidden layer (what the heads read): conv blocks, flattened, then the dense layers."""
        if self.n_conv:
            x = as_images(x, self.shapes[0])
            for block in self.encoder[: self.n_conv]:
                x = self.act(block(x))
            x = x.flatten(1)  # (batch, C * h * w)
        for layer in self._dense_encoder():
            x = layer(x)
        return x

    def encode_distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encode_hidden(x)
        # (batch, latent) each; float32 in a mixed precision, as the chain's heads: the sampling and the KL term
        # are not computed in bfloat16
        return up(self.mean(h)), up(self.logvar(h))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_distribution(x)[0]  # the mean: deterministic codings for transform

    def _dense_encoder(self) -> list[DenseLayer]:
        """The dense encoder layers (after any conv blocks) as layer specs: the math of both executors."""
        act = self.config["activation"]
        return [DenseLayer(layer.weight, layer.bias, act, module=layer) for layer in self.encoder[self.n_conv:]]

    def _dense_decoder(self) -> list[DenseLayer]:
        """The dense decoder layers (before any transposed convolutions); the last of a dense model gives logits."""
        act, n_dense = self.config["activation"], len(self.decoder) - self.n_conv
        last = len(self.decoder) - 1
        return [DenseLayer(layer.weight, layer.bias, act if j < last else "linear", module=layer)
                for j, layer in enumerate(self.decoder[:n_dense])]

    def variational_chain(self) -> VariationalChain | None:
        """The model as a :class:`~aekit.nn.chain.VariationalChain` (the same layer specs ``encode_distribution``
        and ``decode`` run), or None where the model's math is not a chain of dense layers: conv layers, a Gaussian
        decoder's learned scale."""
        if self.n_conv or self.log_scale is not None or self.config.get("free_bits"):
            return None
        return VariationalChain(
            DenseChain(self._dense_encoder()),
            DenseLayer(self.mean.weight, self.mean.bias, "linear"),
            DenseLayer(self.logvar.weight, self.logvar.bias, "linear"),
            DenseChain(self._dense_decoder(), self.output_activation),
            beta=self.config["beta"], binarize=self.config["dynamic_binarization"], kl_weight=lambda: self.kl_weight)

    def decode(self, codings: torch.Tensor) -> torch.Tensor:
        h = codings
        for layer in self._dense_decoder():
            h = layer(h)
        if self.n_conv:
            h = h.view(-1, *self.shapes[-1])  # (batch, C, h, w)
            transposed = self.decoder[len(self.decoder) - self.n_conv:]
            for j, layer in enumerate(transposed):
                h = layer(h)
                if j < len(transposed) - 1:
                    h = self.act(h)
        return h.flatten(1)  # logits (batch, features)

    def decode_rows(self, z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The decoder's logits for codings ``z`` of ``rows`` (a conditional family reads the rows' labels)."""
        return self.decode(z)

    def sample_codings(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of the prior N(0, I), (n, latent), on the CPU."""
        return torch.randn(n, self.n_codings, generator=generator)

    # -- the latent model: what a family changes (its prior, its latent loss terms) -------------------------------
    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) of codings (..., latent) -> (...): the standard normal."""
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)

    def kl_estimate(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per row, (batch,), given a draw ``z`` of q: analytic for the standard normal prior
        (``z`` unused); a family with another prior returns the one-sample estimate log q(z|x) - log p(z)."""
        return gaussian_kl(mu, logvar)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def latent_terms(self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                     z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model's own loss terms for a batch (each a scalar, already weighted): the VAE's is
        ``beta * kl_weight * KL``."""
        return {"kl": self.config["beta"] * self.kl_weight * self.batch_kl(mu, logvar, z)}

    def batch_kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The batch-mean KL the loss sees: with free bits (Kingma et al. 2016) each latent unit's batch-mean
        KL counts at least ``free_bits`` nats (the standard normal prior's per-unit KL)."""
        free_bits = self.config.get("free_bits", 0.0)
        if free_bits:
            per_unit = 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).mean(dim=0)
            return per_unit.clamp(min=free_bits).sum()
        return self.kl_estimate(mu, logvar, z).mean()

    def forward(self, x: torch.Tensor) -> AEOutput:
        target = None
        if self.training and self.config["dynamic_binarization"]:
            x = target = bernoulli(x)  # a fresh binary image per batch, reconstructed as drawn
        mu, logvar = self.encode_distribution(x)
        z = self.reparameterize(mu, logvar)
        return AEOutput(self.decode(z), mu, self.output_activation, terms=self.latent_terms(x, mu, logvar, z),
                        target=target, log_scale=self.log_scale)


@register_estimator("VariationalAutoencoder", cli="vae")
class VariationalAutoencoder(Sampling, AutoencoderEstimator):
    """A variational autoencoder (Gaussian encoder; Bernoulli decoder with BCE from logits by default), dense or
    convolutional.

    The loss per image is the negative ELBO: reconstruction cross-entropy summed over pixels plus ``beta`` times
    the analytic KL to N(0, I). Defaults (measured on MNIST, docs/results.md): 784-500-500-50, dynamic binarization
    for a Bernoulli decoder, batch 100, Adam 2e-3 with a cosine decay; the book's model is 784-500-500-20, He,
    Adam 1e-3 constant, batch 150, no binarization (~97.6 nats after 50 epochs).
    ``transform`` gives the posterior means; ``sample(n)`` decodes codings drawn from the prior; also
    :meth:`interpolate`, :meth:`log_likelihood` (importance sampling) and :meth:`elbo`.
    """

    model_name = "vae"
    reduction = "sum"  # per-image sums: the loss is the negative ELBO in nats
    positional = ("hidden_layers",)
    own_params = (
        latent_dim(50),
        Param("beta", 1.0, non_negative_float(), "Weight of the KL term (1: the ELBO; beta-VAE otherwise).",
              type="float"),
        Param("kl_warmup", 0, non_negative_int(),
              "KL warm-up (Bowman et al. 2016, Sønderby et al. 2016): over the first ``kl_warmup`` epochs the KL "
              "term's weight rises linearly, 1/(W+1), 2/(W+1), ..., then stays at 1 (times ``beta``); each "
              "epoch's record holds it as ``kl_weight``. 0: none.", type="int"),
        Param("free_bits", 0.0, non_negative_float(),
              "Free bits (Kingma et al. 2016): each latent unit's batch-mean KL counts at least this many nats in "
              "the loss, so the encoder is not pushed to switch units off below it (the ELBO reported by "
              ":meth:`elbo` is unchanged). 0: none; > 0 trains through autograd.", type="float"),
    )
    parts = (
        # MNIST, 30 epochs from the command line, the other defaults below: 784-1000-1000-50 gave 87.95 nats of
        # IS-NLL on the binarized test set against 88.23 for 784-500-500-50, at 2.5x the epoch time
        # (docs/results.md); the families that take the VAE's parts take this network too
        Layers(hidden_layers=(1000, 1000)),
        Reconstruction("auto", ("bce", "gaussian", "mse"), auto="gaussian",
                       doc="The decoder: ``\"bce\"`` Bernoulli (sigmoid outputs; X in [0, 1]); ``\"gaussian\"`` "
                           "Gaussian with linear means and one learned standard deviation; ``\"mse\"`` the summed "
                           "squared error (no density: no :meth:`log_likelihood`)."),
        Binarization(),
        Conv(channels=(32, 64)),
        ImageShape(),
        # MNIST, 30 epochs from the command line, IS-NLL on the binarized test set (docs/results.md): the book's
        # latent 20, batch 150, Adam 1e-3 constant gave 94.47 nats; latent 50 with dynamic binarization 89.04
        # (1,000 test rows); + batch 100, Adam 2e-3 and a cosine decay 87.40 (88.23 on all 10,000)
        Training(batch_size=100, learning_rate=2e-3, lr_schedule="cosine"),
    )

    def _model_config(self, n_features: int) -> dict[str, Any]:
        return dict(n_features=n_features, hidden_layers=list(self.hidden_layers), latent_dim=self.latent_dim,
                    activation=self.activation, init=Layers.resolved_init(self), output_activation=self._output_activation(),
                    beta=self.beta, gaussian_decoder=self.loss_ == "gaussian",
                    dynamic_binarization=self.binarize_ == "dynamic", free_bits=self.free_bits,
                    **self.part(Conv).config(self))

    def _training_callbacks(self, model: torch.nn.Module, total: int) -> list:
        from ..training.schedules import KLWarmup

        return [KLWarmup(model, self.kl_warmup)] if self.kl_warmup else []

    def interpolate(self, a: Any, b: Any, steps: int = 10) -> np.ndarray:
        """Decode ``steps`` codings evenly spaced on the segment between the posterior means of ``a`` and ``b``
        (both ends included): (steps, n_features) for two rows, (n, steps, n_features) for two (n, n_features)
        arrays."""
        check_is_fitted(self, "model_")
        if steps < 2:
            raise DataError(f"steps must be >= 2 (both ends are included), got {steps}")
        single = np.ndim(a) == 1
        A, B = (self._validate(np.atleast_2d(v), reset=False) for v in (a, b))
        if A.shape != B.shape:
            raise DataError(f"a and b must have the same shape, got {A.shape} and {B.shape}")
        za, zb = self.transform(A), self.transform(B)  # (n, latent) each
        t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
        path = ((1 - t) * za[:, None] + t * zb[:, None]).reshape(-1, za.shape[1])  # (n * steps, latent)
        out = self.inverse_transform(path).reshape(len(A), steps, -1)
        return out[0] if single else out

    def log_likelihood(self, X: Any, k: int = 5000, *, random_state: Any = None,
                       max_pairs: int = 16384) -> np.ndarray:
        """Importance-sampled log p(x) per row in nats (Burda et al. 2015, encoder as the proposal; ``k``
        samples per row; see :func:`aekit.evaluation.importance_log_likelihood`). Memory is bounded by
        ``max_pairs`` (row, sample) pairs per pass. -mean is the test NLL; with binarized training, pass binarized
        rows (``aekit.data.binarize``)."""
        from ..evaluation import importance_log_likelihood

        check_is_fitted(self, "model_")
        X = self._validate(X, reset=False)
        ll = importance_log_likelihood(self.model_, self._to_tensor(X), int(k), loss=self.loss_, max_pairs=max_pairs,
                                       generator=generator_from(random_state))
        return ll.cpu().numpy()

    def elbo(self, X: Any, n_samples: int = 1, *, random_state: Any = None) -> np.ndarray:
        """The evidence lower bound per row (nats): Monte Carlo reconstruction term over ``n_samples`` codings,
        analytic KL. ``-elbo(X).mean()`` is the test loss of a beta = 1 model."""
        from ..evaluation import elbo

        check_is_fitted(self, "model_")
        X = self._validate(X, reset=False)
        return elbo(self.model_, self._to_tensor(X), n_samples, loss=self.loss_,
                    generator=generator_from(random_state)).cpu().numpy()
