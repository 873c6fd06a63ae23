"""What the figures need from a model: the torch module behind an estimator, its encoder layers, its device."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# modules whose weights are drawn as first-layer features
WEIGHT_LAYERS = (nn.Linear, nn.Conv2d)


def as_module(model: Any) -> nn.Module:
    """The autoencoder module: ``model`` itself, or a fitted estimator's ``model_``."""
    if isinstance(model, nn.Module):
        return model
    module = getattr(model, "model_", None)
    if not isinstance(module, nn.Module):
        raise TypeError(f"expected an autoencoder module or a fitted aekit estimator, got {type(model).__name__}"
                        " (fit the estimator first)")
    return module


def encoder_layers(model: Any) -> list[nn.Module]:
    """The encoder's layers in order (``model.encoder``: a ``ModuleList`` or ``Sequential``); the last one
    produces the codings."""
    module = as_module(model)
    encoder = getattr(module, "encoder", None)
    if not isinstance(encoder, (nn.ModuleList, nn.Sequential)) or len(encoder) == 0:
        raise TypeError(f"{type(module).__name__} has no encoder layers (expected a ModuleList/Sequential "
                        "attribute `encoder`)")
    return list(encoder)


def check_layer(model: Any, layer: int) -> int:
    """``layer`` as a non-negative index into the encoder (negative counts from the coding layer)."""
    n = len(encoder_layers(model))
    if not -n <= layer < n:
        raise ValueError(f"layer {layer} is out of range: the encoder has {n} layers (0..{n - 1}, "
                         f"or -1 for the coding layer)")
    return layer % n


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def image_shape_of(model: Any, image_shape: Any = None) -> tuple[int, ...] | None:
    """``image_shape`` if given, else the one a fitted estimator was trained with (its ``image_shape``)."""
    shape = image_shape if image_shape is not None else getattr(model, "image_shape", None)
    return None if shape is None else tuple(int(s) for s in shape)
