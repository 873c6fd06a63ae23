"""Looking at same-hash buckets: do the items that share a code look alike? (Salakhutdinov & Hinton 2008, fig. 3
in spirit; the exercise's "images with the same hash should look alike".)"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..errors import DataError
from ..viz._grid import show_image
from .index import unpack_bits
from .metrics import bucket_ids


def plot_buckets(
    X: np.ndarray,
    codes: np.ndarray,
    image_shape: Sequence[int] | None = None,
    *,
    labels: np.ndarray | None = None,
    n_buckets: int = 8,
    per_bucket: int = 8,
    which: str = "random",
    min_size: int = 2,
    n_bits: int | None = None,
    random_state: int = 0,
) -> Figure:
    """One row per bucket (items with the same code), ``per_bucket`` of its items drawn at random.

    Parameters
    ----------
    X : array (n, n_features)
        The items, drawn as images of ``image_shape``.
    codes : uint8 array (n, bytes)
        Their packed codes.
    labels : array (n,), optional
        Shown above each image.
    which : {"random", "largest"}, default="random"
        ``"random"``: buckets drawn at random, with probability proportional to their size (so the rows show
        what a random item's bucket looks like), among those of at least ``min_size`` items; ``"largest"``: the
        largest buckets.
    n_bits : int, optional
        If given, each row is labelled with its code as a bit string, else in hexadecimal.
    """
    X, codes = np.asarray(X), np.asarray(codes)
    if len(X) != len(codes):
        raise DataError(f"X has {len(X)} rows but codes has {len(codes)}")
    if which not in ("random", "largest"):
        raise DataError(f"which must be 'random' or 'largest', got {which!r}")
    bucket, sizes = bucket_ids(codes)
    eligible = np.flatnonzero(sizes >= min_size)
    if len(eligible) == 0:
        raise DataError(f"no bucket holds {min_size} or more items: nothing to show")
    rng = np.random.default_rng(random_state)
    n_rows = min(n_buckets, len(eligible))
    if which == "largest":
        chosen = eligible[np.argsort(-sizes[eligible], kind="stable")[:n_rows]]
    else:
        chosen = rng.choice(eligible, n_rows, replace=False, p=sizes[eligible] / sizes[eligible].sum())
        chosen = chosen[np.argsort(-sizes[chosen], kind="stable")]
    fig = Figure(figsize=(1.0 * per_bucket + 1.6, (1.0 + 0.25 * (labels is not None)) * n_rows + 0.3),
                 layout="constrained")
    axes = fig.subplots(n_rows, per_bucket, squeeze=False)
    for row, b in enumerate(chosen):
        members = np.flatnonzero(bucket == b)
        shown = np.sort(rng.choice(members, min(per_bucket, len(members)), replace=False))
        code = codes[members[0]]
        name = ("".join("1" if v else "0" for v in unpack_bits(code[None], n_bits)[0]) if n_bits
                else code.tobytes().hex())
        for col, ax in enumerate(axes[row]):
            if col >= len(shown):
                ax.set_axis_off()
                continue
            show_image(ax, X[shown[col]], image_shape)
            if labels is not None:
                ax.set_title(str(labels[shown[col]]), fontsize=8, pad=2)
        if n_bits and n_bits > 16:  # a long bit string: two lines
            name = name[: len(name) // 2] + "\n" + name[len(name) // 2 :]
        axes[row, 0].set_ylabel(f"{name}\n{sizes[b]} items", fontsize=6, rotation=0, ha="right", va="center",
                                family="monospace")
    fig.suptitle(f"{n_rows} same-hash buckets ({which}), {per_bucket} items each", fontsize=10)
    return fig
