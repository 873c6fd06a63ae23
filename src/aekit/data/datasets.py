"""Named datasets: a registry of loaders, the folder search for the IDX files, and their verified download.

``load_dataset(name)`` returns ``Dataset(X_train, y_train, X_test, y_test, image_shape)``. MNIST-like datasets
are looked for, in order, in ``data_dir`` (or ``data_dir/<name>``), ``$AEKIT_DATA_DIR/<name>``, the user cache
(``$AEKIT_CACHE_DIR/<name>``, else ``$XDG_CACHE_HOME/aekit/<name>``, else ``~/.cache/aekit/<name>``) and
``/usr/share/datasets/<name>``; if absent they are downloaded into the cache and checked against SHA-256s.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from aekit.data._arrays import as_float32, flatten_images
from aekit.data.idx import read_idx
from aekit.errors import DataError
from aekit.io import atomic_write
from aekit.registry import Registry

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
# SHA-256 of the uncompressed files (gzip wrappers differ between copies; the content does not)
_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
_SYSTEM_DIR = Path("/usr/share/datasets")
_TIMEOUT_S = 30


class Dataset(NamedTuple):
    """A train/test split: X are float32 (n, features) in [0, 1], y are int64, image_shape is (H, W) or (C, H, W)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, ...]


DatasetLoader = Callable[[Path | None, bool], Dataset]
DATASETS: Registry[DatasetLoader] = Registry("dataset")
register_dataset = DATASETS.register
available_datasets = DATASETS.available


def load_dataset(name: str, *, data_dir: str | os.PathLike[str] | None = None, download: bool = True) -> Dataset:
    """Load a named dataset.

    Parameters
    ----------
    name : str
        One of :func:`available_datasets`, e.g. ``"digits"``, ``"mnist"``, ``"fashion-mnist"``.
    data_dir : str or path-like, optional
        A folder holding the dataset's files (or a ``<name>/`` subfolder with them), searched first.
    download : bool, default True
        Download missing files into the user cache (verified against known SHA-256 checksums).

    Returns
    -------
    Dataset
        ``(X_train, y_train, X_test, y_test, image_shape)``.

    Raises
    ------
    DataError
        If the name is unknown, or the files are missing, corrupt or cannot be downloaded.
    """
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}; available datasets: {', '.join(available_datasets())}. "
                        "For your own data use aekit.data.load_file(path)")
    return DATASETS.get(name)(None if data_dir is None else Path(data_dir).expanduser(), download)


@register_dataset("digits")
def _digits(data_dir: Path | None, download: bool) -> Dataset:
    """scikit-learn's 8x8 digits (embedded, 1797 images), split 80/20, stratified and fixed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, test_size=0.2, random_state=0, stratify=y)
    return Dataset(as_float32(X_train, "digits"), y_train.astype(np.int64),
                   as_float32(X_test, "digits"), y_test.astype(np.int64), (8, 8))


@register_dataset("mnist")
def _mnist(data_dir: Path | None, download: bool) -> Dataset:
    return _load_idx_dataset("mnist", data_dir, download)


@register_dataset("fashion-mnist")
def _fashion_mnist(data_dir: Path | None, download: bool) -> Dataset:
    return _load_idx_dataset("fashion-mnist", data_dir, download)


def _load_idx_dataset(name: str, data_dir: Path | None, download: bool) -> Dataset:
    folders = _search_folders(name, data_dir)
    files = next(filter(None, map(_find_files, folders)), None)
    if files is None and not download:
        raise DataError(f"Dataset {name!r} not found. {_where_to_put_it(name, folders)}, or pass download=True")
    if files is None:
        files = _download(name, folders)
    train_images, train_labels, test_images, test_labels = map(read_idx, files)
    X_train, image_shape = _check_split(train_images, train_labels, files[0], files[1])
    X_test, test_shape = _check_split(test_images, test_labels, files[2], files[3])
    if test_shape != image_shape:
        raise DataError(f"{files[0]} holds {image_shape} images but {files[2]} holds {test_shape} images; "
                        "the four files should come from the same dataset")
    return Dataset(X_train, train_labels.astype(np.int64), X_test, test_labels.astype(np.int64), image_shape)


def _check_split(images: np.ndarray, labels: np.ndarray, images_path: Path,
                 labels_path: Path) -> tuple[np.ndarray, tuple[int, ...]]:
    """Images (n, H, W) uint8 and n labels -> X float32 (n, H*W) in [0, 1] and (H, W)."""
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path} should hold uint8 images of shape (n, height, width), "
                        f"but holds {images.dtype} of shape {images.shape}")
    if labels.shape != images.shape[:1]:
        raise DataError(f"{labels_path} holds labels of shape {labels.shape}, but {images_path} holds "
                        f"{len(images)} images; the two files should come from the same dataset")
    X, image_shape = flatten_images(images, str(images_path))
    assert image_shape is not None  # (n, H, W) always has one
    return X, image_shape


def _search_folders(name: str, data_dir: Path | None) -> list[Path]:
    folders = [] if data_dir is None else [data_dir, data_dir / name]
    if root := os.environ.get("AEKIT_DATA_DIR"):
        folders.append(Path(root).expanduser() / name)
    return [*folders, _cache_folder(name), _SYSTEM_DIR / name]


def _cache_folder(name: str) -> Path:
    if root := os.environ.get("AEKIT_CACHE_DIR"):
        return Path(root).expanduser() / name
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "aekit" / name


def _find_files(folder: Path) -> list[Path] | None:
    """The 4 IDX files in ``folder`` (each uncompressed or .gz), or None if any is missing."""
    files = [next((p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()), None) for stem in _IDX_FILES]
    return None if None in files else files  # type: ignore[return-value]


def _where_to_put_it(name: str, folders: list[Path]) -> str:
    return (f"Searched: {', '.join(map(str, folders))}. Set AEKIT_DATA_DIR to a folder containing {name}/ with "
            f"the 4 files {', '.join(f'{stem}[.gz]' for stem in _IDX_FILES)}")


def _download(name: str, folders: list[Path]) -> list[Path]:
    """Download the missing files of ``name`` into the user cache; return the paths of all 4."""
    cache = _cache_folder(name)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"Cannot create the cache folder {cache} ({exc.strerror or exc}); set AEKIT_CACHE_DIR "
                        f"to a writable folder. {_where_to_put_it(name, folders)}") from exc
    present = _find_files(cache) or [None] * len(_IDX_FILES)
    return [path or _download_file(name, stem, cache, folders) for stem, path in zip(_IDX_FILES, present)]


def _download_file(name: str, stem: str, cache: Path, folders: list[Path]) -> Path:
    """Fetch ``stem``.gz from the first mirror that serves it with the right checksum; write it atomically."""
    failures = []
    for mirror in _MIRRORS[name]:
        url = f"{mirror}{stem}.gz"
        try:
            with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
                payload = response.read()
            digest = hashlib.sha256(gzip.decompress(payload)).hexdigest()
        except (OSError, EOFError, zlib.error, http.client.HTTPException) as exc:  # URLError, timeout, bad gzip
            failures.append(f"{url}: {exc}")
            continue
        if digest != _SHA256[name][stem]:  # never written: nothing to clean up
            failures.append(f"{url}: SHA-256 mismatch (got {digest}, expected {_SHA256[name][stem]})")
            continue
        path = cache / f"{stem}.gz"
        try:
            atomic_write(path, payload)
        except OSError as exc:
            raise DataError(f"Cannot write {path} ({exc.strerror or exc}); free some disk space or set "
                            "AEKIT_CACHE_DIR to a writable folder") from exc
        return path
    raise DataError(f"Dataset {name!r} not found and its download failed: {'; '.join(failures)}. "
                    f"{_where_to_put_it(name, folders)}, or connect to the internet and try again")
