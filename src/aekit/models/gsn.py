"""Generative stochastic networks from denoising autoencoders (Bengio, Yao, Alain & Vincent 2013, "Generalized
Denoising Auto-Encoders as Generative Models"; Bengio et al. 2014, "Deep Generative Stochastic Networks Trainable
by Backprop"; Alain et al. 2016).

A denoising autoencoder learns P(x | x~), x~ = C(x). Alternating corruption and sampling from P(x | x~) is a Markov
chain whose stationary distribution estimates the data's. Walkback training: from the corrupted input, take
``walkback`` corruption-reconstruction steps (each next input drawn from the previous reconstruction's output
distribution, no gradient through the draw) and score *every* reconstruction against the clean input, so that the
chain's own spurious modes get pushed back towards the data.

The first reconstruction is the model's output (the objective scores it as ``reconstruction``); the later ones are
the model's own term ``walkback`` (their summed losses, same reduction). Outside training the model is a plain
autoencoder of its clean input, as a denoising autoencoder is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ..data.binarize import bernoulli
from ..data.corruption import parse_noise
from ..errors import ConfigError, DataError
from ..estimators.base import AutoencoderEstimator, generator_from
from ..estimators.parts import (CodingActivation, ImageShape, Layers, Reconstruction, Regularizers, TiedWeights,
                                Training)
from ..params import Param, positive_int
from ..registry import register_estimator, register_model
from .base import AEOutput
from .dense import DenseAutoencoder


@register_model("gsn")
class GSNAutoencoder(DenseAutoencoder):
    """A :class:`DenseAutoencoder` with its corruption (``noise``), ``walkback`` steps and output distribution:
    Bernoulli for ``loss="bce"``, Gaussian for ``loss="mse"`` (standard deviation: the batch's root mean squared
    reconstruction error in training, given to :meth:`chain` when sampling)."""

    def __init__(
        self,
        n_features: int,
        hidden_layers: Sequence[int],
        activation: str = "tanh",
        init: str = "xavier",
        tie_weights: bool = False,
        output_activation: str = "sigmoid",
        coding_activation: str | None = None,
        noise: str = "saltpepper:0.4",
        walkback: int = 3,
        loss: str = "bce",
        seed: int | None = None,
    ) -> None:
        super().__init__(n_features, hidden_layers, activation=activation, init=init, tie_weights=tie_weights,
                         output_activation=output_activation, coding_activation=coding_activation, seed=seed)
        if parse_noise(noise) is None:
            raise ConfigError("a GSN needs a corruption to walk with: noise='saltpepper:0.4', 'gaussian:0.5', ...")
        if int(walkback) < 1:
            raise ConfigError(f"walkback must be >= 1 corruption-reconstruction steps, got {walkback}")
        if loss not in ("bce", "mse"):
            raise ConfigError(f"loss must be 'bce' (Bernoulli outputs) or 'mse' (Gaussian outputs), got {loss!r}")
        self.config = {k: v for k, v in self.config.items() if k != "wta"}
        self.config.update(noise=str(noise), walkback=int(walkback), loss=loss)
        self.corrupt = parse_noise(noise)

    def draw(self, logits: torch.Tensor, std: float | torch.Tensor = 0.0) -> torch.Tensor:
        """One draw from the output distribution P(x | x~) whose parameters are ``logits``."""
        mean = self.output(logits)
        if self.config["loss"] == "bce":
            return bernoulli(mean.clamp(0.0, 1.0))
        return mean + std * torch.randn_like(mean)

    def forward(self, x: torch.Tensor) -> AEOutput:
        if not self.training:
            return super().forward(x)
        # imported here: the losses package imports this one
        from ..losses.reconstruction import reconstruction_loss

        score = reconstruction_loss(self.config["loss"])
        output = super().forward(self.corrupt(x))  # step 1; the objective scores it against the clean x
        logits, walkback = output.logits, []
        for _ in range(self.config["walkback"] - 1):
            std = (self.output(logits) - x).pow(2).mean().sqrt().detach() if self.config["loss"] == "mse" else 0.0
            logits = self.decode(self.encode(self.corrupt(self.draw(logits.detach(), std))))
            walkback.append(score(AEOutput(logits, output.codings, self.output_activation), x))
        if walkback:
            output.terms["walkback"] = torch.stack(walkback).sum()
        return output

    @torch.no_grad()
    def chain(self, start: torch.Tensor, steps: int, std: float = 0.0) -> Iterator[torch.Tensor]:
        """Run the Markov chain from ``start`` (n, features): each step corrupts the state, reconstructs, and
        draws the next state from the output distribution; yields the reconstruction means, (n, features), one
        per step. Randomness comes from torch's global RNG."""
        x = start
        for _ in range(steps):
            logits = self.decode(self.encode(self.corrupt(x)))
            yield self.output(logits)
            x = self.draw(logits, std)


@register_estimator("GSN", cli="gsn")
class GSN(AutoencoderEstimator):
    """A generative stochastic network (Bengio et al. 2013, 2014): a denoising autoencoder trained with walkback.

    Training corrupts each clean batch with ``noise``, then makes ``walkback`` corruption-reconstruction steps,
    each next input drawn from the previous reconstruction's output distribution; every reconstruction is scored
    against the clean input (``history_``: ``reconstruction`` for the first step, ``walkback`` for the sum of the
    others). :meth:`sample_chain` runs the chain that generates; :meth:`sample` keeps its last state.
    """

    model_name = "gsn"
    positional = ("hidden_layers",)
    own_params = (
        Regularizers.params[0].replace(
            default="saltpepper:0.4", constraints=[str], type="str",
            doc="The chain's corruption C(x~ | x) (see :mod:`aekit.data.corruption`); required."),
        Param("walkback", 3, positive_int(),
              "Corruption-reconstruction steps per training batch (1: a plain denoising autoencoder).", type="int"),
    )
    parts = (
        Layers(hidden_layers=(2000,), activation="tanh", init="xavier"),
        CodingActivation(),
        TiedWeights(),
        Reconstruction("auto", ("bce", "mse"), doc="Bernoulli outputs (``\"bce\"``, X in [0, 1]) or Gaussian "
                                                    "outputs (``\"mse\"``).", auto="mse"),
        ImageShape(),
        Training(batch_size=100),
    )

    def _model_config(self, n_features: int) -> dict[str, Any]:
        return dict(n_features=n_features, hidden_layers=list(self.hidden_layers), activation=self.activation,
                    init=Layers.resolved_init(self), tie_weights=self.tie_weights, output_activation=self._output_activation(),
                    coding_activation=self.coding_activation, noise=self.noise, walkback=self.walkback,
                    loss=self.loss_)

    def _check_X(self, X: np.ndarray) -> None:
        if parse_noise(self.noise) is None:
            raise ConfigError("a GSN needs a corruption to walk with: noise='saltpepper:0.4', 'gaussian:0.5', ...")
        super()._check_X(X)

    # -- generating ----------------------------------------------------------------------------------------------
    def _output_std(self) -> float:
        """The Gaussian output's standard deviation for ``loss="mse"``: the root of the last epoch's denoising
        MSE (the maximum-likelihood scale of P(x | x~)); 0 for Bernoulli outputs."""
        if self.loss_ != "mse":
            return 0.0
        last = self.history_[-1] if self.history_ else {}
        return math.sqrt(last.get("reconstruction", 0.0))

    def sample_chain(self, n: int, steps: int = 100, *, start: Any = None, random_state: Any = None) -> np.ndarray:
        """Run ``n`` chains for ``steps`` steps (corrupt, reconstruct, draw from the output distribution) and
        return every step's reconstruction means: (steps, n, n_features).

        ``start``: (n, n_features) initial states; default uniform noise in [0, 1].
        """
        return self._run_chains(n, steps, start, random_state, every_step=True)

    def sample(self, n: int, steps: int = 100, *, random_state: Any = None) -> np.ndarray:
        """``n`` samples: the last reconstruction means of ``n`` chains run for ``steps`` steps, (n, n_features)
        (only the current state is kept: memory does not grow with ``steps``)."""
        return self._run_chains(n, steps, None, random_state, every_step=False)

    def _run_chains(self, n: int, steps: int, start: Any, random_state: Any, every_step: bool) -> np.ndarray:
        check_is_fitted(self, "model_")
        if steps < 1 or n < 1:
            raise DataError(f"n and steps must be >= 1, got n={n}, steps={steps}")
        generator = generator_from(random_state)
        if start is None:
            x = torch.rand(n, self.n_features_in_, generator=generator)
        else:
            x = torch.from_numpy(self._validate(start, reset=False))
            if len(x) != n:
                raise DataError(f"start has {len(x)} rows, but n={n} chains were asked for")
        self.model_.eval()
        devices = [self.device_] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(torch.randint(2**31 - 1, (), generator=generator)))
            kept = []
            for mean in self.model_.chain(x.to(self.device_), steps, self._output_std()):
                if every_step:
                    kept.append(mean.cpu())
                else:
                    kept = [mean.cpu()]
        return torch.stack(kept).numpy() if every_step else kept[-1].numpy()
