"""Stacked convolutional autoencoders (Masci et al. 2011, "Stacked convolutional auto-encoders for hierarchical
feature extraction"; Géron, Hands-On ML 3rd ed. ch. 17), and convolutional winner-take-all autoencoders
(Makhzani & Frey 2015) through ``wta``.

The module keeps the one boundary every family has: flat rows (batch, C*H*W) in, codings (batch, latent) out of
``encode``, logits (batch, C*H*W) out of ``decode``; it reshapes to images inside (a view, no copy). So the loop,
the objective (reconstruction + penalties), checkpoints and the estimator are the dense ones, unchanged.

Encoder: one conv stage per entry of ``channels`` (:mod:`aekit.nn.conv`: conv with ``kernel_sizes``/``strides``,
``padding = kernel // 2``, then optional max-pooling ``pool_sizes``), each followed by ``activation``; then,
with ``coding_size``, a dense coding layer over the flattened maps. Without it the codings are the last feature
maps, flattened (C_last * h * w values). Decoder: the mirror (dense layer back to the maps, then one transposed
convolution per stage, padding solved so each stage returns at its encoder stage's exact size: odd sizes such
as 7x9 come back whole, with no crop or interpolation); the last layer gives logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import DataError
from ..nn.conv import (
    as_images,
    conv_encoder,
    conv_geometry,
    transposed_decoder,
)
from ..nn.layers import activation as get_activation
from ..nn.layers import linear_layers
from ..nn.wta import LifetimeWTA, SpatialWTA
from ..registry import register_model
from .base import AutoencoderModule, LayerPairs
from .dense import DenseAutoencoder


@register_model("conv")
class ConvAutoencoder(LayerPairs):
    """Convolutional encoder, transposed-convolution decoder.

    Layer pairs (for greedy layer-wise training): pair k is encoder stage k and its mirror decoder layer; the
    dense coding layer, when there is one, is the last pair. Every pair takes and gives flat rows.

    ``wta`` (winner-take-all, training only): with map codings (no ``coding_size``) it is
    :class:`~aekit.nn.wta.SpatialWTA` -- each map keeps its maximum per sample, then each map keeps the
    ``ceil(wta * batch)`` largest maxima across the batch (``wta=1``: spatial sparsity alone); with a dense coding
    layer it is lifetime sparsity on the coding units (:class:`~aekit.nn.wta.LifetimeWTA`).
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        channels: Sequence[int] = (16, 32, 64),
        kernel_sizes: int | Sequence[int] = 3,
        strides: int | Sequence[int] = 2,
        pool_sizes: int | Sequence[int] = 1,
        coding_size: int | None = None,
        activation: str = "relu",
        init: str = "he",
        output_activation: str = "linear",
        coding_activation: str | None = None,
        wta: float | None = None,
        n_features: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        # shapes: [(C, H, W) of the input, after stage 0, ...]
        stages, shapes, geometry = conv_geometry(image_shape, channels, kernel_sizes, strides, pool_sizes, n_features)
        if coding_size is not None and int(coding_size) < 1:
            raise DataError(f"coding_size must be a positive integer or None, got {coding_size}")
        get_activation(output_activation)  # validates the names
        self.config = {
            **geometry, "coding_size": None if coding_size is None else int(coding_size),
            "activation": activation, "init": init, "output_activation": output_activation,
            "coding_activation": coding_activation, "wta": wta, "n_features": math.prod(shapes[0]),
        }
        self.shapes = shapes
        self.n_conv = len(stages)
        self.output_activation = output_activation
        self.act = get_activation(activation)
        self.coding_act = get_activation(coding_activation or activation)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.encoder = conv_encoder(shapes[0], stages, init, generator)  # blocks (Conv2d[, MaxPool2d])
        self.decoder = transposed_decoder(shapes, stages, init, generator)  # ConvTranspose2d, last gives logits
        map_size = math.prod(shapes[-1])
        if coding_size is not None:  # dense coding layer: encoder[-1] and its mirror decoder[0]
            self.encoder.append(linear_layers([map_size, int(coding_size)], init, generator)[0])
            self.decoder.insert(0, linear_layers([int(coding_size), map_size], init, generator)[0])
        self._n_codings = map_size if coding_size is None else int(coding_size)
        if wta:
            self.coding_filter = SpatialWTA(wta, shapes[-1]) if coding_size is None else LifetimeWTA(wta)
        else:
            self.coding_filter = None

    @property
    def n_codings(self) -> int:
        return self._n_codings

    @property
    def map_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of the last feature maps (the codings' shape when there is no dense coding layer)."""
        return self.shapes[-1]

    # -- layer pairs, for greedy layer-wise training (see aekit.training.greedy); flat rows in and out ---------
    def pair_encode(self, x: torch.Tensor, k: int) -> torch.Tensor:
        act = self.coding_act if k == self.n_pairs - 1 else self.act
        if k >= self.n_conv:  # the dense coding layer
            return act(self.encoder[k](x.flatten(1)))
        return act(self.encoder[k](as_images(x, self.shapes[k]))).flatten(1)  # (batch, C_k+1 * h * w)

    def pair_decode(self, h: torch.Tensor, k: int) -> torch.Tensor:
        """Decoder layer mirroring encoder layer ``k``: logits for ``k == 0``, else activations (flat)."""
        layer = self.decoder[self.n_pairs - 1 - k]
        if k >= self.n_conv:
            out = layer(h)
        else:
            out = layer(as_images(h, self.shapes[k + 1])).flatten(1)
        return out if k == 0 else self.act(out)

    def pair_parameters(self, k: int) -> list[nn.Parameter]:
        return [*self.encoder[k].parameters(), *self.decoder[self.n_pairs - 1 - k].parameters()]

    def pair_output_activation(self, k: int) -> str:
        return self.output_activation if k == 0 else "linear"

    def shallow_autoencoder(self, k: int, seed: int | None = None) -> AutoencoderModule:
        """A separate one-stage autoencoder with the shapes and activations of pair ``k`` (a dense one for the
        dense coding layer)."""
        cfg = self.config
        last = k == self.n_pairs - 1
        coding_activation = (cfg["coding_activation"] or cfg["activation"]) if last else cfg["activation"]
        output_activation = cfg["output_activation"] if k == 0 else cfg["activation"]
        if k >= self.n_conv:
            return DenseAutoencoder(math.prod(self.shapes[-1]), [cfg["coding_size"]], activation=cfg["activation"],
                                    init=cfg["init"], output_activation=output_activation,
                                    coding_activation=coding_activation, seed=seed)
        return ConvAutoencoder(
            self.shapes[k], [cfg["channels"][k]], cfg["kernel_sizes"][k], cfg["strides"][k], cfg["pool_sizes"][k],
            activation=cfg["activation"], init=cfg["init"], output_activation=output_activation,
            coding_activation=coding_activation, seed=seed,
        )

    @torch.no_grad()
    def load_pair(self, k: int, shallow: AutoencoderModule) -> None:
        """Copy a trained shallow autoencoder's weights into pair ``k``."""
        for mine, theirs in zip(self.pair_parameters(k), shallow.pair_parameters(0), strict=True):
            mine.copy_(theirs)
