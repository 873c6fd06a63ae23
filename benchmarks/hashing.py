"""Semantic hashing at scale: build a Hamming index of 1,000,000 codes and time single radius-2 queries.

Targets (issue 9): the index builds in < 10 s; a radius-2 query answers in < 5 ms median.

Two sets of 1,000,000 codes:
- autoencoder codes: the trained hasher applied to 1,000,000 MNIST images (the 70,000 train+test digits, each
  shifted by a random (dx, dy) in [-2, 2]^2 pixels; encoding time reported apart). These are clustered like real
  data, so a radius-2 query returns many items (the cost that matters);
- uniform random codes of the same width (few collisions; the hash table's best case).

For each: build time (``HammingIndex.add``: faiss ``IndexBinaryHash`` + ``IndexBinaryFlat``, median of 3), then
``--queries`` single-query calls (the MNIST test digits' own codes) with radius 2 on the hash table and on the flat
scan, and k=10 nearest (flat scan), as median / 90th percentile in ms and the mean number of results; plus the
whole ``SemanticHasher.query(x, radius=2)`` for one image (validation + encoding + search).

    AEKIT_DATA_DIR=../shared/data python benchmarks/hashing.py [--run runs/hash-mnist] [--queries 1000]

``--run`` names a run folder from ``aekit hash train`` (trained with the defaults below if missing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

import aekit
from aekit.hashing import HammingIndex, bucket_stats


def shifted_mnist_codes(hasher: aekit.SemanticHasher, images: np.ndarray, n: int, seed: int = 0,
                        chunk: int = 50_000) -> np.ndarray:
    """Hashes of ``n`` images: ``images`` (28x28 flat) cycled, each shifted by a random (dx, dy) in [-2, 2]^2."""
    rng = np.random.default_rng(seed)
    shifts = rng.integers(-2, 3, size=(n, 2))
    codes = []
    for start in range(0, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        batch = images[rows % len(images)].reshape(-1, 28, 28).copy()
        for dx in range(-2, 3):
            for dy in range(-2, 3):
                sel = np.flatnonzero((shifts[rows, 0] == dx) & (shifts[rows, 1] == dy))
                if len(sel) and (dx or dy):
                    batch[sel] = np.roll(batch[sel], (dy, dx), axis=(1, 2))
        codes.append(hasher.hash(batch.reshape(len(rows), -1)))
    return np.concatenate(codes)


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def bench_codes(name: str, codes: np.ndarray, queries: np.ndarray, n_bits: int) -> dict:
    builds = []
    for _ in range(3):
        t0 = time.perf_counter()
        index = HammingIndex(n_bits).add(codes)
        builds.append(time.perf_counter() - t0)
    hashed, flat = HammingIndex(n_bits, "hash"), HammingIndex(n_bits, "flat")
    hashed.add(codes), flat.add(codes)
    row = {"codes": name, "n": len(codes), "build_s": statistics.median(builds),
           "buckets": bucket_stats(codes)["buckets"], "auto_uses_hash_r2": index.uses_hash(2)}
    for label, idx, call in (("r2_hash", hashed, lambda i, q: i.range_search(q, 2)),
                             ("r2_flat", flat, lambda i, q: i.range_search(q, 2)),
                             ("knn10", flat, lambda i, q: i.search(q, 10))):
        times, found = [], []
        for q in range(len(queries)):
            t0 = time.perf_counter()
            ids, _ = call(idx, queries[q : q + 1])
            times.append(time.perf_counter() - t0)
            found.append(len(ids[0]))
        row[f"{label}_median_ms"] = 1e3 * statistics.median(times)
        row[f"{label}_p90_ms"] = 1e3 * float(np.percentile(times, 90))
        row[f"{label}_mean_results"] = float(np.mean(found))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/hash-mnist")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    ds = aekit.load_dataset("mnist")
    if os.path.isdir(args.run):
        hasher = aekit.load(args.run, device="cpu")
    else:
        print(f"{args.run} not found: training a SemanticHasher with its defaults (a few minutes)")
        hasher = aekit.SemanticHasher(random_state=0, device="cpu").fit(ds.X_train)
        hasher.save(args.run)
    n_bits = hasher.n_bits

    t0 = time.perf_counter()
    ae_codes = shifted_mnist_codes(hasher, np.concatenate([ds.X_train, ds.X_test]), args.n)
    encode_s = time.perf_counter() - t0
    queries = hasher.hash(ds.X_test[: args.queries])
    rng = np.random.default_rng(0)
    random_codes = aekit.hashing.pack_bits(rng.random((args.n, n_bits)) < 0.5)
    random_queries = aekit.hashing.pack_bits(rng.random((args.queries, n_bits)) < 0.5)

    rows = [bench_codes("autoencoder (shifted MNIST)", ae_codes, queries, n_bits),
            bench_codes("uniform random", random_codes, random_queries, n_bits)]

    hasher.index_ = HammingIndex(n_bits).add(ae_codes)
    x = ds.X_test[:1]
    hasher.query(x, radius=2)  # warm-up
    end_to_end = timed(lambda: hasher.query(x, radius=2), 200)

    print(f"{args.n:,} codes of {n_bits} bits; {args.queries} single-row queries; encoding the {args.n:,} shifted "
          f"MNIST images took {encode_s:.1f} s ({args.n / encode_s:,.0f} rows/s)\n")
    print("| codes | buckets | build (s) | r<=2 hash: median / p90 ms | r<=2 flat scan: median / p90 ms | "
          "mean results r<=2 | k=10: median / p90 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['codes']} | {r['buckets']:,} | {r['build_s']:.2f} | {r['r2_hash_median_ms']:.3f} / "
              f"{r['r2_hash_p90_ms']:.3f} | {r['r2_flat_median_ms']:.3f} / {r['r2_flat_p90_ms']:.3f} | "
              f"{r['r2_hash_mean_results']:.1f} | {r['knn10_median_ms']:.3f} / {r['knn10_p90_ms']:.3f} |")
    print(f"\nSemanticHasher.query(one image, radius=2) over the autoencoder index: median "
          f"{1e3 * statistics.median(end_to_end):.3f} ms (validation + encoding + search)")
    print(json.dumps({"n": args.n, "n_bits": n_bits, "encode_s": encode_s, "rows": rows,
                      "end_to_end_median_ms": 1e3 * statistics.median(end_to_end)}))


if __name__ == "__main__":
    main()
