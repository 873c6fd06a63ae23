"""IDX reader: the format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/).

A file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one big-endian
uint32 per dimension, then the values in C order. Files may be gzipped; gzip is detected by its magic bytes.
The file is read as a stream: the header first, checked against the memory limit (:mod:`aekit.limits`), then
exactly the bytes it declares, so a gzip bomb is never inflated beyond what its header claims.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from aekit.errors import DataError
from aekit.limits import check_bytes

_GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzipped or not.

    Parameters
    ----------
    path : str or path-like
        The file. Gzip compression is detected from the content, not from the name.

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order, with the shape and dtype the header declares.

    Raises
    ------
    DataError
        If the file is missing, unreadable, not IDX, or truncated.
    """
    path = Path(path)
    try:
        with _open(path) as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _DTYPES:
                raise DataError(
                    f"{path} is not an IDX file: it starts with 0x{head[:4].hex()}, but IDX files start with "
                    "0x0000, a type code (08, 09, 0B, 0C, 0D or 0E) and the number of dimensions"
                )
            dtype, ndim = _DTYPES[head[2]], head[3]
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(f"{path} is truncated: its header declares {ndim} dimensions but the file ends "
                                "inside the header; delete it and get a fresh copy")
            shape = struct.unpack(f">{ndim}I", dims)
            expected = math.prod(shape) * dtype.itemsize
            # as float32 features later: 4 bytes a value
            check_bytes(max(expected, 4 * math.prod(shape)), f"{path} (its header declares shape {shape} of "
                        f"{dtype.name})", "use a smaller file, or set AEKIT_MAX_MEMORY if the machine has room")
            data = f.read(expected + 1)  # one byte more than declared: trailing data shows
    except FileNotFoundError:
        raise DataError(f"No such file: {path}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} is a corrupt or truncated gzip file ({exc}); delete it and get a fresh copy") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not an IDX file") from None
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc.strerror or exc}") from None
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "corrupt (it has trailing bytes)"
        found = f"{len(data)}" if len(data) <= expected else "more"
        raise DataError(f"{path} is {problem}: its header declares shape {shape} of {dtype.name}, which needs "
                        f"{expected} bytes of data, but it has {found}; delete it and get a fresh copy")
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a copy: writable, native byte order


def _open(path: Path):
    """``path`` as a binary stream, decompressed on the fly if it is gzipped."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else open(path, "rb")
