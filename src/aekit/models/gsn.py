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

from collections.abc import Iterator, Sequence

import torch

from ..data.corruption import parse_noise
from ..errors import ConfigError
from ..registry import register_model
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
            return torch.bernoulli(mean.clamp(0.0, 1.0))
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
