"""Retrieval metrics for binary codes: bucket statistics, Gini purity of same-hash buckets, precision and recall
within a Hamming radius, mAP@k. Exact and in numpy (queries in chunks), so they do not depend on an index.

Conventions (the usual ones of the hashing literature, e.g. Gong & Lazebnik 2011; Weiss et al. 2008):

* a database item is *relevant* to a query when it has the same label;
* precision within radius ``r``: for each query, relevant / retrieved among the items at Hamming distance ``<= r``;
  a query that retrieves nothing counts as precision 0 in ``precision`` (so spreading codes thinly is not
  rewarded), and is left out of ``precision_answered``; ``answered`` is the fraction of queries that retrieved
  at least one item;
* recall within radius ``r``: relevant retrieved / relevant in the database, averaged over queries;
* mAP@k: the database ranked by Hamming distance, ties by database order; AP@k = mean of precision@i over the
  ranks i <= k that hold a relevant item (0 when none does);
* Gini purity of a bucket (the items sharing one code) = ``sum_c p_c**2``, the chance that two of its items drawn
  with replacement share a label; averaged over buckets of at least ``min_size`` items, weighted by their size.
  Singletons are left out by default: they are trivially pure and would reward codes that put every item alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import DataError


def _words(codes: np.ndarray) -> np.ndarray:
    """Packed uint8 codes -> (n, ceil(bytes / 8)) uint64 words (zero padded), for fast XOR + popcount."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    width = -(-codes.shape[1] // 8) * 8
    padded = np.zeros((len(codes), width), dtype=np.uint8)
    padded[:, : codes.shape[1]] = codes
    return padded.view(np.uint64)


def _distances(q_words: np.ndarray, db_words: np.ndarray) -> np.ndarray:
    dist = np.zeros((len(q_words), len(db_words)), dtype=np.uint16)
    for w in range(q_words.shape[1]):
        dist += np.bitwise_count(q_words[:, None, w] ^ db_words[None, :, w])
    return dist  # (n_queries, n_db)


def _check(codes: np.ndarray, labels: np.ndarray | None, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    codes = np.asarray(codes)
    if codes.dtype != np.uint8 or codes.ndim != 2:
        raise DataError(f"{what} codes must be packed uint8 (n, bytes), got {codes.dtype} {codes.shape}")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(codes),):
            raise DataError(f"{what} labels must have shape ({len(codes)},), got {labels.shape}")
    return codes, labels


def bucket_ids(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(bucket, sizes)``: the bucket number of each code (codes that are equal share one) and each bucket's size."""
    codes, _ = _check(codes, None, "bucket")
    _, inverse, sizes = np.unique(_words(codes), axis=0, return_inverse=True, return_counts=True)
    return inverse.reshape(-1), sizes


def bucket_stats(codes: np.ndarray, n_bits: int | None = None) -> dict[str, float]:
    """How the codes fill their buckets: number used, sizes, share of items alone or in the largest bucket."""
    _, sizes = bucket_ids(codes)
    n = int(sizes.sum())
    stats = {
        "n_items": n,
        "buckets": int(len(sizes)),
        "mean_size": float(sizes.mean()) if n else 0.0,
        "median_size": float(np.median(sizes)) if n else 0.0,
        "largest": int(sizes.max()) if n else 0,
        "largest_share": float(sizes.max() / n) if n else 0.0,
        "singleton_share": float((sizes == 1).sum() / n) if n else 0.0,
    }
    if n_bits is not None:
        stats["buckets_share_of_space"] = len(sizes) / 2.0 ** int(n_bits)
    return stats


def gini_purity(codes: np.ndarray, labels: np.ndarray, min_size: int = 2) -> float:
    """Average Gini purity ``sum_c p_c**2`` of the buckets holding at least ``min_size`` items, weighted by size.

    NaN when no bucket is that large.
    """
    codes, labels = _check(codes, labels, "bucket")
    bucket, sizes = bucket_ids(codes)
    _, label_index = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(sizes), label_index.max() + 1 if len(labels) else 1), dtype=np.int64)
    np.add.at(counts, (bucket, label_index.reshape(-1)), 1)
    keep = sizes >= min_size
    if not keep.any():
        return float("nan")
    purity = (counts[keep] ** 2).sum(axis=1) / sizes[keep] ** 2
    return float(np.average(purity, weights=sizes[keep]))


def _chunk_size(n_db: int, budget: int) -> int:
    """Queries per chunk so that a (chunk, n_db) matrix holds about ``budget`` elements."""
    return max(1, budget // max(n_db, 1))


def radius_precision_recall(
    query_codes: np.ndarray, query_labels: np.ndarray, db_codes: np.ndarray, db_labels: np.ndarray,
    radii: Sequence[int] = (0, 1, 2),
) -> dict[int, dict[str, float]]:
    """Precision and recall within each Hamming radius (see the module docstring for the conventions).

    Returns ``{r: {"precision", "precision_answered", "answered", "recall", "retrieved"}}``, ``retrieved``
    being the mean number of items within the radius.
    """
    query_codes, query_labels = _check(query_codes, query_labels, "query")
    db_codes, db_labels = _check(db_codes, db_labels, "database")
    if query_codes.shape[1] != db_codes.shape[1]:
        raise DataError(f"query codes have {query_codes.shape[1]} bytes, database codes {db_codes.shape[1]}")
    if min(radii) < 0:
        raise DataError(f"radii must be >= 0, got {list(radii)}")
    q_words, db_words = _words(query_codes), _words(db_codes)
    classes, db_label_index = np.unique(db_labels, return_inverse=True)
    per_class = np.bincount(db_label_index, minlength=len(classes))
    relevant_total = np.zeros(len(query_labels), dtype=np.int64)
    found = np.searchsorted(classes, query_labels).clip(0, len(classes) - 1)
    known = classes[found] == query_labels
    relevant_total[known] = per_class[found[known]]
    sums = {r: np.zeros(5) for r in radii}  # precision, precision over answered, answered, recall, retrieved
    step = _chunk_size(len(db_codes), 1 << 24)
    for start in range(0, len(query_codes), step):
        stop = start + step
        dist = _distances(q_words[start:stop], db_words)
        same = query_labels[start:stop, None] == db_labels[None, :]
        for r in radii:
            within = dist <= r
            retrieved = within.sum(axis=1)
            hits = (within & same).sum(axis=1)
            answered = retrieved > 0
            precision = np.divide(hits, retrieved, out=np.zeros(len(hits)), where=answered)
            recall = np.divide(hits, relevant_total[start:stop], out=np.zeros(len(hits)),
                               where=relevant_total[start:stop] > 0)
            sums[r] += [precision.sum(), precision[answered].sum(), answered.sum(), recall.sum(), retrieved.sum()]
    n = len(query_codes)
    out = {}
    for r, (p, p_answered, answered, recall, retrieved) in sums.items():
        out[r] = {"precision": p / n, "precision_answered": p_answered / answered if answered else float("nan"),
                  "answered": answered / n, "recall": recall / n, "retrieved": retrieved / n}
    return out


def mean_average_precision(
    query_codes: np.ndarray, query_labels: np.ndarray, db_codes: np.ndarray, db_labels: np.ndarray, k: int = 100
) -> float:
    """mAP@k over Hamming ranking, ties broken by database order (deterministic, index-independent)."""
    query_codes, query_labels = _check(query_codes, query_labels, "query")
    db_codes, db_labels = _check(db_codes, db_labels, "database")
    if k < 1:
        raise DataError(f"k must be >= 1, got {k}")
    k = min(int(k), len(db_codes))
    q_words, db_words = _words(query_codes), _words(db_codes)
    order_in_db = np.arange(len(db_codes), dtype=np.int64)
    ranks = np.arange(1, k + 1)
    total = 0.0
    step = _chunk_size(len(db_codes), 1 << 23)
    for start in range(0, len(query_codes), step):
        stop = start + step
        key = _distances(q_words[start:stop], db_words).astype(np.int64) * len(db_codes) + order_in_db
        top = np.argpartition(key, k - 1, axis=1)[:, :k] if k < len(db_codes) else np.tile(order_in_db, (len(key), 1))
        top = np.take_along_axis(top, np.argsort(np.take_along_axis(key, top, axis=1), axis=1), axis=1)
        relevant = db_labels[top] == query_labels[start:stop, None]  # (chunk, k), in rank order
        hits = np.cumsum(relevant, axis=1)
        ap = np.divide((hits / ranks * relevant).sum(axis=1), hits[:, -1], out=np.zeros(len(top)),
                       where=hits[:, -1] > 0)
        total += ap.sum()
    return total / len(query_codes)


def evaluate_codes(
    db_codes: np.ndarray, db_labels: np.ndarray, query_codes: np.ndarray, query_labels: np.ndarray, n_bits: int,
    radii: Sequence[int] = (0, 1, 2), k: int = 100,
) -> dict[str, Any]:
    """Every metric at once: bucket statistics and Gini purity of the database's buckets, precision/recall of the
    queries within each radius, mAP@k. Flat keys: ``precision@r2``, ``recall@r2``, ``map@100``, ..."""
    result: dict[str, Any] = dict(bucket_stats(db_codes, n_bits))
    result["gini_purity"] = gini_purity(db_codes, db_labels)
    for r, values in radius_precision_recall(query_codes, query_labels, db_codes, db_labels, radii).items():
        result.update({f"{name}@r{r}": value for name, value in values.items()})
    result[f"map@{k}"] = mean_average_precision(query_codes, query_labels, db_codes, db_labels, k)
    return result


def format_table(results: Mapping[str, Mapping[str, Any]], radii: Sequence[int] = (0, 1, 2), k: int = 100) -> str:
    """A Markdown table, one row per method, of the headline metrics from :func:`evaluate_codes`."""
    head = ["method", "buckets", "largest", "alone", "Gini purity"]
    for r in radii:
        head += [f"P r<={r}", f"P r<={r} (answered)", f"answered r<={r}", f"R r<={r}"]
    head.append(f"mAP@{k}")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, m in results.items():
        row = [name, f"{m['buckets']}", f"{m['largest']}", f"{m['singleton_share']:.1%}", f"{m['gini_purity']:.3f}"]
        for r in radii:
            row += [f"{m[f'precision@r{r}']:.3f}", f"{m[f'precision_answered@r{r}']:.3f}",
                    f"{m[f'answered@r{r}']:.1%}", f"{m[f'recall@r{r}']:.4f}"]
        row.append(f"{m[f'map@{k}']:.3f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
