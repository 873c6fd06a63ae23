"""Winner-take-all autoencoders (Makhzani & Frey 2015): lifetime sparsity. In training, each coding unit keeps
only its ``ceil(rate * batch)`` largest activations across the batch and the rest are zeroed; at inference the
codings pass unchanged."""

from __future__ import annotations

import math

import torch
from torch import nn


class LifetimeWTA(nn.Module):
    def __init__(self, rate: float) -> None:
        super().__init__()
        if not 0 < rate <= 1:
            raise ValueError(f"wta rate must be in (0, 1], got {rate}")
        self.rate = rate

    def forward(self, codings: torch.Tensor) -> torch.Tensor:  # (batch, units)
        if not self.training:
            return codings
        k = max(1, math.ceil(self.rate * codings.shape[0]))
        if k >= codings.shape[0]:
            return codings
        idx = codings.topk(k, dim=0).indices  # (k, units): the winners of each unit
        mask = torch.zeros_like(codings).scatter_(0, idx, 1.0)
        return codings * mask
