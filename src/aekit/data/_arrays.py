"""Turning loaded arrays into what estimators take: float32 (n_samples, n_features) plus the image shape."""

from __future__ import annotations

import numpy as np

from aekit.errors import DataError

_CHANNELS = (1, 3, 4)


def as_float32(array: np.ndarray, source: str) -> np.ndarray:
    """Cast to C-contiguous float32; uint8 is taken as 8-bit pixels and scaled to [0, 1], other values kept."""
    if array.dtype.kind == "c":
        raise DataError(f"{source} holds {array.dtype} values: complex data is not supported; "
                        "pass real features, e.g. np.abs(X) or np.concatenate([X.real, X.imag], axis=1)")
    if array.dtype.kind not in "biuf":
        raise DataError(f"{source} holds {array.dtype} values, but only numbers (bool, integer, float) can be "
                        "used as features; convert them first, e.g. X.astype(np.float32)")
    out = np.ascontiguousarray(array, dtype=np.float32)
    if array.dtype == np.uint8:
        out /= 255  # out is a fresh copy here
    return out


def flatten_images(array: np.ndarray, source: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """Flatten a table or an image stack to float32 (n, features); return it with the image shape.

    (n, features) has no image shape; (n, H, W) gives (H, W); (n, C, H, W) gives (C, H, W), or (H, W) when
    C is 1. A last axis of 1, 3 or 4 is taken as channels, (n, H, W, C), and moved first.
    """
    if array.ndim not in (2, 3, 4):
        hint = "; for a single feature use X.reshape(-1, 1)" if array.ndim == 1 else ""
        raise DataError(f"{source} holds an array of shape {array.shape}, but expected (n_samples, n_features), "
                        f"(n, H, W), (n, C, H, W) or (n, H, W, C){hint}")
    if 0 in array.shape:
        raise DataError(f"{source} is empty: its array has shape {array.shape}")
    if array.ndim == 4 and array.shape[-1] in _CHANNELS:
        array = array.transpose(0, 3, 1, 2)  # (n, H, W, C) -> (n, C, H, W)
    image_shape = None if array.ndim == 2 else tuple(array.shape[1:])
    if image_shape is not None and len(image_shape) == 3 and image_shape[0] == 1:
        image_shape = image_shape[1:]  # one channel: grayscale (H, W)
    return as_float32(array.reshape(len(array), -1), source), image_shape
