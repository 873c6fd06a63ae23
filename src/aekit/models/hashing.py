"""Semantic hashing autoencoder: a stacked autoencoder whose logistic coding layer is pushed to binary codes.

Salakhutdinov & Hinton (2008), "Semantic hashing": during training only, zero-mean Gaussian noise is added to the
coding layer's inputs (its pre-activations, before the sigmoid); to carry information through the noise the
encoder learns to saturate each coding unit at 0 or 1, so rounding the codings loses little. The hash of an item
is its codings rounded to bits. Géron, Hands-On ML ch. 15/17, exercise "semantic hashing".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import AekitError
from ..registry import register_model
from .dense import DenseAutoencoder


@register_model("hashing")
class HashingAutoencoder(DenseAutoencoder):
    """``n_features - hidden_layers - n_bits (sigmoid) - reversed(hidden_layers) - n_features``.

    ``noise_std`` is the standard deviation of the Gaussian noise added to the coding layer's pre-activations in
    training mode only (``model.training``); in eval mode the codings are deterministic.
    """

    def __init__(
        self,
        n_features: int,
        hidden_layers: Sequence[int] = (500, 250),
        n_bits: int = 30,
        activation: str = "elu",
        init: str = "he",
        noise_std: float = 2.0,
        output_activation: str = "sigmoid",
        tie_weights: bool = False,
        seed: int | None = None,
    ) -> None:
        hidden_layers = [int(h) for h in hidden_layers]
        if int(n_bits) < 1:
            raise AekitError(f"n_bits must be a positive number of bits, got {n_bits}")
        if not float(noise_std) >= 0:
            raise AekitError(f"noise_std must be >= 0, got {noise_std}")
        super().__init__(n_features, [*hidden_layers, int(n_bits)], activation=activation, init=init,
                         tie_weights=tie_weights, output_activation=output_activation, coding_activation="sigmoid",
                         seed=seed)
        # rebuilds this model (DenseAutoencoder reads tie_weights from here)
        self.config = dict(n_features=int(n_features), hidden_layers=hidden_layers, n_bits=int(n_bits),
                           activation=activation, init=init, noise_std=float(noise_std),
                           output_activation=output_activation, tie_weights=bool(tie_weights))
        self.noise_std = float(noise_std)

    @property
    def n_bits(self) -> int:
        return self.config["n_bits"]

    def coding_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations of the coding layer, without noise: (batch, n_bits). A bit is 1 where this is > 0."""
        for layer in self.encoder[:-1]:
            x = self.act(layer(x))
        return self.encoder[-1](x)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.coding_logits(x)
        if self.training and self.noise_std > 0:
            logits = logits + self.noise_std * torch.randn_like(logits)  # training only: drives codings to 0/1
        return torch.sigmoid(logits)  # (batch, n_bits)

    def bits(self, x: torch.Tensor) -> torch.Tensor:
        """The hash as booleans: codings rounded (coding > 0.5), noise-free. (batch, n_bits)."""
        return self.coding_logits(x) > 0
