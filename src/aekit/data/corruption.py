"""Input corruption for denoising autoencoders (Vincent et al. 2008, 2010; Géron ch. 15): applied to the inputs in
training only, while the target stays clean.

Specs: ``"gaussian:STD"`` (x + N(0, STD^2)), ``"dropout:RATE"`` (inverted dropout on the inputs, the book's
``tf.layers.dropout``), ``"mask:RATE"`` (masking noise: zero a fraction, no rescaling), ``"saltpepper:RATE"`` (a
fraction set to 0 or 1 at random). Randomness comes from torch's global RNG, which the estimators seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .binarize import bernoulli


@dataclass(frozen=True)
class Corruption:
    kind: str
    amount: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "gaussian":
            return x + self.amount * torch.randn_like(x)
        if self.kind == "dropout":
            return F.dropout(x, self.amount, training=True)
        keep = torch.rand_like(x) >= self.amount
        if self.kind == "mask":
            return x * keep
        return torch.where(keep, x, bernoulli(torch.full_like(x, 0.5)))  # salt-and-pepper


_KINDS = {"gaussian": (0.0, float("inf")), "dropout": (0.0, 1.0), "mask": (0.0, 1.0), "saltpepper": (0.0, 1.0)}


def parse_noise(spec: str | None) -> Corruption | None:
    """``"gaussian:0.1"`` -> :class:`Corruption`; ``None``/``""``/``"none"`` -> None."""
    if spec in (None, "", "none"):
        return None
    kind, _, value = str(spec).partition(":")
    try:
        amount = float(value)
    except ValueError:
        amount = float("nan")
    if kind not in _KINDS or not (_KINDS[kind][0] <= amount < _KINDS[kind][1]):
        raise ConfigError(
            f"noise={spec!r} is not understood; use gaussian:STD (STD >= 0), dropout:RATE, mask:RATE or "
            "saltpepper:RATE (0 <= RATE < 1), e.g. noise='gaussian:0.1'"
        )
    return Corruption(kind, amount)
