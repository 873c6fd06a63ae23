"""User files: ``.npy``, ``.npz``, ``.csv``/``.tsv``/``.txt`` tables and folders of images.

Nothing is ever unpickled (``allow_pickle=False`` everywhere), so a hostile file cannot run code. NaN values are
read as they are; the estimators validate them.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from aekit.data._arrays import flatten_images
from aekit.errors import DataError, LimitError
from aekit.limits import check_bytes, human, max_image_pixels

LoadedFile = tuple[np.ndarray, np.ndarray | None, tuple[int, ...] | None]
_Raw = tuple[np.ndarray, np.ndarray | None, list[str] | None]  # (array, labels, header names)

_X_KEYS = ("X", "x", "data", "images")
_Y_KEYS = ("y", "labels", "targets")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


def load_file(path: str | os.PathLike[str], *,
              label_column: int | str | None = None) -> LoadedFile:
    """Read samples (and labels, if the file has them) from a user file or folder.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` array, a ``.npz`` archive (samples under ``X``/``x``/``data``/``images`` or its only array,
        labels under ``y``/``labels``/``targets``), a numeric ``.csv``/``.tsv``/``.txt`` table (header row
        detected), or a folder of images (png, jpg, jpeg, bmp, gif), flat or with one subfolder per class.
    label_column : int or str, optional
        For tables: the column (index, or header name) holding the labels, split off as ``y``.

    Returns
    -------
    X : numpy.ndarray
        float32, shape (n_samples, n_features). uint8 data is scaled to [0, 1]; other numbers are kept.
    y : numpy.ndarray or None
        Labels (int64 when they are whole numbers), or None.
    image_shape : tuple of int or None
        (H, W) for grayscale images, (C, H, W) for colour ones, None for tables.

    Raises
    ------
    DataError
        If the path is missing, unreadable, of an unknown kind, or holds non-numeric data.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"No such file: {path}")
    if path.is_dir():
        if label_column is not None:
            raise DataError(f"label_column applies to tables, but {path} is a folder of images: its labels "
                            "come from its subfolders (one per class)")
        return _load_image_folder(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"Cannot read {path}: unknown file type {path.suffix!r}; use one of "
                        f"{', '.join(_READERS)} or a folder of images")
    try:
        array, y, columns = reader(path, label_column) if reader is _read_table else reader(path)
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _read_error(exc, path) from exc
    if reader is _read_table and y is not None:
        pass  # the table's text label column, split off while reading
    elif label_column is not None:
        if y is not None:
            raise DataError(f"{path} already holds labels; drop label_column")
        array, y = _split_column(array, label_column, columns, path)
    X, image_shape = flatten_images(array, str(path))
    return X, _as_labels(y, len(X), path), image_shape


def _npy_header(f, where: str, available: int | None,
                check_memory: bool = True) -> tuple[tuple[int, ...], np.dtype, bool]:
    """The shape, dtype and Fortran order an ``.npy`` stream declares, checked before its data is read: no
    objects (pickles), as many bytes as it claims (``available``: the bytes after the header, when known), and
    (``check_memory``) within the memory limit as float32 features."""
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except (ValueError, OSError, SyntaxError, TypeError) as exc:
        raise DataError(f"Cannot read {where}: it is not a NumPy .npy/.npz file ({exc}; pickles are never "
                        "loaded); save arrays with np.save or np.savez") from None
    if dtype.hasobject:
        raise DataError(f"{where} holds Python objects (dtype=object), which aekit never loads because "
                        "unpickling can run arbitrary code; save a numeric array instead")
    count = math.prod(shape)
    if available is not None and available - f.tell() < count * dtype.itemsize:
        raise DataError(f"{where} is truncated: its header declares shape {shape} of {dtype} ({human(count * dtype.itemsize)}) "
                        f"but the file holds {human(max(0, available - f.tell()))} of data")
    if check_memory:
        check_bytes(max(count * dtype.itemsize, 4 * count), f"{where} (its header declares shape {shape} of {dtype})",
                    "stream it (aekit.data.open_rows; on the command line .npy files and shard folders larger than "
                    "memory are streamed), use a smaller file, or set AEKIT_MAX_MEMORY if the machine has room")
    return shape, dtype, bool(fortran)


def _read_npy(path: Path) -> _Raw:
    with open(path, "rb") as f:
        _npy_header(f, str(path), path.stat().st_size)
    return np.load(path, allow_pickle=False), None, None


def _read_npz(path: Path) -> _Raw:
    with zipfile.ZipFile(path) as archive:  # each member's header, before numpy inflates it
        for info in archive.infolist():
            check_bytes(info.file_size, f"{path}: {info.filename} (declared {human(info.file_size)} uncompressed)")
            with archive.open(info) as member:
                _npy_header(member, f"{path}: {info.filename}", info.file_size)
    with np.load(path, allow_pickle=False) as archive:
        keys = archive.files
        x_key = next((k for k in _X_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
        if x_key is None:
            raise DataError(f"{path} holds arrays {keys}; store the samples under 'X' (or 'x', 'data', 'images') "
                            "and the labels under 'y' (or 'labels', 'targets')")
        y_key = next((k for k in _Y_KEYS if k in keys), None)
        return archive[x_key], None if y_key is None else archive[y_key], None


def table_columns(path: str | os.PathLike, label_column: int | str | None = None) -> list[str] | None:
    """The column names in the header row of a table file (the label column left out), or None (no header, or
    not a table)."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".tsv", ".txt") or not path.is_file():
        return None
    with open(path, encoding="utf-8-sig", newline="") as f:
        first = next((line for line in f if line.strip()), "")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else next((d for d in ",\t;" if d in first), None)
    cells = [c.strip() for c in _split_row(first, delimiter)]
    if not cells or all(map(_is_number, cells)):
        return None
    if label_column is not None:
        index = _column_index(np.zeros((1, len(cells))), label_column, cells, path)
        cells = [c for k, c in enumerate(cells) if k != index % len(cells)]
    return cells


#: cells read as missing values (NaN) in a table: empty, and the usual spellings of "not available"
MISSING_CELLS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})


def _read_table(path: Path, label_column: int | str | None = None) -> _Raw:
    # a value takes at least 2 characters ("0,"), and is parsed as float64 first
    check_bytes(4 * path.stat().st_size, f"{path} ({human(path.stat().st_size)} of text, parsed as numbers)")
    with open(path, encoding="utf-8-sig", newline="") as f:
        first = next((line for line in f if line.strip()), "")
        if not first:
            raise DataError(f"{path} is empty; expected rows of numbers")
        delimiter = "\t" if path.suffix.lower() == ".tsv" else next((d for d in ",\t;" if d in first), None)
        cells = _split_row(first, delimiter)
        header = None if all(map(_is_number, cells)) else [cell.strip() for cell in cells]
        if header is None:
            f.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data": reported below
                table = np.loadtxt(f, dtype=np.float64, delimiter=delimiter, comments=None, quotechar='"', ndmin=2)
        except ValueError:  # missing cells, or a text column (labels): the slower reading, cell by cell
            f.seek(0)
            lines = (line for line in f if line.strip())
            if header is not None:
                next(lines)
            return _read_table_cells(lines, f, path, delimiter, header, label_column)
    if table.size == 0:
        raise DataError(f"{path} has a header row but no rows of numbers")
    if header is not None and len(header) != table.shape[1]:
        raise DataError(f"{path} has {len(header)} names in its header row but {table.shape[1]} columns of numbers")
    return table, None, header


def _read_table_cells(lines: Iterable[str], f: Any, path: Path, delimiter: str | None, header: list[str] | None,
                      label_column: int | str | None) -> _Raw:
    """A table with missing cells (:data:`MISSING_CELLS`, read as NaN) or a text label column (``label_column``,
    split off here: labels may be words such as "benign"); any other cell that is not a number is an error."""
    rows = [_split_row(line, delimiter) for line in lines]
    width = len(header) if header else (len(rows[0]) if rows else 0)
    if not rows or any(len(r) != width for r in rows):
        f.seek(0)
        raise _bad_cell(f, path, delimiter, header)
    cells = np.char.strip(np.array(rows, dtype=str))
    label = None
    if label_column is not None:
        label = int(np.arange(width)[_column_index(np.zeros((1, width)), label_column, header, path)])
    table = np.empty(cells.shape, dtype=np.float64)
    for j in range(width):
        if j == label:
            continue
        column = cells[:, j]
        missing = np.isin(np.char.lower(column), list(MISSING_CELLS))
        try:
            table[:, j] = np.where(missing, "nan", column).astype(np.float64)
        except ValueError:
            bad = next(i for i, c in enumerate(column) if not missing[i] and not _is_number(c))
            name = f" ({header[j]!r})" if header else ""
            raise DataError(f"{path}, row {bad + 1 + (header is not None)}, column {j + 1}{name}: {str(column[bad])!r} "
                            "is not a number; tables must be numeric (remove or encode text columns; missing cells "
                            f"may be empty or one of {', '.join(sorted(repr(m) for m in MISSING_CELLS if m))})"
                            ) from None
    if label is None:
        return table, None, header
    y = cells[:, label]
    y_out = y.astype(np.float64) if all(map(_is_number, y)) else y
    names = None if header is None else [n for k, n in enumerate(header) if k != label]
    return np.delete(table, label, axis=1), y_out, names


_READERS: dict[str, Callable[..., _Raw]] = {
    ".npy": _read_npy, ".npz": _read_npz, ".csv": _read_table, ".tsv": _read_table, ".txt": _read_table,
}


def _read_error(exc: Exception, path: Path) -> DataError:
    """What went wrong reading ``path``; numpy's refusals to unpickle get their own explanation."""
    if "pickle" not in str(exc).lower():
        return DataError(f"Cannot read {path}: {exc}")
    with open(path, "rb") as f:  # numpy refused to unpickle: an object array inside .npy/.npz, or neither format
        is_numpy = f.read(6).startswith((b"\x93NUMPY", b"PK"))
    if is_numpy:
        return DataError(f"{path} holds Python objects (dtype=object), which aekit never loads because "
                         "unpickling can run arbitrary code; save a numeric array instead")
    return DataError(f"Cannot read {path}: it is not a NumPy .npy/.npz file (pickles are never loaded); "
                     "save arrays with np.save or np.savez")


def _split_row(line: str, delimiter: str | None) -> list[str]:
    return line.split() if delimiter is None else next(csv.reader([line], delimiter=delimiter))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _bad_cell(lines: Iterable[str], path: Path, delimiter: str | None, header: list[str] | None) -> DataError:
    """Find the first row of a table numpy could not parse, and say what is wrong with it."""
    rows = ((row, line) for row, line in enumerate(lines, start=1) if line.strip())
    if header is not None:
        next(rows)  # the header row
    width = len(header) if header else None
    for row, line in rows:
        cells = _split_row(line, delimiter)
        width = width or len(cells)
        if len(cells) != width:
            return DataError(f"{path}, row {row} has {len(cells)} columns, but the rows above have {width}")
        for column, cell in enumerate(cells, start=1):
            if not _is_number(cell):
                name = f" ({header[column - 1]!r})" if header else ""
                return DataError(f"{path}, row {row}, column {column}{name}: {cell.strip()!r} is not a number; "
                                 "tables must be numeric (remove or encode text columns)")
    return DataError(f"Cannot read {path} as a table of numbers")


def _split_column(array: np.ndarray, label_column: int | str, columns: list[str] | None,
                  path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Split the label column off a 2-D table: (table without it, labels)."""
    index = _column_index(array, label_column, columns, path)
    return np.delete(array, index, axis=1), array[:, index]


def _column_index(array: np.ndarray, label_column: int | str, columns: list[str] | None, path: Path) -> int:
    """The index of ``label_column`` (a name in the header row, or an index, also given as text) in a table."""
    if array.ndim != 2:
        raise DataError(f"label_column needs a table, but {path} holds an array of shape {array.shape}")
    if isinstance(label_column, str) and columns is None and label_column.strip().lstrip("-").isdigit():
        label_column = int(label_column)  # an index given as text (the command line's --label-column 64)
    if isinstance(label_column, str):
        if columns is None or label_column not in columns:
            found = f"its columns are {columns}" if columns else "it has no header row; pass the column index"
            raise DataError(f"{path} has no column named {label_column!r}: {found}")
        index = columns.index(label_column)
    else:
        index = label_column
        if not -array.shape[1] <= index < array.shape[1]:
            raise DataError(f"label_column={index} is out of range: {path} has {array.shape[1]} columns")
    return index


def _as_labels(y: np.ndarray | None, n_samples: int, path: Path) -> np.ndarray | None:
    """Check that there is one label per sample; whole-number labels become int64."""
    if y is None:
        return None
    if y.shape != (n_samples,):
        raise DataError(f"{path} holds labels of shape {y.shape}, but {n_samples} samples; expected ({n_samples},)")
    integral = y.dtype.kind in "biu" or (y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all())
    return y.astype(np.int64) if integral else y


def _load_image_folder(folder: Path) -> LoadedFile:
    """A flat folder of images (y is None), or one subfolder per class (labels 0..k-1 by sorted name)."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        paths, y = _images_in(folder, recursive=False), None
    else:
        groups = [_images_in(folder / name, recursive=True) for name in classes]
        for name, group in zip(classes, groups):
            if not group:
                raise DataError(f"Class folder {folder / name} holds no images ({', '.join(_IMAGE_SUFFIXES)}); "
                                "add some or remove the folder")
        paths = [path for group in groups for path in group]
        y = np.repeat(np.arange(len(groups), dtype=np.int64), [len(group) for group in groups])
    if not paths:
        raise DataError(f"{folder} holds no images ({', '.join(_IMAGE_SUFFIXES)}); put images in it, "
                        "or one subfolder of images per class")
    first = _image_size(paths[0])
    check_bytes(4 * len(paths) * first, f"{folder} ({len(paths)} images of {first:,} values each, as float32)")
    images = [_read_image(path) for path in paths]
    for path, image in zip(paths, images):
        if image.shape[:2] != images[0].shape[:2]:
            (h0, w0), (h, w) = images[0].shape[:2], image.shape[:2]
            raise DataError(f"Images must all have one size, but {paths[0]} is {h0}x{w0} (height x width) and "
                            f"{path} is {h}x{w}; resize them first")
    if any(image.ndim == 3 for image in images):  # colour: all (3, H, W)
        stack = np.stack([np.dstack([im] * 3) if im.ndim == 2 else im for im in images]).transpose(0, 3, 1, 2)
    else:
        stack = np.stack(images)  # (n, H, W)
    X, image_shape = flatten_images(stack, str(folder))
    return X, y, image_shape


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())


def _open_image(path: Path):
    """The image at ``path``, opened (header only) and checked against the pixel limit before it is decoded."""
    from PIL import Image  # matplotlib's dependency; imported only when images are read

    try:
        with warnings.catch_warnings():  # aekit checks the size itself, below, against its own limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:  # Pillow's own check, beyond 2 x its default limit
        raise LimitError(f"image {path} declares more pixels than the limit of {max_image_pixels():,} "
                         f"(AEKIT_MAX_IMAGE_PIXELS): {exc}; resize it") from None
    except OSError as exc:  # includes PIL.UnidentifiedImageError
        raise DataError(f"Cannot read image {path}: {exc}; fix or remove it") from None
    width, height = image.size
    if width * height > max_image_pixels():
        image.close()
        raise LimitError(f"image {path} declares {width} x {height} pixels, more than the limit of "
                         f"{max_image_pixels():,} (AEKIT_MAX_IMAGE_PIXELS); resize it")
    return image


def _image_size(path: Path) -> int:
    """Values (pixels times colour channels) the image at ``path`` will give, from its header."""
    with _open_image(path) as image:
        width, height = image.size
        return width * height * (1 if image.mode in _GRAY_MODES else 3)


def _read_image(path: Path) -> np.ndarray:
    """float32 in [0, 1]: (H, W) for grayscale images, (H, W, 3) for colour ones (alpha dropped, palettes
    expanded); 16-bit grayscale is scaled by 65535, 8-bit by 255."""
    from PIL import Image

    try:
        with _open_image(path) as image:
            if image.mode.startswith("I;16"):
                return np.asarray(image, dtype=np.float32) / 65535
            if image.mode in ("I", "F"):  # 32-bit integer or float pixels: taken as 16-bit / as they are
                values = np.asarray(image, dtype=np.float32)
                return values / 65535 if image.mode == "I" else values
            return np.asarray(image.convert("L" if image.mode in _GRAY_MODES else "RGB"), dtype=np.float32) / 255
    except (OSError, Image.DecompressionBombError) as exc:  # truncated files and the like
        raise DataError(f"Cannot read image {path}: {exc}; fix or remove it") from None
