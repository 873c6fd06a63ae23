"""Data larger than memory: the cost of aekit's streamed path as the data set grows, next to the in-memory path.

Makes a large uint8 data set by code (MNIST training digits, each shifted by -2..2 pixels in x and y, drawn with
replacement; 784 bytes a row: 20,000,000 rows are 15.7 GB), then trains the book's MNIST autoencoder
(784-300-150-300-784 ELU, batch 150, Adam; ``aekit.Autoencoder((300, 150))``) for one epoch on the first N rows,
each run in a fresh process so that its peak resident set (VmHWM) is its own:

- ``memory``: the rows loaded as one float32 array (``in_memory=True``), the fast path;
- ``stream``: the rows left in the memory-mapped file (``in_memory=False``), read per window by a thread.

The in-memory and streamed runs on 60,000 rows alternate (``--rounds``), before and after the large sizes, and the
table reports medians: rows/s of every streamed size against the in-memory path's on 60,000 rows.
``--ranks 2`` adds a torchrun run of 2 ranks streaming ``--ranks-rows`` rows (each rank's peak RSS).

    python benchmarks/scale.py --file /tmp/scale/shifted.npy --sizes 60000,1000000,5000000,20000000 --ranks 2
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HIDDEN = (300, 150)


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0]) * 1024


def make(path: Path, n_rows: int, seed: int = 0, chunk: int = 250_000) -> None:
    """``n_rows`` shifted MNIST digits, uint8 (n, 784), written through a memory map (never all in memory)."""
    import aekit

    base = aekit.load_dataset("mnist").X_train
    base = np.pad((base * 255).round().astype(np.uint8).reshape(-1, 28, 28), ((0, 0), (2, 2), (2, 2)))
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n_rows, 784))
    t0 = time.perf_counter()
    for start in range(0, n_rows, chunk):
        m = min(chunk, n_rows - start)
        idx, dx, dy = rng.integers(0, len(base), m), rng.integers(0, 5, m), rng.integers(0, 5, m)
        block = np.empty((m, 28, 28), dtype=np.uint8)
        for a in range(5):
            for b in range(5):
                sel = np.flatnonzero((dx == a) & (dy == b))
                block[sel] = base[idx[sel], a : a + 28, b : b + 28]
        out[start : start + m] = block.reshape(m, 784)
    out.flush()
    del out
    os.replace(tmp, path)
    print(f"made {path}: {n_rows:,} rows ({n_rows * 784 / 1e9:.1f} GB) in {time.perf_counter() - t0:.0f} s",
          flush=True)


def child(path: str, n: int, mode: str) -> None:
    """One epoch on the first ``n`` rows; prints a JSON line (rank 0 alone under torchrun prints the time)."""
    import torch

    import aekit
    from aekit.data.sources import open_rows
    from aekit.training.distributed import init_from_env, world

    init_from_env(None)
    rank, n_ranks = world()
    source = open_rows(path)
    if n < len(source):
        source = source.subset(np.arange(n))
    X = source.to_array() if mode == "memory" else source
    est = aekit.Autoencoder(HIDDEN, epochs=1, random_state=0, in_memory=(mode == "memory"))
    cpu, t0 = time.process_time(), time.perf_counter()
    est.fit(X)
    seconds = time.perf_counter() - t0
    print(json.dumps({"mode": mode, "rows": n, "rank": rank, "ranks": n_ranks, "seconds": seconds,
                      "cpu_seconds": time.process_time() - cpu, "rows_per_s": n / seconds,
                      "peak_rss": peak_rss(), "loss": est.history_[-1]["loss"], "threads": est.n_threads_,
                      "torch_threads": torch.get_num_threads()}), flush=True)


def run_child(path: Path, n: int, mode: str, ranks: int = 1) -> list[dict]:
    cmd = [sys.executable, __file__, "--child", "--file", str(path), "--child-rows", str(n), "--mode", mode]
    if ranks > 1:
        port = socket.socket()
        port.bind(("127.0.0.1", 0))
        free = port.getsockname()[1]
        port.close()
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={ranks}", "--rdzv-backend=c10d",
               f"--rdzv-endpoint=127.0.0.1:{free}", *cmd[1:]]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo"}
    if ranks > 1:
        env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{result.stderr[-3000:]}")
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    for r in rows:
        print(f"  {r['mode']:6s} {r['rows']:>11,} rows  rank {r['rank']}/{r['ranks']}  {r['seconds']:8.1f} s  "
              f"{r['rows_per_s']:8.0f} rows/s  peak RSS {r['peak_rss'] / 2**20:7.0f} MiB  loss {r['loss']:.5f}",
              flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--file", type=Path, default=Path("/tmp/aekit-scale/shifted-mnist.npy"))
    p.add_argument("--sizes", default="60000,1000000,5000000,20000000")
    p.add_argument("--rounds", type=int, default=2, help="alternating 60k memory/stream rounds before and after")
    p.add_argument("--ranks", type=int, default=0, help="also a torchrun run of this many streaming ranks")
    p.add_argument("--ranks-rows", type=int, default=5_000_000)
    p.add_argument("--json", type=Path, help="write every measurement here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child-rows", type=int, help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(str(args.file), args.child_rows, args.mode)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    need = max(sizes + [args.ranks_rows if args.ranks > 1 else 0])
    args.file.parent.mkdir(parents=True, exist_ok=True)
    if not args.file.exists() or np.load(args.file, mmap_mode="r").shape[0] < need:
        make(args.file, need)
    results: list[dict] = []

    def small_rounds() -> None:
        for _ in range(args.rounds):
            for mode in ("memory", "stream"):
                results.extend(run_child(args.file, 60_000, mode))

    print(f"{os.cpu_count()} CPUs; file {args.file} ({np.load(args.file, mmap_mode='r').shape[0]:,} rows)", flush=True)
    small_rounds()
    for n in sizes:
        if n != 60_000:
            results.extend(run_child(args.file, n, "stream"))
    if args.ranks > 1:
        results.extend(run_child(args.file, args.ranks_rows, "stream", ranks=args.ranks))
    small_rounds()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    memory = statistics.median(r["rows_per_s"] for r in results if r["mode"] == "memory")
    print(f"\nin-memory path, 60,000 rows: {memory:,.0f} rows/s (median of {2 * args.rounds})")
    print("| rows | path | s/epoch | s per million rows | rows/s | vs in-memory 60k | peak RSS |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        for mode in ("memory", "stream"):
            runs = [r for r in results if r["rows"] == n and r["mode"] == mode and r["ranks"] == 1]
            if not runs:
                continue
            s = statistics.median(r["seconds"] for r in runs)
            rate = statistics.median(r["rows_per_s"] for r in runs)
            rss = max(r["peak_rss"] for r in runs)
            print(f"| {n:,} | {mode} | {s:.1f} | {s / n * 1e6:.1f} | {rate:,.0f} | {rate / memory:.2f}x | "
                  f"{rss / 2**30:.2f} GiB |")
    for r in (r for r in results if r["ranks"] > 1):
        print(f"torchrun rank {r['rank']}/{r['ranks']}: {r['rows']:,} rows streamed ({r['rows'] * 784 / 2**30:.1f} GiB "
              f"of uint8), {r['seconds']:.0f} s, peak RSS {r['peak_rss'] / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
