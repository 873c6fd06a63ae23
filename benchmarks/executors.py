"""The candidates for running one model definition fast, measured side by side (docs/architecture.md, "Why a
layer spec"): one training step of the book's model (784-300-150-300-784, ELU, linear output, MSE, fused Adam,
batch 150) on MNIST, per step, interleaved round by round against the 11-GEMM floor.

    AEKIT_DATA_DIR=../shared/data python benchmarks/executors.py [--rounds 7] [--steps 200] [--compile]

Variants:
- floor: the step's 11 GEMMs alone (4 forward, 4 weight-gradient, 3 input-gradient);
- autograd: nn.Linear + F.elu modules, loss.backward(), fused Adam (aekit's lean fused step);
- autograd.Function: the model's layers as custom ``torch.autograd.Function``s (addmm + ELU forward in place,
  hand-written backward), used by the model itself under autograd;
- layer spec: aekit's hand-written executor over the model's layer spec (no autograd graph), aekit's step;
- torch.compile: the autograd step's forward + loss + backward compiled by inductor (``--compile``; the compile
  time is reported apart).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

import aekit
from aekit.training.optim import Adam, optimizer_step

SIZES = [784, 300, 150, 300, 784]
BATCH = 150


def batches(X: torch.Tensor, steps: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(len(X), (steps, BATCH), generator=g)
    return [X[i] for i in idx]


def floor(xs: list[torch.Tensor]) -> None:
    Ws = [torch.randn(o, i) * 0.01 for i, o in zip(SIZES[:-1], SIZES[1:])]
    hs = [torch.randn(BATCH, i) for i in SIZES[:-1]]
    gs = [torch.randn(BATCH, o) for o in SIZES[1:]]
    for _ in xs:
        for W, h in zip(Ws, hs):
            h @ W.T
        for k, (W, h, g) in enumerate(zip(Ws, hs, gs)):
            g.T @ h
            if k:
                g @ W


def _model() -> nn.ModuleList:
    torch.manual_seed(0)
    return nn.ModuleList(nn.Linear(a, b) for a, b in zip(SIZES[:-1], SIZES[1:]))


def _adam(params) -> Adam:
    return Adam([{"params": list(params), "weight_decay": 0.0}], lr=1e-3, fused=True)


def _autograd_training(xs: list[torch.Tensor], layer_fn) -> None:
    """Adam steps of the model whose layer ``k`` is ``layer_fn(h, layer, last)``, through ``loss.backward()``."""
    layers = _model()
    opt = _adam(layers.parameters())
    for x in xs:
        h = x
        for k, layer in enumerate(layers):
            h = layer_fn(h, layer, k == len(layers) - 1)
        loss = F.mse_loss(h, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        optimizer_step(opt)


def autograd_steps(xs: list[torch.Tensor]) -> None:
    _autograd_training(xs, lambda h, layer, last: layer(h) if last else F.elu(layer(h)))


class DenseELU(torch.autograd.Function):
    """``elu(x @ W.T + b)`` (or linear when ``elu`` is False) with a hand-written backward from the output."""

    @staticmethod
    def forward(ctx, x, weight, bias, elu):  # type: ignore[override]
        out = torch.addmm(bias, x, weight.T)
        if elu:
            F.elu(out, inplace=True)
        ctx.save_for_backward(x, weight, out)
        ctx.elu = elu
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight, out = ctx.saved_tensors
        if ctx.elu:
            grad = torch.ops.aten.elu_backward(grad, 1.0, 1.0, 1.0, True, out)
        return grad @ weight, grad.T @ x, grad.sum(0), None


def function_steps(xs: list[torch.Tensor]) -> None:
    _autograd_training(xs, lambda h, layer, last: DenseELU.apply(h, layer.weight, layer.bias, not last))


def spec_steps(xs: list[torch.Tensor]) -> None:
    from aekit.losses import Objective
    from aekit.models import DenseAutoencoder
    from aekit.training import make_optimizer, reconstruction_step

    model = DenseAutoencoder(784, [300, 150], seed=0)
    opt = make_optimizer("adam", model.parameters(), [], 1e-3)
    step = reconstruction_step(model, Objective("mse"), opt)
    assert "Hand" in type(step).__name__ or "Chain" in type(step).__name__, type(step)
    for x in xs:
        step.train_batch(x, x)


def compiled(xs: list[torch.Tensor]) -> tuple[callable, float]:
    layers = _model()
    opt = _adam(layers.parameters())

    def forward_backward(x):
        h = x
        for k, layer in enumerate(layers):
            h = layer(h)
            if k < len(layers) - 1:
                h = F.elu(h)
        loss = F.mse_loss(h, x)
        loss.backward()
        return loss.detach()

    fb = torch.compile(forward_backward)
    t0 = time.perf_counter()
    for x in xs[:3]:  # compile and warm up
        opt.zero_grad(set_to_none=True)
        fb(x)
        optimizer_step(opt)
    compile_s = time.perf_counter() - t0

    def run(xs: list[torch.Tensor]) -> None:
        for x in xs:
            opt.zero_grad(set_to_none=True)
            fb(x)
            optimizer_step(opt)

    return run, compile_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (inductor)")
    args = parser.parse_args()
    X = torch.from_numpy(aekit.load_dataset("mnist").X_train)
    xs = batches(X, args.steps)
    variants = {"floor (11 GEMMs)": floor, "autograd": autograd_steps, "autograd.Function layers": function_steps,
                "layer spec (aekit executor)": spec_steps}
    if args.compile:
        run, compile_s = compiled(xs)
        print(f"torch.compile: first 3 steps (compile + warm-up) took {compile_s:.1f} s", file=sys.stderr)
        variants["torch.compile (inductor)"] = run
    for fn in variants.values():  # warm-up
        fn(xs[:20])
    times: dict[str, list[float]] = {k: [] for k in variants}
    ratios: dict[str, list[float]] = {k: [] for k in variants if not k.startswith("floor")}
    for r in range(args.rounds):
        names = list(ratios) if r % 2 == 0 else list(ratios)[::-1]
        for name in names:
            t = []
            for fn in (floor, variants[name], floor):
                t0 = time.perf_counter()
                fn(xs)
                t.append((time.perf_counter() - t0) / len(xs) * 1e3)
            times["floor (11 GEMMs)"] += [t[0], t[2]]
            times[name].append(t[1])
            ratios[name].append(t[1] / ((t[0] + t[2]) / 2))
            print(f"round {r + 1}: {name} {t[1]:.3f} ms/step, {ratios[name][-1]:.3f}x floor", file=sys.stderr)
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds of "
          f"{args.steps} steps, batch {BATCH}\n")
    print("| variant | ms/step (median) | x floor (median of per-round ratios) | vs autograd |\n| --- | --- | --- | --- |")
    base = statistics.median(ratios["autograd"])
    for name, values in times.items():
        r = statistics.median(ratios[name]) if name in ratios else 1.0
        print(f"| {name} | {statistics.median(values):.3f} | {r:.3f} | {base / r:.3f}x |")


if __name__ == "__main__":
    main()
