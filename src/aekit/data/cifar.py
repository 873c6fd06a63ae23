"""CIFAR-10 from the official "python version" batches (``cifar-10-batches-py``: ``data_batch_1`` .. ``data_batch_5``,
``test_batch``), when present; there is no download (for other colour images, use an image folder).

The batches are pickled dicts, so reading them needs the pickle machinery, which aekit never uses for its own files.
They are read with a restricted unpickler that resolves only the few globals a pickled numpy array needs (its
reconstructor, ``ndarray``, ``dtype``, numpy's ``_frombuffer`` and ``_codecs.encode`` for protocol-2 bytes) and
refuses every other global, so a tampered file cannot call anything else (``os.system``, ``eval``, ...) and
fails with a DataError instead. Object arrays are refused too.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from aekit.data.datasets import Dataset, _search_folders, register_dataset
from aekit.errors import DataError

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
IMAGE_SHAPE = (3, 32, 32)
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

_reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array reconstructor, whatever module holds it


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    # numpy's own _frombuffer (pickle protocol 5): a copy of the bytes, viewed with the dtype, reshaped
    return np.frombuffer(bytes(buffer), dtype=dtype).reshape(shape, order=order)


_ALLOWED: dict[tuple[str, str], Any] = {
    **{(module, "_reconstruct"): _reconstruct for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_frombuffer"): _frombuffer for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): lambda text, encoding: codecs.encode(text, _latin1(encoding)),  # protocol-2 bytes
}


def _latin1(encoding: str) -> str:
    if encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with {encoding!r}: only latin1 is used for bytes")
    return encoding


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load the global {module}.{name}: a CIFAR batch holds only "
                                         "numpy arrays, lists, numbers and strings") from None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (images uint8 (n, 3072) in C, H, W order, labels int64 (n,))."""
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataError(f"Cannot read the CIFAR-10 batch {path}: {exc}; download it again from {URL}") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch (it holds a {type(batch).__name__}, not a dict)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' should be a uint8 array of shape (n, 3072), got "
                        f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        y = np.empty(0)
    if y.shape != (len(data),) or (len(y) and (y.min() < 0 or y.max() > 9)):
        raise DataError(f"{path}: 'labels' should hold {len(data)} integers in 0..9")
    return data, y


def find_folder(data_dir: Path | None) -> Path:
    """The ``cifar-10-batches-py`` folder: in each searched folder (``data_dir``, ``$AEKIT_DATA_DIR/cifar10``, the
    user cache, ``/usr/share/datasets/cifar10``), the folder itself or its ``cifar-10-batches-py`` subfolder."""
    searched = []
    for folder in _search_folders("cifar10", data_dir):
        for candidate in (folder / FOLDER, folder):
            searched.append(candidate)
            if (candidate / TEST_BATCH).is_file() and all((candidate / b).is_file() for b in TRAIN_BATCHES):
                return candidate
    raise DataError(
        f"Dataset 'cifar10' not found. Searched: {', '.join(map(str, searched))}. Download {URL} (163 MB), "
        f"extract it and set AEKIT_DATA_DIR to a folder holding cifar10/{FOLDER}/ (data_batch_1..5, test_batch); "
        "or train on a folder of colour images with --data DIR (aekit.load_file(DIR))")


@register_dataset("cifar10")
def _cifar10(data_dir: Path | None, download: bool) -> Dataset:
    """CIFAR-10: 50,000 training and 10,000 test images, rows of 3072 float32 in [0, 1] in (C, H, W) order
    (``X.reshape(-1, 3, 32, 32)`` gives the images), image_shape (3, 32, 32)."""
    folder = find_folder(data_dir)
    train = [read_batch(folder / name) for name in TRAIN_BATCHES]
    test_images, test_labels = read_batch(folder / TEST_BATCH)
    X_train = _scaled(np.concatenate([images for images, _ in train]))
    y_train = np.concatenate([labels for _, labels in train])
    return Dataset(X_train, y_train, _scaled(test_images), test_labels, IMAGE_SHAPE)


def _scaled(images: np.ndarray) -> np.ndarray:
    out = images.astype(np.float32)
    out /= 255  # in place: one float32 copy
    return out
