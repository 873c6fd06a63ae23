"""CPU memory reuse during training.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves blocks above its mmap threshold
(128 KiB at first, adjusted as blocks are freed) with fresh ``mmap`` pages and returns the top of the heap to the
kernel when more than 128 KiB is free there. A training step allocates and frees the same few hundred-KiB
activations and gradients every batch, so with the defaults each step takes dozens of page faults, each zeroing a
fresh page: on the book's MNIST model about 85 faults per step with 2 threads (the GEMM-only floor takes none),
which show up as slower matmuls and loss kernels. Raising both thresholds keeps freed blocks in the heap for the
next batch (under 1 fault per step).

The setting is process-wide and applied once, on the first call to :func:`keep_freed_memory` (made by the
training loop): blocks up to ``AEKIT_MALLOC_KEEP_MIB`` (default 32) MiB come from the heap, up to twice that
stays mapped when freed, and larger blocks still go straight back to the kernel. ``AEKIT_MALLOC_KEEP_MIB=0``
leaves the C library alone, as do other C libraries than glibc and other systems.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@functools.cache
def keep_freed_memory() -> bool:
    """Apply the malloc thresholds once (glibc on Linux only); returns whether they are in effect."""
    try:
        mib = int(os.environ.get("AEKIT_MALLOC_KEEP_MIB", "32"))
    except ValueError:
        mib = 32
    if mib <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    size = mib * 2**20
    # mmap only blocks above `size`; trim the heap only when more than 2 * `size` is free at its top
    return bool(mallopt(_M_MMAP_THRESHOLD, size)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 * size))
