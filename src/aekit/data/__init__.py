"""Data loading: IDX files, named datasets (digits, MNIST, Fashion-MNIST, shapes) and user files."""

from __future__ import annotations

from aekit.data.binarize import binarize
from aekit.data.datasets import Dataset, available_datasets, load_dataset, register_dataset
from aekit.data import cifar as _cifar  # noqa: F401  (registers "cifar10")
from aekit.data.files import load_file
from aekit.data.idx import read_idx
from aekit.data.shapes import make_shapes  # registers "shapes"
from aekit.data.toy import make_tilted_sheet

__all__ = ["Dataset", "available_datasets", "binarize", "load_dataset", "load_file", "make_shapes", "make_tilted_sheet", "read_idx", "register_dataset"]
