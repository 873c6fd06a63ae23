"""A Hamming-space index of packed binary codes on faiss's binary indexes, with radius and k-NN queries.

Codes are packed little-endian (bit ``i`` of a code is bit ``i % 8`` of byte ``i // 8``, as
``np.packbits(bits, axis=1, bitorder="little")`` writes them), so the ``n_bits`` real bits come first and the
padding bits (always 0, so they never change a distance) come last: faiss's ``IndexBinaryHash`` keys a code by
its *first* ``b`` bits, and with ``b = n_bits`` the key is the whole code.

Which faiss index answers what (measured on 1,000,000 30-bit codes, single queries on one thread; the numbers
with real autoencoder codes are in docs/hashing-benchmarks.md):

* radius ``r`` with ``sum_{i<=r} C(b, i)`` probes small next to the index size: ``IndexBinaryHash`` (b = n_bits,
  up to 64) with ``nflip = r``. It looks up every bucket within ``r`` bit flips of the query's key and keeps the
  codes at distance ``<= r``; exact, because a code within ``r`` of the query differs from it by at most ``r``
  bits inside the key. Radius 2: 466 probes, ~0.06 ms, against ~0.5 ms for a linear scan; building the table
  takes ~0.7 s.
* any other radius, and k-NN: ``IndexBinaryFlat`` (an exhaustive popcount scan, ~1 ms per k-NN query; no build
  cost). ``IndexBinaryMultiHash`` (pigeonhole over ``r + 1`` substrings, 3 tables of 10 bits for radius 2) was
  slower than the single table (0.19 ms) because it verifies every code that shares a substring, so it is not
  used.

faiss's binary ``range_search`` keeps distances strictly *below* its radius; :meth:`HammingIndex.range_search`
passes ``r + 1`` so that ``radius=r`` includes distance ``r``.

Ids are kept beside faiss (one int64 per code, position -> id), so any integer ids work and the saved form is just
the packed codes and the ids; faiss's own structures are rebuilt on load (0.65 s per million codes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from math import comb

import numpy as np

from ..errors import ConfigError, DataError, MissingDependency

# a hash-table probe costs about this many linear-scan code comparisons (measured: 0.13 us vs 0.5 ns)
_PROBE_COST_IN_SCANS = 256
MAX_HASH_BITS = 64  # IndexBinaryHash keys are 64-bit integers
# below this many query rows faiss runs on one OpenMP thread: splitting one query's scan over threads gained
# nothing and, on a busy 2-core machine, raised the 90th-percentile latency of a 1M-code scan from 0.7 ms to 24 ms
# (k-NN: 2 ms to 140 ms); batches of queries still use every thread (faiss parallelises over queries)
_PARALLEL_MIN_QUERIES = 32


def _faiss():
    """faiss, imported on first use (0.2 s; ``import aekit`` does not need it)."""
    try:
        import faiss
    except ImportError:
        raise MissingDependency("the Hamming index needs faiss: pip install faiss-cpu") from None
    return faiss


def n_bytes(n_bits: int) -> int:
    """Bytes in one packed code: ``ceil(n_bits / 8)``."""
    return -(-int(n_bits) // 8)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Boolean (n, n_bits) -> packed uint8 (n, ceil(n_bits / 8)), little-endian bit order, zero padding last."""
    bits = np.asarray(bits)
    if bits.ndim != 2:
        raise DataError(f"bits must be a 2-D (n, n_bits) array, got shape {bits.shape}")
    return np.packbits(bits.astype(bool, copy=False), axis=1, bitorder="little")


def unpack_bits(codes: np.ndarray, n_bits: int) -> np.ndarray:
    """Packed uint8 (n, ceil(n_bits / 8)) -> boolean (n, n_bits)."""
    return np.unpackbits(np.asarray(codes, dtype=np.uint8), axis=1, count=int(n_bits), bitorder="little").astype(bool)


def hamming_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All pairwise Hamming distances between packed codes: (n_a, n_b) int32 (brute force, numpy)."""
    a, b = np.asarray(a, dtype=np.uint8), np.asarray(b, dtype=np.uint8)
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=2, dtype=np.int32)


@contextmanager
def _threads_for(n_queries: int) -> Iterator[None]:
    """One OpenMP thread for a few queries (restored afterwards; the setting is process-wide)."""
    faiss = _faiss()
    if n_queries >= _PARALLEL_MIN_QUERIES:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class HammingIndex:
    """Packed binary codes and their ids, searchable by Hamming radius or by k nearest neighbours.

    Parameters
    ----------
    n_bits : int
        Bits per code; codes are uint8 arrays of shape (n, ceil(n_bits / 8)).
    strategy : {"auto", "hash", "flat"}, default="auto"
        How radius queries run: ``"hash"`` (bucket probes, ``IndexBinaryHash``), ``"flat"`` (exhaustive scan,
        ``IndexBinaryFlat``) or ``"auto"`` (the hash when its probe count is small next to the index size).
        k-NN queries always scan.
    """

    def __init__(self, n_bits: int, strategy: str = "auto") -> None:
        if int(n_bits) < 1:
            raise ConfigError(f"n_bits must be positive, got {n_bits}")
        if strategy not in ("auto", "hash", "flat"):
            raise ConfigError(f"strategy must be 'auto', 'hash' or 'flat', got {strategy!r}")
        self.n_bits = int(n_bits)
        self.strategy = strategy
        self.d = 8 * n_bytes(self.n_bits)  # faiss works on whole bytes
        self.hash_bits = min(self.n_bits, MAX_HASH_BITS)
        faiss = _faiss()
        self._flat = faiss.IndexBinaryFlat(self.d)
        self._hash = faiss.IndexBinaryHash(self.d, self.hash_bits)
        self._codes = np.empty((0, n_bytes(self.n_bits)), dtype=np.uint8)
        self._ids = np.empty(0, dtype=np.int64)

    # -- contents ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    @property
    def codes(self) -> np.ndarray:
        """The packed codes, in insertion order: (n, ceil(n_bits / 8)) uint8 (read-only view)."""
        view = self._codes.view()
        view.flags.writeable = False
        return view

    @property
    def ids(self) -> np.ndarray:
        """The id of each code, in insertion order: (n,) int64 (read-only view)."""
        view = self._ids.view()
        view.flags.writeable = False
        return view

    def check_codes(self, codes: np.ndarray, what: str = "codes") -> np.ndarray:
        codes = np.asarray(codes)
        width = n_bytes(self.n_bits)
        if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != width:
            raise DataError(f"{what} must be packed uint8 of shape (n, {width}) for {self.n_bits}-bit codes, got "
                            f"{codes.dtype} {codes.shape}; pack booleans with aekit.hashing.pack_bits")
        pad = 8 * width - self.n_bits
        if pad and np.any(codes[:, -1] >> (8 - pad)):
            raise DataError(f"{what} have bits set beyond bit {self.n_bits}: the padding bits must be 0 "
                            "(pack with bitorder='little', as aekit.hashing.pack_bits does)")
        return np.ascontiguousarray(codes)

    def add(self, codes: np.ndarray, ids: np.ndarray | None = None) -> HammingIndex:
        """Append ``codes`` with their ``ids`` (default: consecutive integers after the current size)."""
        codes = self.check_codes(codes)
        if ids is None:
            ids = np.arange(len(self), len(self) + len(codes), dtype=np.int64)
        else:
            ids = np.asarray(ids)
            if ids.ndim != 1 or len(ids) != len(codes):
                raise DataError(f"ids must be a 1-D array with one id per code ({len(codes)}), got shape {ids.shape}")
            if ids.size and not np.issubdtype(ids.dtype, np.integer):
                raise DataError(f"ids must be integers, got dtype {ids.dtype}")
            ids = ids.astype(np.int64, copy=False)
            all_ids = np.concatenate([self._ids, ids])
            if len(np.unique(all_ids)) != len(all_ids):
                raise DataError("ids must be unique (within the call and against the ids already in the index)")
        if len(codes):
            self._flat.add(codes)
            self._hash.add(codes)
            self._codes = np.concatenate([self._codes, codes]) if len(self._codes) else codes.copy()
            self._ids = np.concatenate([self._ids, ids])
        return self

    # -- queries -------------------------------------------------------------------------------------------
    def _check_query(self, codes: np.ndarray) -> np.ndarray:
        if len(self) == 0:
            raise DataError("the index is empty: add codes first (SemanticHasher.index(X) or HammingIndex.add)")
        return self.check_codes(codes, "query codes")

    def uses_hash(self, radius: int) -> bool:
        """Whether a radius query runs on the hash table (else: an exhaustive scan)."""
        if self.strategy != "auto":
            return self.strategy == "hash"
        probes = sum(comb(self.hash_bits, i) for i in range(min(radius, self.hash_bits) + 1))
        return probes * _PROBE_COST_IN_SCANS < len(self)

    def range_search(self, codes: np.ndarray, radius: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Every indexed code within Hamming distance ``<= radius`` of each query code.

        Returns ``(ids, distances)``: two lists with one 1-D array per query (int64 ids, int32 distances),
        sorted by distance, then by insertion order.
        """
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)):
            raise DataError(f"radius must be a non-negative integer number of bits, got {radius!r}")
        if radius < 0:
            raise DataError(f"radius must be >= 0, got {radius}")
        codes = self._check_query(codes)
        radius = min(int(radius), self.n_bits)
        with _threads_for(len(codes)):
            if self.uses_hash(radius):
                self._hash.nflip = radius
                lims, dist, pos = self._hash.range_search(codes, radius + 1)  # faiss keeps distance < radius
            else:
                lims, dist, pos = self._flat.range_search(codes, radius + 1)
        ids, dists = [], []
        for q in range(len(codes)):
            p, d = pos[lims[q] : lims[q + 1]], dist[lims[q] : lims[q + 1]].astype(np.int32)
            order = np.lexsort((p, d))
            ids.append(self._ids[p[order]])
            dists.append(d[order])
        return ids, dists

    def search(self, codes: np.ndarray, k: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The ``k`` nearest indexed codes of each query code (fewer if the index is smaller).

        Returns ``(ids, distances)`` like :meth:`range_search`; ties at the k-th distance are broken by faiss.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise DataError(f"k must be a positive integer, got {k!r}")
        codes = self._check_query(codes)
        k = min(int(k), len(self))
        with _threads_for(len(codes)):
            dist, pos = self._flat.search(codes, k)
        ids, dists = [], []
        for q in range(len(codes)):
            p, d = pos[q], dist[q].astype(np.int32)
            order = np.lexsort((p, d))
            ids.append(self._ids[p[order]])
            dists.append(d[order])
        return ids, dists

    # -- persistence: the packed codes and the ids are the whole index -------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        return {"codes": self._codes, "ids": self._ids}

    @classmethod
    def from_state(cls, n_bits: int, codes: np.ndarray, ids: np.ndarray, strategy: str = "auto") -> HammingIndex:
        return cls(n_bits, strategy).add(codes, ids)

    def __getstate__(self) -> dict:  # faiss objects do not pickle: keep the codes, rebuild the tables
        return {"n_bits": self.n_bits, "strategy": self.strategy, "codes": self._codes, "ids": self._ids}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["n_bits"], state["strategy"])
        self.add(state["codes"], state["ids"])

    def __repr__(self) -> str:
        return f"HammingIndex(n_bits={self.n_bits}, size={len(self)}, strategy={self.strategy!r})"
