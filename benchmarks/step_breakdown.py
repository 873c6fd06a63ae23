"""Where one training step of the book's reference model goes, in each of this machine's states.

The shared 2-core machines switch between a fast state and a slow one (the GEMM floor ~1.4x slower) every few
tens of seconds. train_speed.py shows aekit's epoch near 1.2-1.3x its floor in the fast state and near 1.5x in
the slow one; this script shows why, by timing each part of aekit's own step (the same objects ``fit`` uses: the
model's :class:`~aekit.nn.chain.DenseChain`, the loss with its gradient, aekit's Adam) batch by batch, in chunks
interleaved with chunks of floor batches (train_speed.py's :func:`floor_batch`, the same 11 GEMMs). Each chunk is
classed by its floor: quiet within 15% of the fastest floor chunk, slow beyond 30%.

    AEKIT_DATA_DIR=../shared/data python benchmarks/step_breakdown.py [--seconds 180] [--chunk 40]
    AEKIT_DATA_DIR=../shared/data python benchmarks/step_breakdown.py --precision bf16-mixed

``--precision bf16-mixed``: the step as the bf16 executor runs it (the chain on bfloat16 copies of the weights,
the loss in float32, Adam on the float32 parameters, then the copies refreshed), against the float32 floor and the
same GEMMs in bfloat16.

CPU only (the parts are timed from the host, which a GPU's asynchronous kernels would not allow).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from train_speed import BATCH, REFERENCE_GEMMS, floor_batch

import aekit
from aekit.losses.reconstruction import mse_with_grad
from aekit.nn.chain import shadows
from aekit.training.optim import make_optimizer, optimizer_step

PARTS = ["gather", "forward (4 GEMMs + ELU)", "loss and its gradient", "backward (7 GEMMs + ELU' + bias sums)",
         "Adam (fused, 561,934 parameters)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--chunk", type=int, default=40, help="batches per timed chunk")
    parser.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true")
    args = parser.parse_args()
    X = torch.from_numpy(aekit.load_dataset("mnist").X_train)
    est = aekit.Autoencoder((300, 150), epochs=0, random_state=0, device="cpu").fit(X[:10].numpy())
    model = est.model_.train()
    chain = model.dense_chain()
    bf16 = args.precision == "bf16-mixed"
    if bf16:
        chain = chain.lowered(torch.bfloat16)
        PARTS.append("refresh the bf16 copies of the weights")
    copies = shadows(chain.layers)
    optimizer = make_optimizer("adam", model.parameters(), model.regularized_weights(), 1e-3)
    floor = floor_batch(REFERENCE_GEMMS, "cpu")
    floor16 = floor_batch(REFERENCE_GEMMS, "cpu", torch.bfloat16) if bf16 else None
    xb = torch.empty(BATCH, X.shape[1])
    generator = torch.Generator().manual_seed(0)

    def step(times: list[float]) -> None:
        idx = torch.randint(len(X), (BATCH,), generator=generator)
        t0 = time.perf_counter()
        torch.index_select(X, 0, idx, out=xb)
        t1 = time.perf_counter()
        outputs = chain.forward(xb)
        t2 = time.perf_counter()
        loss, grad = mse_with_grad(outputs[-1], xb, chain.output_activation, overwrite=True)
        float(loss)
        t3 = time.perf_counter()
        chain.backward(outputs, grad)
        t4 = time.perf_counter()
        optimizer_step(optimizer)
        t5 = time.perf_counter()
        if bf16:
            torch._foreach_copy_(*copies)
        t6 = time.perf_counter()
        for k, dt in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)[:len(PARTS)]):
            times[k] += dt

    for _ in range(20):  # warm-up: optimizer state, allocator, kernels
        step([0.0] * len(PARTS))
        floor()
    # (fp32 floor ms per batch, each part's ms per step, bf16 floor ms per batch)
    chunks: list[tuple[float, list[float], float]] = []
    end = time.time() + args.seconds
    while time.time() < end:
        t0 = time.perf_counter()
        for _ in range(args.chunk):
            floor()
        floor_ms = (time.perf_counter() - t0) / args.chunk * 1e3
        parts = [0.0] * len(PARTS)
        for _ in range(args.chunk):
            step(parts)
        t0 = time.perf_counter()
        for _ in range(args.chunk if floor16 else 0):
            floor16()
        chunks.append((floor_ms, [p / args.chunk * 1e3 for p in parts], (time.perf_counter() - t0) / args.chunk * 1e3))
    fastest = min(c[0] for c in chunks)
    states = {"quiet": [c for c in chunks if c[0] < 1.15 * fastest],
              "slow": [c for c in chunks if c[0] > 1.30 * fastest]}
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads; {len(chunks)} chunks of {args.chunk} "
          f"batches (batch {BATCH}) in {args.seconds:.0f} s: {len(states['quiet'])} quiet, {len(states['slow'])} "
          f"slow, {len(chunks) - len(states['quiet']) - len(states['slow'])} in between (not used)\n")
    rows = {"floor (the 11 GEMMs alone)": lambda c: c[0],
            **({"the same GEMMs in bfloat16": lambda c: c[2]} if bf16 else {}),
            **{part: (lambda c, k=k: c[1][k]) for k, part in enumerate(PARTS)},
            "whole step": lambda c: sum(c[1]),
            f"whole step / {'float32 ' if bf16 else ''}floor (per-chunk ratios)": lambda c: sum(c[1]) / c[0]}
    print("| ms per batch, median over chunks | quiet | slow | slow / quiet |\n| --- | --- | --- | --- |")
    for name, value in rows.items():
        quiet, slow = (statistics.median(map(value, states[s])) if states[s] else float("nan") for s in states)
        print(f"| {name} | {quiet:.3f} | {slow:.3f} | {slow / quiet:.2f} |")

if __name__ == "__main__":
    main()
