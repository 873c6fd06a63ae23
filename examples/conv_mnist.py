"""Convolutional autoencoders (TECHNIQUES.md section 10, issue 5): two runs, one CPU thread each.

    OMP_NUM_THREADS=1 AEKIT_DATA_DIR=../shared/data python examples/conv_mnist.py fashion [EPOCHS]
    OMP_NUM_THREADS=1 AEKIT_DATA_DIR=../shared/data python examples/conv_mnist.py wta [EPOCHS]

``fashion``: the Hands-On ML 3rd ed. conv AE on Fashion-MNIST (conv 16-32-64, 3x3, "same", ReLU, each followed by
2x2 max-pooling, 30 codings; stride-2 transposed convs back; MSE, batch 32, as Keras' default), trained on the
first 55,000 training images, validated on the last 5,000 (the book's split), against the dense AE with the same
coding size (the book's 784-100-30-100-784 SELU). Differences from the book: Adam instead of Nadam; a dense
coding layer over the 3x3x64 maps (linear: with ReLU, 26 of its 30 units died within 2 epochs in a trial on 10,000
images and the MSE stalled at 0.05) instead of a fourth conv + global average pooling; the decoder mirrors the
encoder (64-32-16 channels) instead of starting from 3x3x16; 20 epochs for both models.

``wta``: a shallow conv-WTA autoencoder on MNIST (Makhzani & Frey 2015): 64 maps of 9x9 ReLU filters, stride 2
(14x14 maps), spatial sparsity (each map keeps its maximum per image) and 5% lifetime sparsity, one linear
transposed-conv decoder (9x9, stride 2); L2 1e-4 on the weights (with Adam it wipes the init noise from filter
pixels that get no gradient; without it the encoder filters stayed noise-like after an epoch). Writes its
first-layer (encoder) filters and its decoder filters to docs/; then a logistic regression on the codings
max-pooled to a 4x4 grid (64 maps x 16 = 1,024 features, from the dense maps: WTA is off at inference), C chosen
on a 10,000-image validation split as in the FC-WTA run. The reconstruction MSE is reported with the sparsity on
(the decoder only ever sees ~3 winners per image; decoding the dense maps is not a reconstruction).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import aekit
from aekit.viz import plot_features
from aekit.viz._grid import image_grid

torch.set_num_threads(1)
RUNS, DOCS = Path("runs"), Path("docs")


def n_parameters(est) -> int:
    return sum(p.numel() for p in est.model_.parameters())


def fit_logged(name: str, est, X, X_val=None):
    """Fit one epoch at a time (warm_start resumes exactly), printing the training and validation MSE."""
    epochs, t0, c0 = est.epochs, time.perf_counter(), time.process_time()
    for epoch in range(1, epochs + 1):
        est.set_params(epochs=epoch, warm_start=True).fit(X)
        rec = est.history_[-1]
        val = f", val MSE {-est.score(X_val):.5f}" if X_val is not None else ""
        print(f"{name} epoch {epoch}/{epochs}: train loss {rec['loss']:.5f}{val} ({rec['time']:.0f} s)", flush=True)
    return time.perf_counter() - t0, (time.process_time() - c0) / 60


def book_conv_ae(**params) -> aekit.Autoencoder:
    """The conv AE of the ``fashion`` run (also what benchmarks/conv_precision.py times), unfitted."""
    return aekit.Autoencoder(arch="conv", channels=(16, 32, 64), kernel_sizes=3, strides=1, pool_sizes=2,
                             coding_size=30, activation="relu", coding_activation="linear", image_shape=(28, 28),
                             init="he", **params)  # he: the init these results were measured with


def fashion(epochs: int = 20) -> dict:
    ds = aekit.load_dataset("fashion-mnist")
    X, X_val = ds.X_train[:55000], ds.X_train[55000:]
    common = {"batch_size": 32, "learning_rate": 1e-3, "epochs": epochs, "random_state": 0}
    results = {}
    models = {
        "conv": book_conv_ae(**common),
        "dense": aekit.Autoencoder((100, 30), activation="selu", init="lecun", **common),
    }
    for name, est in models.items():
        wall, cpu_min = fit_logged(name, est, X, X_val)
        results[name] = {"val_mse": -est.score(X_val), "test_mse": -est.score(ds.X_test),
                         "parameters": n_parameters(est), "epochs": epochs, "wall_s": round(wall),
                         "cpu_min": round(cpu_min, 1), "threads": torch.get_num_threads()}
        est.save(RUNS / f"conv-fashion-{name}")
        print(name, json.dumps(results[name]), flush=True)
    return results


def pooled_codings(est, X: np.ndarray, grid: int = 4, chunk: int = 2000) -> np.ndarray:
    """Codings (dense maps, WTA off) max-pooled to a grid x grid grid: (n, C * grid * grid)."""
    model, shape = est.model_.eval(), est.model_.map_shape
    out = []
    with torch.no_grad():
        for start in range(0, len(X), chunk):
            maps = model.encode(torch.from_numpy(X[start : start + chunk])).view(-1, *shape)
            out.append(F.adaptive_max_pool2d(maps, grid).flatten(1).numpy())
    return np.concatenate(out)


def sparse_mse(est, X: np.ndarray, batch: int = 100) -> float:
    """Reconstruction MSE with the winner-take-all on (training mode), in batches like training's."""
    model, total = est.model_.train(), 0.0
    with torch.no_grad():
        for start in range(0, len(X), batch):
            x = torch.from_numpy(X[start : start + batch])
            total += float(((model(x).reconstruction - x) ** 2).mean()) * len(x)
    model.eval()
    return total / len(X)


def wta(epochs: int = 10) -> dict:
    ds = aekit.load_dataset("mnist")
    est = aekit.Autoencoder(arch="conv", channels=(64,), kernel_sizes=9, strides=2, pool_sizes=1, activation="relu",
                            wta=0.05, l2=1e-4, image_shape=(28, 28), batch_size=100, learning_rate=1e-3,
                            epochs=epochs, random_state=0, init="he")
    if epochs == 0:  # the control: the same pipeline on the untrained (random) filters
        return classify(est.fit(ds.X_train), ds, 0, 0.0)
    wall, cpu_min = fit_logged("conv-wta", est, ds.X_train)
    est.save(RUNS / "conv-wta-mnist")
    DOCS.mkdir(exist_ok=True)
    plot_features(est, n_units=64, ncols=16, title="conv-WTA on MNIST: the 64 encoder filters (9x9), grey = 0, "
                  "white > 0").savefig(DOCS / "conv-wta-mnist-filters.png", dpi=100)
    decoder = est.model_.decoder[0].weight.detach().numpy()  # (64 maps, 1, 9, 9): what each winner paints
    image_grid(decoder.reshape(64, -1), (9, 9), ncols=16, value_range=None, panel_size=0.8,
               title="conv-WTA on MNIST: the 64 decoder (transposed-conv) filters").savefig(
        DOCS / "conv-wta-mnist-decoder-filters.png", dpi=100)
    return classify(est, ds, wall, cpu_min)


def classify(est, ds, wall: float, cpu_min: float) -> dict:
    """Logistic regression on the max-pooled codings, C chosen on the last 10,000 training images."""
    t0, c0 = time.perf_counter(), time.process_time()
    Z, Z_test = pooled_codings(est, ds.X_train), pooled_codings(est, ds.X_test)
    scaler = StandardScaler().fit(Z)
    Z, Z_test = scaler.transform(Z), scaler.transform(Z_test)
    scores = {C: LogisticRegression(C=C, max_iter=300).fit(Z[:50000], ds.y_train[:50000])
              .score(Z[50000:], ds.y_train[50000:]) for C in (0.01, 0.1, 1.0)}
    best = max(scores, key=scores.get)
    acc = LogisticRegression(C=best, max_iter=300).fit(Z, ds.y_train).score(Z_test, ds.y_test)
    result = {"test_accuracy": acc, "C": best, "validation": scores, "features": Z.shape[1],
              "test_mse_sparse": sparse_mse(est, ds.X_test), "test_mse_dense_codes": -est.score(ds.X_test),
              "parameters": n_parameters(est), "epochs": est.n_epochs_,
              "train_wall_s": round(wall), "train_cpu_min": round(cpu_min, 1),
              "classifier_wall_s": round(time.perf_counter() - t0),
              "classifier_cpu_min": round((time.process_time() - c0) / 60, 1), "threads": torch.get_num_threads()}
    print("conv-wta", json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "fashion"
    args = [int(a) for a in sys.argv[2:]]
    result = {"fashion": fashion, "wta": wta, "wta-untrained": lambda: wta(0)}[which](*args)
    RUNS.mkdir(exist_ok=True)
    (RUNS / f"conv-{which}.json").write_text(json.dumps(result, indent=2))
