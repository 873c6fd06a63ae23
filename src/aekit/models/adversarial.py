"""Adversarial autoencoders (Makhzani, Shlens, Jaitly, Goodfellow & Frey 2016, "Adversarial Autoencoders").

A deterministic encoder and a decoder trained to reconstruct; a discriminator tells codings from samples of a prior
p(z), and the encoder learns to fool it, so the codings' aggregate distribution q(z) comes to match p(z) and
decoding prior samples generates data. The alternating updates (reconstruction, then discriminator, then encoder as
generator) are :class:`aekit.training.adversarial.AdversarialStep`.

Priors (``prior=``): ``"gaussian"`` or ``"gaussian:STD"`` (N(0, STD^2 I)); ``"mixture:K[:RADIUS[:STD]]"``, K equal
Gaussians whose means lie evenly on a circle of radius RADIUS (default 4) in the first two coding dimensions (zero
in the others), each N(mean, STD^2 I) (default STD 0.5): the paper's 10 components on a circle in 2-D.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..errors import ConfigError
from ..estimators.base import AutoencoderEstimator, Sampling, generator_from
from ..estimators.parts import ImageShape, Layers, Reconstruction, Training, int_list, latent_dim
from ..nn.layers import activation as get_activation
from ..nn.layers import check_sizes, linear_layers
from ..params import Flag, Param, positive_float
from ..registry import register_estimator, register_model
from .base import AEOutput, AutoencoderModule
from .dense import DenseAutoencoder


@dataclass(frozen=True)
class Prior:
    """p(z): ``components`` means (K, latent) and one shared ``std``; K = 1 with a zero mean is N(0, std^2 I)."""

    means: torch.Tensor  # (K, latent)
    std: float

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
        """``n`` draws, (n, latent); from torch's global RNG unless a (CPU) ``generator`` is given."""
        k, latent = self.means.shape
        which = torch.randint(k, (n,), generator=generator) if k > 1 else torch.zeros(n, dtype=torch.long)
        z = self.means[which] + self.std * torch.randn(n, latent, generator=generator)
        return z.to(device)


def parse_prior(spec: str, latent_dim: int) -> Prior:
    """``"gaussian[:STD]"`` or ``"mixture:K[:RADIUS[:STD]]"`` -> :class:`Prior` over ``latent_dim`` dimensions."""
    kind, *values = str(spec).split(":")
    try:
        numbers = [float(v) for v in values]
        if kind == "gaussian" and len(numbers) <= 1 and all(v > 0 for v in numbers):
            return Prior(torch.zeros(1, latent_dim), numbers[0] if numbers else 1.0)
        if kind == "mixture" and 1 <= len(numbers) <= 3 and numbers[0] >= 1 and numbers[0] == int(numbers[0]) \
                and all(v > 0 for v in numbers[1:]):
            if latent_dim < 2:
                raise ConfigError(f"prior={spec!r} puts its means on a circle: it needs latent_dim >= 2")
            k, radius, std = int(numbers[0]), *(numbers[1:] + [4.0, 0.5][len(numbers) - 1:])
            angles = torch.arange(k, dtype=torch.float32) * (2 * math.pi / k)
            means = torch.zeros(k, latent_dim)
            means[:, 0], means[:, 1] = radius * torch.cos(angles), radius * torch.sin(angles)
            return Prior(means, std)
    except ValueError:
        pass
    raise ConfigError(f"prior={spec!r} is not understood; use 'gaussian', 'gaussian:STD', or 'mixture:K', "
                      "'mixture:K:RADIUS', 'mixture:K:RADIUS:STD' (e.g. 'mixture:10')")


class Discriminator(nn.Module):
    """An MLP from codings to one logit: high for prior samples, low for codings."""

    def __init__(self, latent_dim: int, hidden_layers: Sequence[int], activation: str, init: str,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.act = get_activation(activation)
        self.layers = linear_layers([int(latent_dim), *map(int, hidden_layers), 1], init, generator)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (batch, latent) -> (batch,)
        for layer in self.layers[:-1]:
            z = self.act(layer(z))
        return self.layers[-1](z).squeeze(-1)


@register_model("aae")
class AdversarialAutoencoderModule(AutoencoderModule):
    """``autoencoder``: a :class:`DenseAutoencoder` ``n_features - hidden_layers - latent_dim`` (linear codings) and
    its mirror; ``discriminator``: codings ``- discriminator_layers - 1``; ``prior``: p(z)."""

    def __init__(
        self,
        n_features: int,
        hidden_layers: Sequence[int],
        latent_dim: int,
        discriminator_layers: Sequence[int] = (1000, 1000),
        activation: str = "relu",
        init: str = "he",
        output_activation: str = "sigmoid",
        prior: str = "gaussian",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        hidden_layers = [int(h) for h in hidden_layers]
        discriminator_layers = check_sizes("discriminator_layers", discriminator_layers)
        check_sizes("latent_dim", [latent_dim])
        self.config = dict(n_features=int(n_features), hidden_layers=hidden_layers, latent_dim=int(latent_dim),
                           discriminator_layers=discriminator_layers, activation=activation, init=init,
                           output_activation=output_activation, prior=str(prior))
        self.prior = parse_prior(prior, int(latent_dim))
        self.output_activation = output_activation
        self.autoencoder = DenseAutoencoder(n_features, [*hidden_layers, int(latent_dim)], activation=activation,
                                            init=init, output_activation=output_activation,
                                            coding_activation="linear", seed=seed)
        generator = torch.Generator().manual_seed(seed + 1) if seed is not None else None
        self.discriminator = Discriminator(int(latent_dim), discriminator_layers, activation, init, generator)

    @property
    def encoder(self) -> nn.ModuleList:  # the layers figures read (aekit.viz)
        return self.autoencoder.encoder

    @property
    def n_codings(self) -> int:
        return self.config["latent_dim"]

    def sample_codings(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of the prior p(z), (n, latent), on the CPU."""
        return self.prior.sample(n, generator=generator)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(x)  # (batch, latent)

    def decode(self, codings: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(codings)  # logits

    def forward(self, x: torch.Tensor) -> AEOutput:
        return self.autoencoder(x)

    def regularized_weights(self) -> list[nn.Parameter]:
        """L2 applies to the autoencoder's weights; the discriminator is not regularized."""
        return self.autoencoder.regularized_weights()


ADVERSARIAL_BETAS = (0.5, 0.999)


@register_estimator("AdversarialAutoencoder", cli="aae")
class AdversarialAutoencoder(Sampling, AutoencoderEstimator):
    """An adversarial autoencoder (Makhzani et al. 2016): a deterministic encoder whose codings a discriminator
    learns to tell from prior samples while the encoder learns to fool it; new data = decoded prior samples.

    Each batch makes three updates (see :class:`aekit.training.adversarial.AdversarialStep`): reconstruction
    (encoder + decoder; ``optimizer`` at ``learning_rate``), discriminator (``discriminator_learning_rate``) and
    generator (the encoder; ``generator_learning_rate``), the last two with Adam, beta1 = 0.5 (Radford et al.
    2016's setting for adversarial updates). ``history_`` records ``reconstruction``, ``discriminator``,
    ``generator`` and ``prior_accuracy`` (near 0.5 when the codings look like prior samples).
    """

    model_name = "aae"
    positional = ("hidden_layers",)
    own_params = (
        latent_dim(8),
        Param("discriminator_layers", (1000, 1000), ["array-like"], "Hidden layers of the discriminator.",
              type="sequence of int", flag=Flag("--discriminator", parse=int_list), small=(4,)),
        Param("prior", "gaussian", [str],
              "``\"gaussian\"``, ``\"gaussian:STD\"``, ``\"mixture:K[:RADIUS[:STD]]\"`` (K Gaussians on a circle in "
              "the first two coding dimensions; see :mod:`aekit.models.adversarial`).", type="str"),
        Param("discriminator_learning_rate", 1e-4, positive_float(), "The discriminator's learning rate.",
              type="float", flag=Flag("--discriminator-lr")),
        Param("generator_learning_rate", 5e-4, positive_float(),
              "The encoder's learning rate against the discriminator. The two sides of the game need different "
              "speeds. On MNIST (784-1000-1000-8, batch 100, reconstruction Adam 1e-3): with 1e-3 for all three "
              "(beta1 0.9) the two chase each other (discriminator loss ~3); with 1e-4 for both the discriminator "
              "wins (95% right after 30 epochs, codings no longer like the prior); 1e-4 / 5e-4 with beta1 0.5 holds "
              "the game at ~50% with codings' mean ~0 and std ~1 per dimension.", type="float",
              flag=Flag("--generator-lr")),
    )
    parts = (
        Layers(hidden_layers=(1000, 1000), activation="relu"),
        Reconstruction("auto", ("bce", "mse"), doc="Reconstruction loss, averaged over features.", auto="mse"),
        ImageShape(),
        Training(batch_size=100),
    )

    def _model_config(self, n_features: int) -> dict[str, Any]:
        return dict(n_features=n_features, hidden_layers=list(self.hidden_layers), latent_dim=self.latent_dim,
                    discriminator_layers=list(self.discriminator_layers), activation=self.activation,
                    init=Layers.resolved_init(self), output_activation=self._output_activation(), prior=self.prior)

    def _check_X(self, X: np.ndarray) -> None:
        parse_prior(self.prior, self.latent_dim)  # a malformed prior fails before any training
        super()._check_X(X)

    def _make_step(self, model: AutoencoderModule):
        from ..training import make_optimizer
        from ..training.adversarial import AdversarialStep, OptimizerSet

        encoder = [p for layer in model.encoder for p in layer.parameters()]
        optimizers = OptimizerSet(
            autoencoder=make_optimizer(self.optimizer, model.autoencoder.parameters(), model.regularized_weights(),
                                       self.learning_rate, self.l2, clip_grad_norm=self.clip_grad_norm),
            discriminator=make_optimizer("adam", model.discriminator.parameters(), [],
                                         self.discriminator_learning_rate, betas=ADVERSARIAL_BETAS,
                                         clip_grad_norm=self.clip_grad_norm),
            generator=make_optimizer("adam", encoder, [], self.generator_learning_rate, betas=ADVERSARIAL_BETAS,
                                     clip_grad_norm=self.clip_grad_norm),
        )
        return AdversarialStep(model, self._objective(), optimizers, self._precision())

    def sample_prior(self, n: int, random_state: Any = None) -> np.ndarray:
        """``n`` draws of the prior p(z), (n, latent_dim): compare them with ``transform(X)``."""
        check_is_fitted(self, "model_")
        return self.model_.sample_codings(n, generator_from(random_state)).numpy()
