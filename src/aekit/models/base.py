"""What every autoencoder module provides, so that the one training loop and the estimators need not know which
family they hold: ``encode``, ``decode`` (to logits), ``forward`` -> :class:`AEOutput`, ``regularized_weights``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from ..nn.chain import up
from ..nn.layers import activation
from ..registry import get_model_class


@dataclass
class AEOutput:
    """One forward pass. ``logits`` are the decoder's pre-activation outputs (BCE works on them directly)."""

    logits: torch.Tensor  # (batch, features)
    codings: torch.Tensor  # (batch, latent), as the encoder gives them (before any winner-take-all)
    output_activation: str = "linear"
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # loss terms the model itself is responsible for
    # what to reconstruct when the module transforms its own inputs first (a greedy phase without a cache)
    target: torch.Tensor | None = None
    # a Gaussian decoder's log standard deviation (scalar or per feature); the "gaussian" loss reads it
    log_scale: torch.Tensor | None = None

    @property
    def reconstruction(self) -> torch.Tensor:
        return activation(self.output_activation)(self.logits)

    def float32(self) -> AEOutput:
        """This output with every lower-precision tensor (bfloat16, float16) in float32: what a mixed-precision
        forward's loss is computed on (float32 and float64 stay as they are)."""
        return replace(self, logits=up(self.logits), codings=up(self.codings),
                       terms={k: up(v) for k, v in self.terms.items()}, target=up(self.target),
                       log_scale=up(self.log_scale))


class AutoencoderModule(nn.Module):
    """Base class. Subclasses set ``self.config`` (the keyword arguments that rebuild them) and implement
    ``encode`` and ``decode``."""

    config: dict[str, Any]
    output_activation: str = "linear"

    @property
    def n_codings(self) -> int:
        """The size of the codings ``encode`` returns."""
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (batch, features) -> (batch, latent)
        raise NotImplementedError

    def decode(self, codings: torch.Tensor) -> torch.Tensor:  # (batch, latent) -> logits (batch, features)
        raise NotImplementedError

    def output(self, logits: torch.Tensor) -> torch.Tensor:
        return activation(self.output_activation)(logits)

    def forward(self, x: torch.Tensor) -> AEOutput:
        codings = self.encode(x)
        return AEOutput(self.decode(self.constrain(codings)), codings, self.output_activation)

    def constrain(self, codings: torch.Tensor) -> torch.Tensor:
        """What the decoder sees of ``codings``: an optional ``coding_filter`` submodule (winner-take-all) acts on
        them, in training and at inference alike (the decoder only ever learned sparse codes)."""
        coding_filter = getattr(self, "coding_filter", None)
        return codings if coding_filter is None else coding_filter(codings)

    def reconstruction_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's logits for ``x``, through the coding constraint: what ``predict`` and the errors use."""
        return self.decode(self.constrain(self.encode(x)))

    def target_of(self, rows: torch.Tensor) -> torch.Tensor:
        """What the decoder reconstructs of ``rows``: all of it (a conditional family: not the label columns)."""
        return rows

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.reconstruction_logits(x))

    def regularized_weights(self) -> list[nn.Parameter]:
        """Parameters that L2 applies to: weight matrices and kernels, never biases (a tied decoder's weights are
        the encoder's, so they appear once)."""
        return [p for name, p in self.named_parameters() if name.endswith("weight")]


class LayerPairs(AutoencoderModule):
    """A stacked autoencoder made of layer pairs: pair ``k`` is encoder layer ``k`` (``encoder[k]``) with its mirror
    decoder layer; subclasses give ``pair_encode(x, k)`` and ``pair_decode(h, k)``. Greedy layer-wise training
    (:mod:`aekit.training.greedy`) trains one pair at a time."""

    encoder: nn.ModuleList

    @property
    def n_pairs(self) -> int:
        return len(self.encoder)

    @property
    def n_features(self) -> int:
        return self.config["n_features"]

    def pair_encode(self, x: torch.Tensor, k: int) -> torch.Tensor:
        raise NotImplementedError

    def pair_decode(self, h: torch.Tensor, k: int) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        for k in range(self.n_pairs):
            x = self.pair_encode(x, k)
        return x  # (batch, latent)

    def decode(self, codings: torch.Tensor) -> torch.Tensor:
        h = codings
        for k in reversed(range(self.n_pairs)):
            h = self.pair_decode(h, k)
        return h  # logits (batch, features)

    def encode_prefix(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Output of encoder layers ``0..k-1`` (the input of pair ``k``), flat."""
        for i in range(k):
            x = self.pair_encode(x, i)
        return x


def check_model_config(name: str, config: dict[str, Any]) -> int:
    """Build the model on the ``meta`` device (no memory is taken) and refuse it if its training state would not
    fit this machine (:func:`aekit.limits.check_model_size`); returns its parameter count."""
    from ..limits import check_model_size

    cls = get_model_class(name)
    with torch.device("meta"):
        n_parameters = sum(p.numel() for p in cls(**config).parameters())
    check_model_size(n_parameters, f"the {name} model")
    return n_parameters


def build_model(name: str, config: dict[str, Any]) -> AutoencoderModule:
    """Rebuild a registered model family from its saved ``config``; a configuration that would not fit in
    memory is refused before any weight is allocated."""
    check_model_config(name, config)
    model = get_model_class(name)(**config)
    model.registry_name = name
    return model
