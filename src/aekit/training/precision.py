"""Numeric precision of training and inference, by Lightning's names:

- ``"32-true"``: float32 everywhere (the default);
- ``"bf16-mixed"``: matrix multiplies and convolutions in bfloat16, master weights, gradients, optimizer state
  and the loss's reduction in float32 (CPU with bfloat16 units, or CUDA);
- ``"16-mixed"``: float16 the same way, with loss scaling (CUDA only).

Checkpoints always hold float32 weights, so a run saved in one precision loads and resumes in any other. Autograd
models run under ``torch.autocast``; the hand-written executors keep bfloat16 copies of the weights, refreshed after
each optimizer update (:mod:`aekit.training.executors`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass

import torch

from ..errors import ConfigError

NAMES = ("32-true", "bf16-mixed", "16-mixed")
_DTYPES = {"32-true": torch.float32, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX on x86; BF16 on Arm)."""
    if torch.cpu._is_avx512_bf16_supported() or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)():
        return True
    if os.uname().machine in ("aarch64", "arm64"):
        try:
            with open("/proc/cpuinfo") as f:
                return " bf16" in f.read()
        except OSError:
            return False
    return False


@dataclass(frozen=True)
class Precision:
    name: str = "32-true"

    def __post_init__(self) -> None:
        if self.name not in NAMES:
            raise ConfigError(f"precision={self.name!r}: choose one of {', '.join(NAMES)}")

    @property
    def dtype(self) -> torch.dtype:
        """The dtype matrix multiplies run in."""
        return _DTYPES[self.name]

    @property
    def mixed(self) -> bool:
        return self.name != "32-true"

    @property
    def scaled(self) -> bool:
        """Whether the loss is scaled (float16's narrow range needs it; bfloat16's does not)."""
        return self.name == "16-mixed"

    def check(self, device: torch.device) -> None:
        """Refuse a precision this device cannot run fast (never a silent 10x slowdown)."""
        if self.name == "16-mixed" and device.type != "cuda":
            raise ConfigError("precision='16-mixed' is for CUDA GPUs (float16 with loss scaling); on the CPU use "
                              "'bf16-mixed' (CPUs with bfloat16 units) or '32-true'")
        if self.name != "bf16-mixed" or device.type != "cpu" or cpu_has_bf16():
            return
        if os.environ.get("AEKIT_ALLOW_SLOW_BF16") == "1":
            warnings.warn("aekit: precision='bf16-mixed' on a CPU without bfloat16 units (AEKIT_ALLOW_SLOW_BF16=1): "
                          "bfloat16 is emulated and runs several times slower than '32-true'", RuntimeWarning,
                          stacklevel=3)
        else:
            raise ConfigError("precision='bf16-mixed' needs a CPU with bfloat16 units (AVX512-BF16, AMX or Arm "
                              "BF16); this one has none, so it would run several times slower than '32-true'; use "
                              "precision='32-true' (or set AEKIT_ALLOW_SLOW_BF16=1 to run it anyway)")

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """``torch.autocast`` for this precision on ``device`` (a no-op for 32-true)."""
        if not self.mixed:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype, cache_enabled=False)


FP32 = Precision()
