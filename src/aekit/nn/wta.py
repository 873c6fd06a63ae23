"""Winner-take-all autoencoders (Makhzani & Frey 2015, "Winner-Take-All Autoencoders").

- :class:`LifetimeWTA` (FC-WTA): in training, each coding unit keeps only its ``ceil(rate * batch)`` largest
  activations across the batch and the rest are zeroed.
- :class:`SpatialWTA` (Conv-WTA): in training, each feature map of each sample keeps only its largest value
  (spatial sparsity), then each map keeps only its ``ceil(rate * batch)`` largest such maxima across the batch
  (lifetime sparsity); everything else is zeroed. ``rate=1`` is spatial sparsity alone.

Both act on what the decoder sees. The decoder is trained on sparse codes only, so reconstructions at inference
use the same sparsity: lifetime sparsity, which needs a batch, becomes a per-unit threshold (a running average of
each unit's ``ceil(rate * batch)``-th largest activation over the training batches, a buffer saved with the
model), so that a row's reconstruction does not depend on its neighbours; spatial sparsity (per sample) is kept as
it is. Without a threshold yet (a model never trained, or saved by an older aekit) inference keeps every unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

MOMENTUM = 0.05  # of the running threshold, per training batch


def _check_rate(rate: float) -> float:
    if not 0 < rate <= 1:
        raise ValueError(f"wta rate must be in (0, 1], got {rate}")
    return rate


def _winners(batch: int, rate: float) -> int:
    return max(1, math.ceil(rate * batch))


class _Thresholded(nn.Module):
    """The running per-unit threshold shared by both filters (empty until the first training batch)."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = _check_rate(rate)
        self.register_buffer("threshold", torch.empty(0))

    @torch.no_grad()
    def _track(self, kth: torch.Tensor) -> None:
        """Fold this batch's per-unit ``kth`` largest activation into the running threshold."""
        if self.threshold.shape != kth.shape:
            self.threshold = kth.detach().clone()
        else:
            self.threshold.lerp_(kth.detach(), MOMENTUM)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        key = prefix + "threshold"
        if key in state_dict:
            self.threshold = torch.empty_like(state_dict[key])  # its shape comes with it
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if key in missing_keys:  # saved by aekit before thresholds existed: inference keeps every unit
            missing_keys.remove(key)


class LifetimeWTA(_Thresholded):
    def forward(self, codings: torch.Tensor) -> torch.Tensor:  # (batch, units)
        if not self.training:
            if self.threshold.numel() == 0:
                return codings
            return codings * (codings >= self.threshold)
        k = _winners(codings.shape[0], self.rate)
        values, idx = codings.topk(k, dim=0)  # (k, units): the winners of each unit
        self._track(values[-1])
        if k >= codings.shape[0]:
            return codings
        mask = torch.zeros_like(codings).scatter_(0, idx, 1.0)
        return codings * mask


class SpatialWTA(_Thresholded):
    """Spatial then lifetime winner-take-all on feature maps.

    ``map_shape`` is (C, H, W): codings may come flat (batch, C*H*W) or as maps (batch, C, H, W); the output has
    the input's shape. Each (sample, map) keeps at most one nonzero value (its first maximum); each map keeps
    exactly ``ceil(rate * batch)`` samples' maxima in training, those above its threshold at inference.
    """

    def __init__(self, rate: float, map_shape: Sequence[int]) -> None:
        super().__init__(rate)
        self.map_shape = tuple(int(s) for s in map_shape)

    def forward(self, codings: torch.Tensor) -> torch.Tensor:
        batch = codings.shape[0]
        maps = codings.reshape(batch, self.map_shape[0], -1)  # (batch, C, H*W)
        peak, where = maps.max(dim=2)  # (batch, C): each map's maximum and its first position
        if not self.training:
            if self.threshold.numel() == 0:
                return codings
            keep = (peak >= self.threshold).to(maps.dtype)
        else:
            keep = torch.ones_like(peak)
            k = _winners(batch, self.rate)
            values, idx = peak.topk(k, dim=0)
            self._track(values[-1])
            if k < batch:  # lifetime: per map, the k samples with the largest maxima
                keep = torch.zeros_like(peak).scatter_(0, idx, 1.0)
        mask = torch.zeros_like(maps).scatter_(2, where.unsqueeze(2), keep.unsqueeze(2))
        return (maps * mask).reshape(codings.shape)
