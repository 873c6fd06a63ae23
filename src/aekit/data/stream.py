"""Training and inference on a :class:`~aekit.data.sources.RowSource` that is not loaded: batches read per window
of blocks, converted to float32 per batch, with the next window read by a thread while the step computes.

**The order of an epoch** (exact, seeded, resumable): the rows are cut into blocks of ``block_rows`` consecutive
rows; a seeded permutation orders the blocks; consecutive permuted blocks form windows of ``window_rows`` rows;
each window's rows are permuted by a generator seeded with (epoch seed, window number). Every row comes exactly
once per epoch; position ``p`` of the epoch is a pure function of (seed, p), so a resume at batch ``b`` starts
reading at the window holding it without replaying anything before it. The epoch seed is drawn from the
training generator, whose state each checkpoint records (:class:`~aekit.training.loop.Position`).

**Under torchrun** rank ``r`` of ``N`` takes the epoch's positions ``r, r + N, ...`` (as the in-memory path takes
``perm[r::N]``) and reads only those rows; batch ``b`` of the N ranks together is batch ``b`` of one process with
N times the batch, so N ranks train the weights one process trains (to float rounding).

Memory: two windows in the stored dtype (the one being trained on, the one being read), and one batch in float32.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from aekit.data.sources import ArraySource, RowSource, is_source
from aekit.errors import DataError
from aekit.limits import human, memory_limit

log = logging.getLogger("aekit.data")

BLOCK_ROWS = 4096
WINDOW_BYTES = 128 << 20  # stored bytes per window (AEKIT_WINDOW_BYTES, e.g. 32M): about four are held at a time
#                           (the one trained on, and the next one's read and its reordered copy)
IN_MEMORY_SHARE = 0.25  # in_memory="auto": keep the data in memory when its float32 copy takes at most this
#                        share of the memory limit (the model, a validation split and the copies need the rest)


def fits_in_memory(source: RowSource) -> bool:
    """``in_memory="auto"``'s rule: float32 features of every row within :data:`IN_MEMORY_SHARE` of the memory
    limit (:func:`aekit.limits.memory_limit`: ``AEKIT_MAX_MEMORY`` or what the machine has available)."""
    return 4 * source.n_rows * source.n_features <= IN_MEMORY_SHARE * memory_limit()


def choose(X: Any, in_memory: Any = "auto", notice: Callable[[str], None] | None = None) -> Any:
    """``X`` as the estimators take it: a source to stream, or an array in memory. Sources are loaded when
    ``in_memory`` is True, or "auto" and they fit (:func:`fits_in_memory`); a ``np.memmap`` larger than that is
    streamed ("auto") or with ``in_memory=False``; other arrays are returned as they are. The choice is logged
    (``notice``, or the ``aekit.data`` logger)."""
    if not is_source(X) and (not isinstance(X, np.memmap) or in_memory is True):
        return X
    source = X if is_source(X) else ArraySource(X, name=str(getattr(X, "filename", None) or "X"))
    stream = in_memory is False or (in_memory == "auto" and not fits_in_memory(source))
    if not stream and source is not X:
        return X  # a np.memmap that fits: taken as the array it is, as always
    float_size = human(4 * source.n_rows * source.n_features)
    if stream:
        text = (f"data: streaming {source.describe()} in windows of {human(window_size())} "
                f"(as float32 it would take {float_size}; in_memory={in_memory!r})")
    else:
        text = f"data: loading {source.describe()} into memory ({float_size} as float32; in_memory={in_memory!r})"
    (notice or log.info)(text)
    return source if stream else source.to_array()


def window_size() -> int:
    """Stored bytes per window: ``AEKIT_WINDOW_BYTES`` (bytes, or with K/M/G) or :data:`WINDOW_BYTES`. The window
    is part of the epoch's order: a run resumes with the same setting to resume bit for bit."""
    from aekit.limits import parse_size

    configured = os.environ.get("AEKIT_WINDOW_BYTES")
    return parse_size(configured) if configured else WINDOW_BYTES


class BlockOrder:
    """The order of one epoch's rows (see the module docstring): positions ``0 .. n_rows - 1`` to row numbers."""

    def __init__(self, n_rows: int, seed: int, block_rows: int = BLOCK_ROWS, window_rows: int | None = None) -> None:
        self.n_rows, self.seed, self.block_rows = int(n_rows), int(seed), max(1, int(block_rows))
        n_blocks = -(-self.n_rows // self.block_rows)
        blocks_per_window = max(1, -(-int(window_rows or self.n_rows) // self.block_rows))
        self.blocks = np.random.default_rng([self.seed, 0]).permutation(n_blocks)
        self.windows = [self.blocks[i : i + blocks_per_window] for i in range(0, n_blocks, blocks_per_window)]
        sizes = [sum(self._block_len(b) for b in w) for w in self.windows]
        self.starts = np.cumsum([0, *sizes])  # first position of each window

    def _block_len(self, block: int) -> int:
        return min(self.block_rows, self.n_rows - block * self.block_rows)

    def window(self, w: int) -> np.ndarray:
        """Row numbers of window ``w``'s positions, in order (int64)."""
        rows = np.concatenate([np.arange(b * self.block_rows, b * self.block_rows + self._block_len(b))
                               for b in self.windows[w]])
        return rows[np.random.default_rng([self.seed, 1, w]).permutation(len(rows))]

    def rows(self) -> np.ndarray:
        """The whole epoch's order (for tests and small data)."""
        return np.concatenate([self.window(w) for w in range(len(self.windows))])


def _read_ahead(read: Callable[..., np.ndarray], calls: list[tuple]) -> Iterator[np.ndarray]:
    """``read(*args)`` for each ``args`` of ``calls`` in turn, the next one running on a thread while the caller
    works on the current one."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="aekit-reader")
    try:
        pending = pool.submit(read, *calls[0]) if calls else None
        for i in range(len(calls)):
            result = pending.result()
            if i + 1 < len(calls):
                pending = pool.submit(read, *calls[i + 1])
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _positions(lo: int, hi: int, rank: int, n_ranks: int) -> np.ndarray:
    """Positions ``p`` in ``[lo, hi)`` with ``p % n_ranks == rank``."""
    first = lo + (rank - lo) % n_ranks
    return np.arange(first, hi, n_ranks, dtype=np.int64)


class Stream:
    """A :class:`RowSource` fed to the training loop: ``len()``, ``shape``, ``dtype`` and ``device`` of the
    float32 rows it gives, and :meth:`batches` for one epoch of one rank."""

    dtype = torch.float32

    def __init__(self, source: RowSource, device: torch.device, block_rows: int | None = None,
                 window_bytes: int | None = None) -> None:
        self.source, self.device = source, torch.device(device)
        self.block_rows = int(block_rows or BLOCK_ROWS)
        row_bytes = max(1, source.n_features * source.dtype.itemsize)
        self.window_rows = max(self.block_rows, int(window_bytes or window_size()) // row_bytes)
        self.shape = (len(source), source.n_features)

    def __len__(self) -> int:
        return len(self.source)

    def epoch_seed(self, generator: torch.Generator) -> int:
        """The epoch's order seed, drawn from the training generator (its state at the epoch's start is what
        checkpoints record, so a resumed epoch draws the same)."""
        return int(torch.randint(0, 2**62, (1,), generator=generator))

    def to_rows(self, raw: np.ndarray, out: torch.Tensor) -> torch.Tensor:
        """Stored rows into the float32 buffer ``out`` (its first ``len(raw)`` rows): channels moved first,
        uint8 divided by 255 (the same bits as :func:`aekit.data.load_file`'s conversion)."""
        src = torch.from_numpy(raw)
        if self.source.channels_last:
            src = src.permute(0, 3, 1, 2)
        view = out[: len(raw)]
        view.copy_(src.reshape(len(raw), -1))
        if self.source.scale is not None:
            view.div_(self.source.scale)
        return view

    def _read_window(self, order: BlockOrder, w: int, lo: int, hi: int, rank: int, n_ranks: int) -> np.ndarray:
        """This rank's rows of window ``w`` at positions ``[lo, hi)`` (clipped to the window), in order, stored
        dtype; only those rows are read."""
        start = int(order.starts[w])
        pos = _positions(max(lo, start), min(hi, int(order.starts[w + 1])), rank, n_ranks)
        rows = order.window(w)[pos - start]
        sort = np.argsort(rows, kind="stable")
        data = self.source.take(rows[sort])
        if data.dtype.kind == "f":
            finite = np.isfinite(data.reshape(len(data), -1)).all(axis=1)
            if not finite.all():
                bad = int(rows[sort][np.flatnonzero(~finite)[0]])
                raise DataError(f"{self.source.name} holds NaN or infinite values (row {bad}); clean the data first")
        out = np.empty_like(data)
        out[sort] = data  # back into the epoch's order
        return out

    def batches(self, seed: int, rank: int, n_ranks: int, local_batch: int, first_batch: int,
                out: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's batches ``first_batch ..`` of the epoch ordered by ``seed``, each in ``out`` (reused), as
        (inputs, targets) pairs as the loop takes them: the targets are the rows themselves."""
        n = len(self) - len(self) % n_ranks
        order = BlockOrder(len(self), seed, self.block_rows, self.window_rows)
        begin = first_batch * local_batch * n_ranks  # the epoch position of this rank's first batch (rank 0's)
        calls = [(order, w, begin, n, rank, n_ranks) for w in range(len(order.windows))
                 if order.starts[w + 1] > begin and order.starts[w] < n]
        carry: np.ndarray | None = None  # rows of a batch that began in an earlier window
        with contextlib.closing(_read_ahead(self._read_window, calls)) as windows:
            for data in windows:
                s = 0
                if carry is not None:
                    need = local_batch - len(carry)
                    if len(data) < need:
                        carry = np.concatenate([carry, data])
                        continue
                    xb = self.to_rows(np.concatenate([carry, data[:need]]), out)
                    yield xb, xb
                    s, carry = need, None
                while s + local_batch <= len(data):
                    xb = self.to_rows(data[s : s + local_batch], out)
                    yield xb, xb
                    s += local_batch
                if s < len(data):
                    carry = data[s:]
        if carry is not None:
            xb = self.to_rows(carry, out)
            yield xb, xb
        self.source.release()


def map_source(fn: Callable[[torch.Tensor], torch.Tensor], source: RowSource, device: torch.device,
               out: np.ndarray | None = None, min_rows: int = 1, batch_size: int = 4096) -> np.ndarray:
    """``fn`` over every row of ``source`` in order (inference: no shuffling), the next window read while this
    one computes; results go into ``out`` (allocated after the first chunk, checked against the memory limit, when
    None), which is returned."""
    from aekit.limits import check_bytes
    from aekit.training.loop import map_batches

    n = len(source)
    if out is not None and len(out) != n:
        raise DataError(f"out has {len(out)} rows, but {source.name} has {n}")
    stream = Stream(source, device)
    chunk = stream.window_rows
    spans = [(a, min(n, a + chunk)) for a in range(0, n, chunk)]
    buf = torch.empty((min(batch_size, n), source.n_features), dtype=torch.float32, device=stream.device)
    with contextlib.closing(_read_ahead(source.read, spans)) as windows:
        try:
            for (a, b), raw in zip(spans, windows):
                for s in range(0, b - a, batch_size):  # one float32 batch at a time: the window stays in its dtype
                    x = stream.to_rows(raw[s : s + batch_size], buf)
                    if source.dtype.kind == "f" and not torch.isfinite(x).all():
                        raise DataError(f"{source.name} holds NaN or infinite values (rows {a + s}..{a + s + len(x) - 1});"
                                        " clean the data first")
                    result = map_batches(fn, x, batch_size, min_rows=min_rows).cpu().numpy()
                    if out is None:
                        shape = (n, *result.shape[1:])
                        check_bytes(math.prod(shape) * result.dtype.itemsize, f"the output for {n:,} rows {shape}",
                                    "pass out= an array on disk (np.lib.format.open_memmap), or `aekit encode --out x.npy`")
                        out = np.empty(shape, dtype=result.dtype)
                    out[a + s : a + s + len(x)] = result
        finally:
            source.release()
    return out


__all__ = ["BlockOrder", "Stream", "choose", "fits_in_memory", "map_source"]
