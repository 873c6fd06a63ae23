"""Convolutional stacks shared by the model families (Masci et al. 2011, "Stacked convolutional auto-encoders for
hierarchical feature extraction"; Géron, Hands-On ML 3rd ed. ch. 17).

An encoder stage is ``Conv2d(kernel, stride, padding=kernel // 2)`` followed by an optional ``MaxPool2d(pool)``; its
mirror in the decoder is one ``ConvTranspose2d`` with stride ``stride * pool`` (the book's decoder: a stride-2
transposed convolution undoes a conv + 2x2 pooling). The transposed layer's ``padding`` and ``output_padding`` are
solved per axis from the encoder's sizes, so every decoder stage comes back at exactly the size its encoder stage
took in, odd sizes included (7x9, 30x30): no final crop or interpolation is needed. The one geometry that cannot be
mirrored exactly (``kernel + stride <= stride * pool``: the transposed kernel leaves gaps) is refused when the
model is built.

Activations are not part of the stages: the model applies them after each one (max-pooling commutes with every
monotone activation, so conv -> pool -> act equals conv -> act -> pool).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, DataError
from .layers import init_linear_

ImageShape = tuple[int, int, int]  # (channels, height, width)


def image_shape3(shape: Sequence[int]) -> ImageShape:
    """``(H, W)`` -> ``(1, H, W)``; ``(C, H, W)`` unchanged; anything else is refused."""
    dims = tuple(int(s) for s in shape)
    if len(dims) == 2:
        dims = (1, *dims)
    if len(dims) != 3 or min(dims) < 1:
        raise ConfigError(f"image_shape must be (H, W) or (C, H, W) with positive sizes, got {tuple(shape)}")
    return dims  # type: ignore[return-value]


def per_layer(value: int | Sequence[int], n: int, name: str, minimum: int = 1) -> list[int]:
    """One value per layer from an int or a sequence of 1 or ``n`` ints."""
    values = [int(value)] if isinstance(value, (int, float)) else [int(v) for v in value]
    if len(values) == 1:
        values = values * n
    if len(values) != n or min(values) < minimum:
        raise ConfigError(f"{name} needs one integer >= {minimum} or {n} of them (one per conv layer), got {value!r}")
    return values


@dataclass(frozen=True)
class ConvStage:
    """One encoder stage: conv ``in -> out`` channels, then max-pooling (``pool == 1``: none)."""

    out_channels: int
    kernel_size: int
    stride: int = 1
    pool: int = 1

    @property
    def padding(self) -> int:
        return self.kernel_size // 2

    @property
    def upsampling(self) -> int:
        """Stride of the mirror transposed convolution."""
        return self.stride * self.pool

    def output_size(self, size: int) -> int:
        conv = (size + 2 * self.padding - self.kernel_size) // self.stride + 1
        return conv // self.pool


def conv_stages(channels: Sequence[int], kernel_sizes: int | Sequence[int] = 3, strides: int | Sequence[int] = 1,
                pool_sizes: int | Sequence[int] = 1) -> list[ConvStage]:
    """The encoder's stages from per-layer settings (an int applies to every layer)."""
    channels = [int(c) for c in channels]
    if not channels or min(channels) < 1:
        raise ConfigError(f"channels must be a non-empty list of positive channel counts, got {channels}")
    n = len(channels)
    return [ConvStage(*values) for values in zip(
        channels, per_layer(kernel_sizes, n, "kernel_sizes"), per_layer(strides, n, "strides"),
        per_layer(pool_sizes, n, "pool_sizes"))]


def conv_shapes(image_shape: Sequence[int], stages: Sequence[ConvStage]) -> list[ImageShape]:
    """``[input shape, shape after stage 0, ..., shape after the last stage]``, each (C, H, W)."""
    shapes = [image_shape3(image_shape)]
    for i, stage in enumerate(stages):
        _, h, w = shapes[-1]
        shape = (stage.out_channels, stage.output_size(h), stage.output_size(w))
        if min(shape[1:]) < 1:
            raise ConfigError(f"conv layer {i} would shrink a {h}x{w} map to {shape[1]}x{shape[2]} (kernel "
                              f"{stage.kernel_size}, stride {stage.stride}, pool {stage.pool}); use fewer layers, "
                              "smaller strides or pools, or larger images")
        try:  # refuse what the decoder cannot mirror exactly
            for size, new in ((h, shape[1]), (w, shape[2])):
                transposed_padding(new, size, stage.kernel_size, stage.upsampling)
        except ConfigError as exc:
            raise ConfigError(f"conv layer {i}: {exc}. Mirroring kernel {stage.kernel_size}, stride {stage.stride}, "
                              f"pool {stage.pool} needs kernel + stride > stride * pool") from None
        shapes.append(shape)
    return shapes


def conv_geometry(image_shape: Sequence[int], channels: Sequence[int], kernel_sizes: int | Sequence[int] = 3,
                  strides: int | Sequence[int] = 1, pool_sizes: int | Sequence[int] = 1,
                  n_features: int | None = None) -> tuple[list[ConvStage], list[ImageShape], dict]:
    """A conv stack's stages, the shape after each (``conv_shapes``) and its settings as a model's config saves
    them; rows of ``n_features`` values must hold one image of ``image_shape``."""
    stages = conv_stages(channels, kernel_sizes, strides, pool_sizes)
    shapes = conv_shapes(image_shape, stages)
    if n_features is not None and int(n_features) != math.prod(shapes[0]):
        raise DataError(f"rows have {n_features} features, but image_shape {tuple(image_shape)} holds "
                        f"{math.prod(shapes[0])} values; give the shape of one sample, e.g. (28, 28) or (3, 32, 32)")
    config = {"image_shape": list(shapes[0]), "channels": [s.out_channels for s in stages],
              "kernel_sizes": [s.kernel_size for s in stages], "strides": [s.stride for s in stages],
              "pool_sizes": [s.pool for s in stages]}
    return stages, shapes, config


def transposed_padding(in_size: int, out_size: int, kernel: int, stride: int) -> tuple[int, int]:
    """``(padding, output_padding)`` such that ``ConvTranspose2d(kernel, stride)`` maps ``in_size`` to exactly
    ``out_size``: ``(in - 1) * stride - 2 * padding + kernel + output_padding == out``, with
    ``0 <= output_padding < stride`` and ``padding <= kernel - 1``."""
    d = out_size - (in_size - 1) * stride - kernel  # == output_padding - 2 * padding
    padding = max(0, -(d // 2))  # ceil(-d / 2) for negative d
    output_padding = d + 2 * padding
    if output_padding >= max(stride, 1) or padding > kernel - 1:
        raise ConfigError(f"a transposed convolution with kernel {kernel} and stride {stride} cannot map size "
                          f"{in_size} back to {out_size}")
    return padding, output_padding


def conv_encoder(image_shape: Sequence[int], stages: Sequence[ConvStage], init: str = "he",
                 generator: torch.Generator | None = None) -> nn.ModuleList:
    """One block per stage: ``Sequential(Conv2d[, MaxPool2d])``; weights initialised with ``init``, zero biases.

    Apply the activation after each block. Input (batch, C, H, W) -> output ``conv_shapes(...)[k + 1]``."""
    blocks = nn.ModuleList()
    in_channels = image_shape3(image_shape)[0]
    for stage in stages:
        conv = nn.Conv2d(in_channels, stage.out_channels, stage.kernel_size, stage.stride, stage.padding)
        init_linear_(conv.weight, conv.bias, init, generator)  # fan_in = in_channels * kh * kw
        blocks.append(nn.Sequential(conv, *([nn.MaxPool2d(stage.pool)] if stage.pool > 1 else [])))
        in_channels = stage.out_channels
    return blocks


def transposed_layer(in_shape: Sequence[int], out_shape: Sequence[int], kernel: int, stride: int, init: str = "he",
                     generator: torch.Generator | None = None) -> nn.ConvTranspose2d:
    """``ConvTranspose2d`` from (C_in, h, w) to exactly (C_out, H, W), padding solved per axis."""
    (c_in, h, w), (c_out, H, W) = in_shape, out_shape
    (ph, oph), (pw, opw) = transposed_padding(h, H, kernel, stride), transposed_padding(w, W, kernel, stride)
    layer = nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding=(ph, pw), output_padding=(oph, opw))
    init_linear_(layer.weight, layer.bias, init, generator)  # weight (in, out, kh, kw): fan_in = out * kh * kw, as Keras
    return layer


def transposed_decoder(shapes: Sequence[ImageShape], stages: Sequence[ConvStage], init: str = "he",
                       generator: torch.Generator | None = None) -> nn.ModuleList:
    """The mirror of :func:`conv_encoder`: layer j undoes encoder stage ``n - 1 - j``, mapping
    ``shapes[n - j]`` back to ``shapes[n - 1 - j]`` (the last layer gives the input's shape). Apply the hidden
    activation after every layer but the last (it gives logits)."""
    n = len(stages)
    return nn.ModuleList(
        transposed_layer(shapes[k + 1], shapes[k], stages[k].kernel_size, stages[k].upsampling, init, generator)
        for k in reversed(range(n))
    )


def as_images(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Flat rows (batch, C*H*W) as images (batch, C, H, W); images pass through."""
    return x if x.dim() == 4 else x.reshape(-1, *shape)  # -1: the batch stays symbolic (ONNX export)
