"""IDX reader: the format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/).

A file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one big-endian
uint32 per dimension, then the values in C order. Files may be gzipped; gzip is detected by its magic bytes.
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
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _DTYPES:
        raise DataError(
            f"{path} is not an IDX file: it starts with 0x{data[:4].hex()}, but IDX files start with 0x0000, "
            "a type code (08, 09, 0B, 0C, 0D or 0E) and the number of dimensions"
        )
    dtype, ndim = _DTYPES[data[2]], data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{path} is truncated: its header declares {ndim} dimensions but the file has only "
                        f"{len(data)} bytes; delete it and get a fresh copy")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    expected, found = math.prod(shape) * dtype.itemsize, len(data) - header_size
    if found != expected:
        problem = "truncated" if found < expected else "corrupt (it has trailing bytes)"
        raise DataError(f"{path} is {problem}: its header declares shape {shape} of {dtype.name}, which needs "
                        f"{expected} bytes of data, but it has {found}; delete it and get a fresh copy")
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a copy: writable, native byte order


def _read_bytes(path: Path) -> bytes:
    """The content of ``path``, decompressed if it is gzipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"No such file: {path}") from None
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is a corrupt or truncated gzip file ({exc}); delete it and get a fresh copy") from exc
