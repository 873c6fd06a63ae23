"""Sizes checked before memory is taken: an input that asks for more than this machine has (or than the documented
limit) is refused with a :class:`~aekit.errors.LimitError` (a ``ValueError``) that says how much it asks for, before
any of it is allocated or decompressed.

- ``AEKIT_MAX_MEMORY`` (bytes, or with a K/M/G/T suffix, e.g. ``8G``): the most any one array, data set or model
  may take; default: the memory the machine has available now (``MemAvailable``), at most its physical memory.
- ``AEKIT_MAX_IMAGE_PIXELS``: the most pixels one image file may declare (default 10**8, 100 megapixels; a
  30000 x 30000 image is refused from its header).

Models count four copies of their parameters (weights, gradients and Adam's two moments), in float32.
"""

from __future__ import annotations

import os

from .errors import LimitError

DEFAULT_MAX_IMAGE_PIXELS = 10**8
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str) -> int:
    """``"8G"`` -> 8 * 2**30; plain numbers are bytes."""
    value = text.strip().upper().removesuffix("B")
    unit = value[-1] if value and value[-1] in _UNITS else ""
    try:
        return int(float(value[: len(value) - len(unit)]) * _UNITS[unit])
    except ValueError:
        raise LimitError(f"AEKIT_MAX_MEMORY={text!r} is not a size; use bytes or e.g. 512M, 8G") from None


def _meminfo(key: str) -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def memory_limit() -> int:
    """The most bytes one input may take (see the module's docstring)."""
    configured = os.environ.get("AEKIT_MAX_MEMORY")
    if configured:
        return parse_size(configured)
    available = _meminfo("MemAvailable")
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = None
    candidates = [v for v in (available, physical) if v]
    return min(candidates) if candidates else 2**40


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check_bytes(n_bytes: int, what: str, hint: str = "") -> None:
    """Refuse ``what`` if it needs more than :func:`memory_limit` bytes."""
    limit = memory_limit()
    if n_bytes > limit:
        source = ("AEKIT_MAX_MEMORY" if os.environ.get("AEKIT_MAX_MEMORY") else "the memory this machine has "
                  "available")
        raise LimitError(f"{what} needs {human(n_bytes)}, more than {human(limit)} ({source})"
                         + (f"; {hint}" if hint else ""))


def max_image_pixels() -> int:
    configured = os.environ.get("AEKIT_MAX_IMAGE_PIXELS")
    try:
        return int(configured) if configured else DEFAULT_MAX_IMAGE_PIXELS
    except ValueError:
        raise LimitError(f"AEKIT_MAX_IMAGE_PIXELS={configured!r} is not a number of pixels") from None


def check_model_size(n_parameters: int, what: str) -> None:
    """Refuse a model whose training state (weights, gradients, Adam's moments; float32) would not fit."""
    check_bytes(16 * n_parameters, f"{what} ({n_parameters:,} parameters, with gradients and optimizer state)",
                "use smaller layers")
