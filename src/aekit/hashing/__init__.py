"""Semantic hashing's companions: the Hamming index (on faiss's binary indexes), retrieval metrics, baselines
(random-projection LSH, PCA-ITQ, a supervised classifier's code layer) and the same-bucket figure."""

from .baselines import LSHHasher, PCAITQHasher, SupervisedHasher
from .index import HammingIndex, hamming_distances, n_bytes, pack_bits, unpack_bits
from .metrics import (bucket_ids, bucket_stats, evaluate_codes, format_table, gini_purity, mean_average_precision,
                      radius_precision_recall)

__all__ = ["HammingIndex", "LSHHasher", "PCAITQHasher", "SupervisedHasher", "bucket_ids", "bucket_stats",
           "evaluate_codes", "format_table", "gini_purity", "hamming_distances", "mean_average_precision", "n_bytes",
           "pack_bits", "plot_buckets", "radius_precision_recall", "unpack_bits"]


def __getattr__(name: str):
    if name == "plot_buckets":  # matplotlib is imported only when a figure is drawn
        from .figures import plot_buckets

        return plot_buckets
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
