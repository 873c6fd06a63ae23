"""Winner-take-all autoencoders (Makhzani & Frey 2015, "Winner-Take-All Autoencoders").

- :class:`LifetimeWTA` (FC-WTA): in training, each coding unit keeps only its ``ceil(rate * batch)`` largest
  activations across the batch and the rest are zeroed.
- :class:`SpatialWTA` (Conv-WTA): in training, each feature map of each sample keeps only its largest value
  (spatial sparsity), then each map keeps only its ``ceil(rate * batch)`` largest such maxima across the batch
  (lifetime sparsity); everything else is zeroed. ``rate=1`` is spatial sparsity alone.

Both act on what the decoder sees and are the identity at inference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def _check_rate(rate: float) -> float:
    if not 0 < rate <= 1:
        raise ValueError(f"wta rate must be in (0, 1], got {rate}")
    return rate


def _winners(batch: int, rate: float) -> int:
    return max(1, math.ceil(rate * batch))


class LifetimeWTA(nn.Module):
    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = _check_rate(rate)

    def forward(self, codings: torch.Tensor) -> torch.Tensor:  # (batch, units)
        if not self.training:
            return codings
        k = _winners(codings.shape[0], self.rate)
        if k >= codings.shape[0]:
            return codings
        idx = codings.topk(k, dim=0).indices  # (k, units): the winners of each unit
        mask = torch.zeros_like(codings).scatter_(0, idx, 1.0)
        return codings * mask


class SpatialWTA(nn.Module):
    """Spatial then lifetime winner-take-all on feature maps.

    ``map_shape`` is (C, H, W): codings may come flat (batch, C*H*W) or as maps (batch, C, H, W); the output has
    the input's shape. Each (sample, map) keeps at most one nonzero value (its first maximum); each map keeps
    exactly ``ceil(rate * batch)`` samples' maxima.
    """

    def __init__(self, rate: float, map_shape: Sequence[int]) -> None:
        super().__init__()
        self.rate = _check_rate(rate)
        self.map_shape = tuple(int(s) for s in map_shape)

    def forward(self, codings: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return codings
        batch = codings.shape[0]
        maps = codings.reshape(batch, self.map_shape[0], -1)  # (batch, C, H*W)
        peak, where = maps.max(dim=2)  # (batch, C): each map's maximum and its first position
        keep = torch.ones_like(peak)
        k = _winners(batch, self.rate)
        if k < batch:  # lifetime: per map, the k samples with the largest maxima
            keep = torch.zeros_like(peak).scatter_(0, peak.topk(k, dim=0).indices, 1.0)
        mask = torch.zeros_like(maps).scatter_(2, where.unsqueeze(2), keep.unsqueeze(2))
        return (maps * mask).reshape(codings.shape)
