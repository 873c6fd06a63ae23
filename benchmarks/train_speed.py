"""Training speed of the book's reference model (784-300-150-300-784 ELU, Adam, batch 150, MNIST 60,000 x 784)
against its matrix-multiply floor and what users would otherwise run. All variants run in one process,
interleaved round by round, and each variant's epoch is divided by its floor's epoch measured just before and
just after it (the mean of the two): this machine switches between a fast and a slow state (~1.4x) every few
tens of seconds, so ratios to the floor are only meaningful between neighbours. The table gives the median s/epoch
and the median of those per-round ratios.

    AEKIT_DATA_DIR=../shared/data python benchmarks/train_speed.py [--rounds 5] [--device cpu]

A second table splits the per-round ratios by state: quiet where both neighbouring floors ran within 15% of that
floor's fastest epoch in the run, slow where neither did, mixed (counted, not used) where the state switched.

Variants (seconds per epoch):
- floor: the model's matmuls alone at the batch's shapes (4 forward, 4 weight-gradient and 3 input-gradient
  GEMMs per batch), nothing else;
- naive: DataLoader(TensorDataset) + nn.Sequential + Adam + MSELoss, the plain PyTorch loop;
- naive-fused: the same with Adam(fused=True);
- keras: Keras 3 with the torch backend, model.fit (only if keras is installed: pip install -e '.[bench]');
- sklearn: MLPRegressor(300, 150, 300), relu (it has no ELU), adam, batch 150, one epoch;
  these two run in worker processes of their own (see :class:`Worker`), still interleaved round by round;
- aekit / aekit-tied: aekit.Autoencoder(...).fit for one epoch (the whole call, set-up included);
- the book's VAE (784-500-500-20) against its own GEMM floor;
- on CUDA also: aekit with its step kept eager (``AEKIT_CUDA_GRAPHS=0``); the epoch alone, from the fit's history
  (the whole call also copies the 188 MB data set to the GPU, which the naive loop is spared); the floor's GEMMs
  captured as one CUDA graph replayed per batch (eager, the floor is mostly kernel launches at these sizes);
  aekit's epochs are also given against that graph floor.
Inference: aekit's transform vs a naive ``model(x)`` loop over a DataLoader, rows/s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

import aekit
from aekit.training import precision

SIZES = [784, 300, 150, 300, 784]
BATCH = 150


# (in, out) of every matmul of a model; the VAE's mean and log-variance heads are one (500 -> 40) GEMM
REFERENCE_GEMMS = list(zip(SIZES[:-1], SIZES[1:]))
VAE_GEMMS = [(784, 500), (500, 500), (500, 40), (20, 500), (500, 500), (500, 784)]


def floor_batch(gemms: list[tuple[int, int]], device: torch.device | str,
                dtype: torch.dtype = torch.float32) -> Callable[[], None]:
    """One batch of the floor: each layer's forward GEMM, its weight-gradient GEMM and (except the first layer)
    its input-gradient GEMM, at the batch's shapes, in ``dtype``, into preallocated outputs, with nothing else."""
    Ws = [torch.randn(o, i, device=device).mul_(0.01).to(dtype) for i, o in gemms]
    hs = [torch.randn(BATCH, i, device=device).to(dtype) for i, _ in gemms]
    gs = [torch.randn(BATCH, W.shape[0], device=device).to(dtype) for W in Ws]
    outputs = [torch.empty(BATCH, W.shape[0], device=device, dtype=dtype) for W in Ws]
    weight_grads = [torch.empty_like(W) for W in Ws]
    input_grads = [torch.empty_like(h) for h in hs]

    def batch() -> None:
        for W, h, out in zip(Ws, hs, outputs):  # forward
            torch.mm(h, W.T, out=out)
        for k, (W, h, g) in enumerate(zip(Ws, hs, gs)):  # backward
            torch.mm(g.T, h, out=weight_grads[k])
            if k:
                torch.mm(g, W, out=input_grads[k])

    return batch


def floor_epoch(X: torch.Tensor, gemms: list[tuple[int, int]], graph: bool = False,
                dtype: torch.dtype = torch.float32) -> None:
    """An epoch of :func:`floor_batch`. ``graph`` (CUDA): one batch's GEMMs captured as a CUDA graph and replayed
    per batch, so kernel launches cost nothing either (the GPU's true floor)."""
    batch = floor_batch(gemms, X.device, dtype)
    if graph:
        batch()  # warm-up outside the capture
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            batch()
        batch = g.replay
    for _ in range(0, len(X), BATCH):
        batch()
    if X.device.type == "cuda":
        torch.cuda.synchronize()


def naive_model() -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(SIZES) - 2:
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


def naive_epoch(X: torch.Tensor, fused: bool, autocast: torch.dtype | None = None) -> None:
    """The plain PyTorch loop; ``autocast``: its forward and loss under ``torch.autocast(device, autocast)``, as
    the PyTorch recipe for mixed precision writes it (float32 weights and optimizer)."""
    model = naive_model().to(X.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    loss_fn = nn.MSELoss()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X), batch_size=BATCH, shuffle=True)
    for (xb,) in loader:
        opt.zero_grad()
        with torch.autocast(X.device.type, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            loss = loss_fn(model(xb), xb)
        loss.backward()
        opt.step()
    if X.device.type == "cuda":
        torch.cuda.synchronize()


def keras_epoch(X: np.ndarray, bf16: bool = False) -> None:
    """Keras 3's ``model.fit`` for one epoch; ``bf16``: under the ``mixed_bfloat16`` policy (Keras' mixed precision:
    bfloat16 compute, float32 variables; the output layer in float32, as Keras' guide advises)."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if bf16 else "float32")
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(300, "elu"), keras.layers.Dense(150, "elu"),
                              keras.layers.Dense(300, "elu"), keras.layers.Dense(784, dtype="float32")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(X, X, batch_size=BATCH, epochs=1, verbose=0)


def sklearn_epoch(X: np.ndarray) -> None:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPRegressor(hidden_layer_sizes=(300, 150, 300), solver="adam", batch_size=BATCH, max_iter=1, random_state=0).fit(X, X)


def aekit_epoch(X: np.ndarray, device: str, tied: bool = False, cuda_graphs: bool = True,
                epoch_only: bool = False, precision: str = "32-true") -> float | None:
    """One epoch's ``fit``, timed whole by the caller; ``epoch_only``: returns the epoch's own time from the
    history instead (without the call's set-up, which on a GPU includes copying the data set to it)."""
    os.environ["AEKIT_CUDA_GRAPHS"] = "1" if cuda_graphs else "0"  # read when the step is made
    est = aekit.Autoencoder((300, 150), tie_weights=tied, epochs=1, batch_size=BATCH, random_state=0,
                            device=device, precision=precision).fit(X)
    os.environ["AEKIT_CUDA_GRAPHS"] = "1"
    return est.history_[-1]["time"] if epoch_only else None


def aekit_vae(device: str, precision: str = "32-true", epochs: int = 1) -> aekit.VariationalAutoencoder:
    """The book's VAE (784-500-500-20, Bernoulli decoder), unfitted."""
    return aekit.VariationalAutoencoder((500, 500), latent_dim=20, binarize=None, epochs=epochs, batch_size=BATCH,
                                        learning_rate=1e-3, lr_schedule="constant", random_state=0,
                                        device=device, precision=precision)


def aekit_vae_epoch(X: np.ndarray, device: str, precision: str = "32-true") -> None:
    aekit_vae(device, precision).fit(X)


def quality(ds: Any, device: str, epochs: int, precisions: list[str]) -> None:
    """What each precision trains to: the test MSE of the book's model (untied and tied) and the VAE's final
    training loss (-ELBO, nats per image) and test -ELBO after ``epochs`` epochs, seed 0, each precision."""
    print(f"\n| model, {epochs} epochs, seed 0 | " + " | ".join(precisions) + " | bf16 vs fp32 |")
    print("| --- |" + " --- |" * (len(precisions) + 1))
    for name, make in (("book's AE 784-300-150-300-784, test MSE", lambda p: aekit.Autoencoder(
            (300, 150), epochs=epochs, batch_size=BATCH, random_state=0, device=device, precision=p)),
            ("the same, tied weights, test MSE", lambda p: aekit.Autoencoder(
                (300, 150), tie_weights=True, epochs=epochs, batch_size=BATCH, random_state=0, device=device,
                precision=p)),
            ("book's VAE 784-500-500-20, last epoch's training loss", lambda p: aekit_vae(device, p, epochs)),
            ("the same VAE, test -ELBO (1 sample)", None)):
        if make is None:
            values = [float(-np.mean(vae.elbo(ds.X_test, random_state=0))) for vae in vaes]
        else:
            fitted = [make(p).fit(ds.X_train) for p in precisions]
            if "VAE" in name:
                vaes = fitted
                values = [est.history_[-1]["loss"] for est in fitted]
            else:
                values = [-est.score(ds.X_test) for est in fitted]
        change = f"{(values[-1] / values[0] - 1) * 100:+.2f}%" if len(values) > 1 else ""
        fmt = "{:.6f}" if values[0] < 1 else "{:.3f}"
        print(f"| {name} | " + " | ".join(fmt.format(v) for v in values) + f" | {change} |", flush=True)


def inference(X_np: np.ndarray, device: str, rounds: int) -> dict[str, float]:
    est = aekit.Autoencoder((300, 150), epochs=0, random_state=0, device=device).fit(X_np[:10])
    model = naive_model().to(device).eval()
    Xt = torch.from_numpy(X_np).to(device)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(Xt), batch_size=BATCH)

    def naive() -> None:
        with torch.no_grad():
            for (xb,) in loader:
                model[:4](xb).cpu()

    times: dict[str, list[float]] = {"naive model(x) loop": [], "aekit transform": []}
    for _ in range(rounds):
        for name, fn in (("naive model(x) loop", naive), ("aekit transform", lambda: est.transform(X_np))):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: len(X_np) / statistics.median(v) for k, v in times.items()}


class Worker:
    """A variant that runs in its own process (Keras, scikit-learn): importing Keras 3 slows every torch op of
    the process that imports it (this benchmark measured the floor at 1.51 s/epoch with it imported against
    1.11 without), and scikit-learn's BLAS threads are another pool. The worker loads the data once, then runs
    one epoch per line it reads and answers with the seconds it took, so the rounds stay interleaved."""

    def __init__(self, kind: str, data_path: str) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", kind, data_path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.kind = kind
        self.ready = self.proc.stdout.readline().strip() == "ready"

    def __call__(self) -> float:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def worker(kind: str, path: str) -> None:
    X = np.load(path)
    if kind.startswith("keras"):
        os.environ.setdefault("KERAS_BACKEND", "torch")
        try:
            import keras  # noqa: F401
        except ImportError:
            print("missing", flush=True)
            return
    run = {"keras": keras_epoch, "keras-bf16": lambda X: keras_epoch(X, bf16=True), "sklearn": sklearn_epoch}[kind]
    print("ready", flush=True)
    for _ in sys.stdin:
        t0 = time.perf_counter()
        run(X)
        print(time.perf_counter() - t0, flush=True)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_probe(device: str, path: str) -> None:
    """Run in a fresh process: peak RSS with torch, aekit and the data loaded (from .npy, so loading adds no
    transient copies), then after one training epoch; against the data, model, gradients and Adam moments."""
    X = np.load(path)
    base = _peak_rss_mib()
    est = aekit.Autoencoder((300, 150), epochs=1, random_state=0, device=device).fit(X)
    params = sum(p.numel() for p in est.model_.parameters())
    print(f"{base:.0f} {_peak_rss_mib():.0f} {X.nbytes / 2**20:.0f} {params * 4 * 4 / 2**20:.1f}")


def print_by_state(ratios: dict[str, list[float]], neighbours: dict[str, tuple[float, float]],
                   times: dict[str, list[float]]) -> None:
    """Per-round ratios split by the machine's state (see the module's docstring): a round is quiet when both
    floors around it ran within 15% of that floor's fastest epoch in the run, slow when neither did, and mixed
    (the state switched during the round: its ratio means little) otherwise."""
    print("\n| variant | quiet rounds: median x floor (n) | slow rounds: median x floor (n) | mixed rounds |\n"
          "| --- | --- | --- | --- |")
    for name, values in ratios.items():
        floor = min(times["VAE floor (784-500-500-20 GEMMs)" if "VAE" in name else "floor (GEMMs only)"])
        fast = [sum(t < 1.15 * floor for t in pair) for pair in neighbours[name]]  # 2, 1 or 0 fast floors
        quiet = [r for r, f in zip(values, fast) if f == 2]
        slow = [r for r, f in zip(values, fast) if f == 0]
        cells = [f"{statistics.median(v):.2f} ({len(v)})" if v else "- (0)" for v in (quiet, slow)]
        print(f"| {name} | {cells[0]} | {cells[1]} | {fast.count(1)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description="aekit training speed, side by side")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quality-epochs", type=int, default=5,
                        help="epochs of the quality table (each precision's test MSE and VAE loss); 0: none")
    parser.add_argument("--skip", default="", help="comma-separated words: variants whose name contains one are skipped")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        return memory_probe(args.device, args.memory_probe)
    if args.worker:
        return worker(*args.worker)
    ds = aekit.load_dataset("mnist")
    X_np = ds.X_train
    X = torch.from_numpy(X_np).to(args.device)
    tmp = tempfile.TemporaryDirectory()
    data_path = f"{tmp.name}/x.npy"
    np.save(data_path, X_np)
    bf16 = torch.bfloat16
    variants: dict = {
        "floor (GEMMs only)": lambda: floor_epoch(X, REFERENCE_GEMMS),
        "naive PyTorch loop": lambda: naive_epoch(X, fused=False),
        "naive + fused Adam": lambda: naive_epoch(X, fused=True),
        "aekit fit": lambda: aekit_epoch(X_np, args.device),
        "aekit fit, tied": lambda: aekit_epoch(X_np, args.device, tied=True),
        "aekit fit, no CUDA graph": lambda: aekit_epoch(X_np, args.device, cuda_graphs=False),
        "aekit fit, the epoch alone (CUDA graph)": lambda: aekit_epoch(X_np, args.device, epoch_only=True),
        "floor as one CUDA graph per batch": lambda: floor_epoch(X, REFERENCE_GEMMS, graph=True),
        "bf16: floor (bf16 GEMMs only)": lambda: floor_epoch(X, REFERENCE_GEMMS, dtype=bf16),
        "bf16: naive loop + torch.autocast(bf16)": lambda: naive_epoch(X, fused=False, autocast=bf16),
        "bf16: naive loop + autocast + fused Adam": lambda: naive_epoch(X, fused=True, autocast=bf16),
        "bf16: aekit fit, precision='bf16-mixed'": lambda: aekit_epoch(X_np, args.device, precision="bf16-mixed"),
        "bf16: aekit fit, tied, bf16-mixed": lambda: aekit_epoch(X_np, args.device, tied=True,
                                                                precision="bf16-mixed"),
        "VAE floor (784-500-500-20 GEMMs)": lambda: floor_epoch(X, VAE_GEMMS),
        "aekit VAE fit (784-500-500-20)": lambda: aekit_vae_epoch(X_np, args.device),
        "bf16: VAE floor (bf16 GEMMs only)": lambda: floor_epoch(X, VAE_GEMMS, dtype=bf16),
        "bf16: aekit VAE fit, bf16-mixed": lambda: aekit_vae_epoch(X_np, args.device, precision="bf16-mixed"),
    }
    if not args.device.startswith("cuda"):  # CUDA graphs: GPU only
        variants = {k: v for k, v in variants.items() if "CUDA graph" not in k}
    has_bf16 = args.device.startswith("cuda") or precision.cpu_has_bf16()
    if not has_bf16:
        print("this CPU has no bfloat16 units: the bf16 rows are skipped")
        variants = {k: v for k, v in variants.items() if not k.startswith("bf16")}
    workers = {"sklearn MLPRegressor": "sklearn"} if args.device == "cpu" else {}
    workers["Keras 3 (torch backend)"] = "keras"
    if has_bf16:
        workers["bf16: Keras 3, mixed_bfloat16 policy"] = "keras-bf16"
    skip = [w.lower() for w in args.skip.split(",") if w]
    variants = {k: v for k, v in variants.items()
                if k in ("floor (GEMMs only)", "naive PyTorch loop") or not any(w in k.lower() for w in skip)}
    for name, kind in workers.items():
        if any(w in name.lower() for w in skip):
            continue
        w = Worker(kind, data_path)
        if w.ready:
            variants[name] = w
        else:
            w.close()
            print(f"{kind} not installed: its row is skipped (pip install -e '.[bench]')")
    aekit_epoch(X_np[:3000], args.device)  # warm-up (allocator, kernels, imports)
    floors = {"floor (GEMMs only)", "VAE floor (784-500-500-20 GEMMs)"}
    reference = {name: "VAE floor (784-500-500-20 GEMMs)" if "VAE" in name else "floor (GEMMs only)"
                 for name in variants if name not in floors}
    times: dict[str, list[float]] = {k: [] for k in variants}
    ratios: dict[str, list[float]] = {k: [] for k in reference}
    neighbours: dict[str, list[tuple[float, float]]] = {k: [] for k in reference}  # the floors around each round

    def measure(name: str) -> float:
        t0 = time.perf_counter()
        seconds = variants[name]()  # a worker, or an epoch-only variant, answers with its own timing
        times[name].append(seconds if seconds is not None else time.perf_counter() - t0)
        return times[name][-1]

    for r in range(args.rounds):
        names = list(reference) if r % 2 == 0 else list(reference)[::-1]
        for name in names:
            before = measure(reference[name])
            t = measure(name)
            after = measure(reference[name])
            ratios[name].append(t / ((before + after) / 2))
            neighbours[name].append((before, after))
            print(f"round {r + 1}: {name} {t:.2f} s, {ratios[name][-1]:.2f}x its floor", file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = {k: statistics.median(v) for k, v in ratios.items()}
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"\ntorch {torch.__version__}, {dev}; {args.rounds} interleaved rounds; one epoch = {len(X_np)} rows, "
          f"batch {BATCH}\n")
    print("| variant | s/epoch (median) | samples/s | x floor (median of per-round ratios) | speed-up vs naive |")
    print("| --- | --- | --- | --- | --- |")
    naive = ratio["naive PyTorch loop"]
    for name, m in med.items():
        x_floor = ratio.get(name, 1.0)
        vs_naive = "" if "VAE" in name else f"{naive / x_floor:.2f}"
        print(f"| {name} | {m:.2f} | {len(X_np) / m:,.0f} | {x_floor:.2f} | {vs_naive} |")
    ours = ratio.get("bf16: aekit fit, precision='bf16-mixed'")
    if ours:
        print("\nbf16 rows are against the float32 floor (x floor < 1: faster than fp32's matrix multiplies alone). "
              "aekit bf16-mixed's speed-up over: " + ", ".join(
                  f"{name[6:]} {ratio[name] / ours:.2f}x" for name in ratio
                  if name.startswith("bf16:") and "aekit" not in name and "floor" not in name))
    graph_floor = med.get("floor as one CUDA graph per batch")
    if graph_floor:
        print("\nagainst the floor as one CUDA graph per batch (ratio of medians): " + ", ".join(
            f"{name} {m / graph_floor:.2f}x" for name, m in med.items() if name.startswith("aekit fit")))
    print_by_state(ratios, neighbours, times)
    if args.quality_epochs:
        quality(ds, args.device, args.quality_epochs, ["32-true", "bf16-mixed"] if has_bf16 else ["32-true"])
    rates = inference(X_np, args.device, args.rounds)
    print("\n| inference (encode 60,000 rows) | rows/s |\n| --- | --- |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} |")
    for v in variants.values():
        if isinstance(v, Worker):
            v.close()
    probe = subprocess.run([sys.executable, __file__, "--memory-probe", data_path, "--device", args.device],
                           capture_output=True, text=True, check=True).stdout.split()
    tmp.cleanup()
    base, peak, data_mb, model_mb = map(float, probe)
    print(f"\npeak RSS (fresh process): {base:.0f} MiB with python, torch, aekit and the {data_mb:.0f} MiB of MNIST "
          f"loaded; {peak:.0f} MiB after one aekit epoch: training added {peak - base:.0f} MiB, against "
          f"{model_mb:.1f} MiB of weights + gradients + Adam moments (the data tensor is shared with NumPy, not "
          "copied)")


if __name__ == "__main__":
    main()
