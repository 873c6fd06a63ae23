"""Stacked (deep) fully connected autoencoders, with optional tied weights; a linear one is PCA.

Hinton & Salakhutdinov (2006), "Reducing the dimensionality of data with neural networks"; tied weights as in
Géron, Hands-On ML ch. 15 (decoder layer N-L+1 uses W_L transposed); linear AE = PCA (Baldi & Hornik 1989).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AekitError
from ..nn.layers import activation as get_activation
from ..nn.layers import linear_layers
from ..registry import register_model
from .base import AutoencoderModule


@register_model("dense")
class DenseAutoencoder(AutoencoderModule):
    """``n_features - hidden_layers... - reversed(hidden_layers[:-1]) - n_features``.

    With ``tie_weights`` the decoder has only biases: decoder layer j multiplies by the transposed weight of the
    mirrored encoder layer inside the matmul (no copy), so the weight count halves.
    """

    def __init__(
        self,
        n_features: int,
        hidden_layers: Sequence[int],
        activation: str = "elu",
        init: str = "he",
        tie_weights: bool = False,
        output_activation: str = "linear",
        coding_activation: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        hidden_layers = [int(h) for h in hidden_layers]
        if not hidden_layers or min(hidden_layers) < 1:
            raise AekitError(f"hidden_layers must be a non-empty list of positive sizes, got {hidden_layers}")
        if output_activation not in ("linear", "sigmoid"):
            raise AekitError(f"output_activation must be 'linear' or 'sigmoid', got {output_activation!r}")
        self.config = dict(
            n_features=int(n_features), hidden_layers=hidden_layers, activation=activation, init=init,
            tie_weights=bool(tie_weights), output_activation=output_activation, coding_activation=coding_activation,
        )
        self.output_activation = output_activation
        self.act = get_activation(activation)
        self.coding_act = get_activation(coding_activation or activation)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        sizes = [int(n_features), *hidden_layers]
        self.encoder = linear_layers(sizes, init, generator)
        if tie_weights:
            # decoder layer j mirrors encoder layer -1-j; biases are never tied
            self.decoder_biases = nn.ParameterList(nn.Parameter(torch.zeros(n)) for n in reversed(sizes[:-1]))
        else:
            self.decoder = linear_layers(sizes[::-1], init, generator)

    @property
    def tie_weights(self) -> bool:
        return self.config["tie_weights"]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.encoder) - 1
        for i, layer in enumerate(self.encoder):
            x = (self.coding_act if i == last else self.act)(layer(x))
        return x  # (batch, latent)

    def decode(self, codings: torch.Tensor) -> torch.Tensor:
        h = codings
        n = len(self.encoder)
        for j in range(n):
            if self.tie_weights:
                # (batch, out_j) @ (out_j, in_j): W of encoder layer n-1-j used transposed, no copy
                h = torch.addmm(self.decoder_biases[j], h, self.encoder[n - 1 - j].weight)
            else:
                h = self.decoder[j](h)
            if j < n - 1:
                h = self.act(h)
        return h  # logits (batch, features)
