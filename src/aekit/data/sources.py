"""Rows that stay where they are: memory-mapped ``.npy`` files, folders of ``.npy``/``.npz`` shards, image folders
read lazily, and in-memory arrays behind the same interface (:class:`RowSource`).

A source hands out rows in their stored dtype (uint8 stays uint8) and says how to make float32 features of them
(:meth:`RowSource.scale`: uint8 pixels of a file are divided by 255, as :func:`aekit.data.load_file` does; an
array passed by the user keeps its values, as ``fit(X)`` always has). :mod:`aekit.data.stream` converts per batch.

Memory-mapped pages that have been read are handed back to the kernel (``madvise(MADV_DONTNEED)``) after each
read, so a pass over a 16 GB file keeps the process's resident set at the size of what it holds, not of the file.
"""

from __future__ import annotations

import math
import mmap
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aekit.errors import DataError
from aekit.limits import check_bytes, human

_CHANNELS = (1, 3, 4)
_PAGE = mmap.PAGESIZE


def _image_shape(row_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The image shape ``flatten_images`` gives rows of this stored shape (None for flat rows)."""
    if len(row_shape) == 1:
        return None
    if len(row_shape) == 3 and row_shape[-1] in _CHANNELS:
        row_shape = (row_shape[2], row_shape[0], row_shape[1])  # (H, W, C) is stored channels last
    return row_shape[1:] if len(row_shape) == 3 and row_shape[0] == 1 else tuple(row_shape)


class RowSource:
    """Rows ``0 .. n_rows - 1`` of one shape and dtype, read by range. Subclasses implement :meth:`read`."""

    n_rows: int
    row_shape: tuple[int, ...]  # one row as stored: (784,), (28, 28), (H, W, C), ...
    dtype: np.dtype
    name: str
    labels: np.ndarray | None = None
    #: divide stored values by this to get features (255 for a file's uint8 pixels), or None
    scale: float | None = None

    def __len__(self) -> int:
        return self.n_rows

    @property
    def shape(self) -> tuple[int, int]:
        """(n_rows, n_features): the shape of the float32 rows it gives."""
        return (self.n_rows, self.n_features)

    @property
    def n_features(self) -> int:
        return math.prod(self.row_shape)

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        return _image_shape(self.row_shape)

    @property
    def channels_last(self) -> bool:
        return len(self.row_shape) == 3 and self.row_shape[-1] in _CHANNELS

    @property
    def nbytes(self) -> int:
        return self.n_rows * self.n_features * self.dtype.itemsize

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop``, stored dtype, shape ``(stop - start, *row_shape)``, a fresh array."""
        raise NotImplementedError

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The rows at the sorted indices ``rows``: each run of neighbouring rows read as one range."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.row_shape), dtype=self.dtype)
        if not len(rows):
            return out
        breaks = np.flatnonzero(np.diff(rows) > 64) + 1  # gaps of <= 64 rows are read through
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            first, last = int(rows[lo]), int(rows[hi - 1]) + 1
            span = self.read(first, last)
            out[lo:hi] = span if last - first == hi - lo else span[rows[lo:hi] - first]
        return out

    def subset(self, rows: np.ndarray) -> RowSource:
        """The rows at ``rows`` (sorted, unique) as a source of their own."""
        return Subset(self, rows)

    def features(self, raw: np.ndarray) -> np.ndarray:
        """Stored rows as float32 feature rows (n, n_features), as ``load_file`` would give them."""
        if self.channels_last:
            raw = raw.transpose(0, 3, 1, 2)
        out = np.ascontiguousarray(raw.reshape(len(raw), -1), dtype=np.float32)
        if self.scale is not None:
            out /= np.float32(self.scale)
        return out

    def to_array(self) -> np.ndarray:
        """Every row as float32 features in memory (checked against the memory limit first)."""
        check_bytes(4 * self.n_rows * self.n_features, f"{self.name} as float32 ({self.n_rows:,} rows)",
                    "stream it instead (in_memory=False / --in-memory no)")
        out = np.empty((self.n_rows, self.n_features), dtype=np.float32)
        step = max(1, (64 << 20) // max(1, self.n_features * self.dtype.itemsize))
        for start in range(0, self.n_rows, step):
            stop = min(self.n_rows, start + step)
            out[start:stop] = self.features(self.read(start, stop))
        return out

    def probe(self, n: int = 8192) -> np.ndarray:
        """Up to ``n`` rows spread evenly over the source, as float32 features: what settings decided from the
        data (``loss="auto"``, range checks) look at when the data is streamed."""
        if self.n_rows <= n:
            return self.features(self.read(0, self.n_rows))
        chunks = 16
        per = n // chunks
        starts = np.linspace(0, self.n_rows - per, chunks).astype(np.int64)
        return np.concatenate([self.features(self.read(int(s), int(s) + per)) for s in starts])

    def release(self) -> None:
        """Hand memory-mapped pages back to the kernel (the page cache keeps them); no-op when nothing is mapped."""

    def describe(self) -> str:
        return f"{self.name}: {self.n_rows:,} rows of {self.row_shape} {self.dtype} ({human(self.nbytes)})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


def _drop_pages(buffer: mmap.mmap, start: int, stop: int) -> None:
    """madvise(DONTNEED) over the whole pages inside bytes ``start:stop`` of ``buffer`` (read-only mappings:
    the process's resident set shrinks, the data stays in the page cache)."""
    lo = start - start % _PAGE
    hi = min(len(buffer), stop)
    if hi > lo and hasattr(buffer, "madvise"):
        buffer.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


class ArraySource(RowSource):
    """An array already in memory, or a ``np.memmap`` (``np.load(path, mmap_mode="r")``), as a source. Values are
    kept as they are (``scale`` None), as ``fit(X)`` takes arrays."""

    def __init__(self, array: np.ndarray, name: str = "X", labels: np.ndarray | None = None,
                 scale: float | None = None) -> None:
        if array.ndim < 2 or 0 in array.shape:
            raise DataError(f"{name} has shape {array.shape}; expected (n_samples, n_features) or images (n, ...)")
        if array.dtype.kind not in "biuf":
            raise DataError(f"{name} holds {array.dtype} values; only numbers can be used as features")
        self.array, self.name, self.labels, self.scale = array, name, labels, scale
        self.n_rows, self.row_shape, self.dtype = len(array), tuple(array.shape[1:]), array.dtype
        self._map = getattr(array, "_mmap", None) if isinstance(array, np.memmap) else None

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.array(self.array[start:stop])
        if self._map is not None:
            row = self.n_features * self.dtype.itemsize
            base = self.array.offset % mmap.ALLOCATIONGRANULARITY  # where the data starts inside the mapping
            _drop_pages(self._map, base + start * row, base + stop * row)
        return out


class NpyFile(RowSource):
    """A ``.npy`` file, memory-mapped (uint8, float16, float32 or any other number type; C order). uint8 is taken
    as 8-bit pixels (``scale`` 255), as :func:`aekit.data.load_file` takes it."""

    def __init__(self, path: str | os.PathLike, labels: np.ndarray | None = None) -> None:
        from aekit.data.files import _npy_header

        self.path = Path(path)
        self.name = self.path.name
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            shape, dtype, fortran = _npy_header(f, str(self.path), size, check_memory=False)
            self.offset = f.tell()
        if fortran and len(shape) > 1:
            raise DataError(f"{self.path} is stored in Fortran order, so its rows are not contiguous on disk; save "
                            "it in C order (np.save(path, np.ascontiguousarray(X))) to stream it")
        if len(shape) < 2 or 0 in shape:
            raise DataError(f"{self.path} holds an array of shape {shape}; expected (n_samples, n_features) or "
                            "images (n, H, W), (n, C, H, W), (n, H, W, C)")
        if dtype.kind not in "biuf":
            raise DataError(f"{self.path} holds {dtype} values; only numbers can be used as features")
        self.n_rows, self.row_shape, self.dtype = int(shape[0]), tuple(int(s) for s in shape[1:]), dtype
        self.labels, self.scale = labels, (255.0 if dtype == np.uint8 else None)
        with open(self.path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._rows = np.frombuffer(self._map, dtype=dtype, count=math.prod(shape), offset=self.offset
                                   ).reshape(shape)

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.array(self._rows[start:stop])
        row = self.n_features * self.dtype.itemsize
        _drop_pages(self._map, self.offset + start * row, self.offset + stop * row)
        return out

    def release(self) -> None:
        _drop_pages(self._map, 0, len(self._map))

    def __getstate__(self) -> dict[str, Any]:  # a mapping does not travel: reopen the file
        return {"path": self.path, "labels": self.labels}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["labels"])


class _NpzShard(RowSource):
    """One array of an ``.npz`` archive, inflated when first read (one shard in memory at a time)."""

    def __init__(self, path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.key, self.name = path, key, f"{path.name}:{key}"
        self.n_rows, self.row_shape, self.dtype = int(shape[0]), tuple(shape[1:]), dtype
        self.scale = 255.0 if dtype == np.uint8 else None
        self._cache: np.ndarray | None = None

    def read(self, start: int, stop: int) -> np.ndarray:
        if self._cache is None:
            with np.load(self.path, allow_pickle=False) as archive:
                self._cache = archive[self.key]
        return np.array(self._cache[start:stop])

    def release(self) -> None:
        self._cache = None


def _npz_members(path: Path) -> tuple[str, tuple[int, ...], np.dtype, np.ndarray | None]:
    """(samples key, shape, dtype, labels or None) of an ``.npz`` shard, from its headers (labels are read)."""
    from aekit.data.files import _X_KEYS, _Y_KEYS, _npy_header

    with zipfile.ZipFile(path) as archive:
        headers = {}
        for info in archive.infolist():
            with archive.open(info) as member:
                shape, dtype, _ = _npy_header(member, f"{path}: {info.filename}", info.file_size, check_memory=False)
            headers[info.filename.removesuffix(".npy")] = (shape, dtype)
    keys = list(headers)
    x_key = next((k for k in _X_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
    if x_key is None:
        raise DataError(f"{path} holds arrays {keys}; store the samples under 'X' (or 'x', 'data', 'images')")
    y_key = next((k for k in _Y_KEYS if k in keys), None)
    labels = None
    if y_key is not None:
        with np.load(path, allow_pickle=False) as archive:
            labels = np.asarray(archive[y_key]).reshape(-1)
    return x_key, *headers[x_key], labels


class ShardedSource(RowSource):
    """A folder of ``.npy`` and/or ``.npz`` shards (sorted by name), read as one set of rows: every shard has the
    same row shape and dtype; labels (``y`` in ``.npz`` shards) when every shard has them."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.name = self.folder.name + "/"
        paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in (".npy", ".npz") and p.is_file())
        if not paths:
            raise DataError(f"{self.folder} holds no .npy or .npz shards")
        shards: list[RowSource] = []
        labels: list[np.ndarray | None] = []
        for path in paths:
            try:
                if path.suffix.lower() == ".npy":
                    shards.append(NpyFile(path))
                    labels.append(None)
                else:
                    key, shape, dtype, y = _npz_members(path)
                    shards.append(_NpzShard(path, key, shape, dtype))
                    labels.append(y)
            except DataError:
                raise
            except (OSError, ValueError, zipfile.BadZipFile) as exc:
                raise DataError(f"Cannot read shard {path}: {exc}; fix or remove it") from None
        first = shards[0]
        for shard in shards[1:]:
            if shard.row_shape != first.row_shape or shard.dtype != first.dtype:
                raise DataError(f"shards must share one row shape and dtype, but {first.name} holds "
                                f"{first.row_shape} {first.dtype} and {shard.name} holds {shard.row_shape} "
                                f"{shard.dtype}")
        self.shards = shards
        self._inflated: list[RowSource] = []  # .npz shards held inflated, most recent last (at most 2)
        self.starts = np.cumsum([0] + [len(s) for s in shards])
        self.n_rows, self.row_shape, self.dtype = int(self.starts[-1]), first.row_shape, first.dtype
        self.scale = first.scale
        if all(y is not None for y in labels):
            for shard, y in zip(shards, labels):
                if len(y) != len(shard):
                    raise DataError(f"{shard.name} holds {len(shard)} rows but {len(y)} labels")
            self.labels = np.concatenate(labels)

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self.row_shape), dtype=self.dtype)
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        for i in range(first, len(self.shards)):
            lo, hi = max(start, int(self.starts[i])), min(stop, int(self.starts[i + 1]))
            if lo >= hi:
                break
            shard = self.shards[i]
            out[lo - start : hi - start] = shard.read(lo - int(self.starts[i]), hi - int(self.starts[i]))
            if isinstance(shard, _NpzShard):
                if shard in self._inflated:
                    self._inflated.remove(shard)
                self._inflated.append(shard)
                while len(self._inflated) > 2:  # a window's blocks come from shards in any order: keep two
                    self._inflated.pop(0).release()
        return out

    def release(self) -> None:
        for shard in self.shards:
            shard.release()
        self._inflated.clear()


class ImageFolderSource(RowSource):
    """A folder of images (flat, or one subfolder per class: labels 0..k-1 by sorted name), decoded when read;
    every image must have the first one's size. Pixels are float32 in [0, 1] (8-bit by 255, 16-bit by 65535)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        from aekit.data.files import _IMAGE_SUFFIXES, _images_in, _read_image

        self.folder = Path(folder)
        self.name = self.folder.name + "/"
        classes = sorted(p.name for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if classes:
            groups = [_images_in(self.folder / c, recursive=True) for c in classes]
            self.paths = [p for g in groups for p in g]
            self.labels = np.repeat(np.arange(len(groups), dtype=np.int64), [len(g) for g in groups])
        else:
            self.paths = _images_in(self.folder, recursive=False)
        if not self.paths:
            raise DataError(f"{self.folder} holds no images ({', '.join(_IMAGE_SUFFIXES)})")
        first = _read_image(self.paths[0])
        self.n_rows, self.dtype = len(self.paths), np.dtype(np.float32)
        self.row_shape = tuple(first.shape)

    def read(self, start: int, stop: int) -> np.ndarray:
        from aekit.data.files import _read_image

        out = np.empty((stop - start, *self.row_shape), dtype=np.float32)
        for i in range(start, stop):
            image = _read_image(self.paths[i])
            if image.ndim == 2 and len(self.row_shape) == 3:
                image = np.dstack([image] * 3)
            if image.shape != self.row_shape:
                raise DataError(f"Images must all have one size, but {self.paths[0]} is {self.row_shape} and "
                                f"{self.paths[i]} is {image.shape}; resize them first")
            out[i - start] = image
        return out


class Subset(RowSource):
    """Some rows of another source (sorted indices), e.g. a file's training rows without its held-out ones."""

    def __init__(self, source: RowSource, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows[0] < 0 or rows[-1] >= len(source) or (np.diff(rows) <= 0).any()):
            raise DataError("a subset's rows must be sorted, unique indices into the source")
        self.source, self.rows = source, rows
        self.name, self.row_shape, self.dtype = source.name, source.row_shape, source.dtype
        self.n_rows, self.scale = len(rows), source.scale
        self.labels = None if source.labels is None else source.labels[rows]

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.source.take(self.rows[start:stop])

    def release(self) -> None:
        self.source.release()


def open_rows(path: str | os.PathLike | np.ndarray, labels: Sequence | None = None) -> RowSource:
    """A data set as a :class:`RowSource`, without reading its rows: a ``.npy`` file (memory-mapped), a folder of
    ``.npy``/``.npz`` shards, a folder of images (decoded per read), or an array (kept as it is).

    Examples
    --------
    >>> rows = aekit.data.open_rows("digits-20m.npy")       # doctest: +SKIP
    >>> aekit.Autoencoder((300, 150)).fit(rows)            # doctest: +SKIP  (streamed when it does not fit)
    """
    if isinstance(path, np.ndarray):
        return ArraySource(path, labels=None if labels is None else np.asarray(labels))
    path = Path(path)
    if not path.exists():
        raise DataError(f"No such file: {path}")
    if path.is_dir():
        source: RowSource = ShardedSource(path) if is_shard_folder(path) else ImageFolderSource(path)
    elif path.suffix.lower() == ".npy":
        source = NpyFile(path)
    elif path.suffix.lower() == ".npz":
        key, shape, dtype, y = _npz_members(path)
        source = _NpzShard(path, key, shape, dtype)
        source.labels = y
    else:
        raise DataError(f"Cannot stream {path}: rows can be read lazily from .npy files, folders of .npy/.npz "
                        "shards and image folders; load other files whole (aekit.data.load_file)")
    if labels is not None:
        source.labels = np.asarray(labels)
    return source


def is_shard_folder(path: str | os.PathLike) -> bool:
    """A folder holding ``.npy``/``.npz`` files (read as shards; other folders are image folders)."""
    path = Path(path)
    return path.is_dir() and any(p.suffix.lower() in (".npy", ".npz") and p.is_file() and not p.name.startswith(".")
                                 for p in path.iterdir())


def is_source(X: Any) -> bool:
    return isinstance(X, RowSource)


__all__ = ["ArraySource", "ImageFolderSource", "NpyFile", "RowSource", "ShardedSource", "Subset", "is_shard_folder",
           "is_source", "open_rows"]
