"""Figures and the HTML report: panel counts, activations, activation maximisation, sections, no display."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

import aekit
from aekit.cli import main
from aekit.viz import (
    embed_2d, layer_activations, maximize_activation, plot_activation_maximization, plot_features, plot_history,
    plot_latent_map, plot_reconstructions, plot_samples, plot_top_activating, top_activating,
)
from aekit.viz.features import layer_features
from aekit.viz.report import build_report

SECTIONS = ("configuration", "curves", "metrics", "reconstructions", "features", "top-activating", "maximization",
            "latent")


def image_panels(fig: Figure) -> list:
    """Axes that show an image."""
    return [ax for ax in fig.axes if ax.images]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one thread is faster, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    ds = aekit.load_dataset("digits")
    return ds.X_train, ds.X_test, ds.y_test


@pytest.fixture(scope="module")
def ae(data):
    X_train, _, _ = data
    return aekit.Autoencoder((24, 4), epochs=15, batch_size=64, learning_rate=3e-3, random_state=0,
                             image_shape=(8, 8), device="cpu").fit(X_train)


# -- figures ---------------------------------------------------------------------------------------------------
def test_reconstructions(ae, data):
    X = data[1][:7]
    fig = plot_reconstructions(X, ae.predict(X), (8, 8))
    assert isinstance(fig, Figure) and len(image_panels(fig)) == 14
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()] == ["original", "reconstruction"]


def test_features_dense(ae):
    fig = plot_features(ae, n_units=10, ncols=5)
    panels = image_panels(fig)
    assert len(panels) == 10
    weight = ae.model_.encoder[0].weight.detach().numpy()
    np.testing.assert_allclose(panels[3].images[0].get_array(), weight[3].reshape(8, 8), rtol=1e-6)
    assert len(image_panels(plot_features(ae))) == 24  # all units when there are fewer than n_units


@pytest.mark.parametrize(("in_channels", "drawn"), [(1, (3, 3)), (3, (3, 3, 3)), (5, (3, 3))])
def test_features_conv_filters(in_channels, drawn):
    conv = nn.Conv2d(in_channels, 6, kernel_size=3)
    rows, shape = layer_features(conv)
    assert rows.shape[0] == 6 and shape == ((3 if in_channels == 3 else 1), 3, 3)
    stub = nn.Module()
    stub.encoder = nn.ModuleList([nn.Sequential(conv, nn.ReLU()), nn.Linear(6, 2)])
    fig = plot_features(stub)
    panels = image_panels(fig)
    assert len(panels) == 6 and panels[0].images[0].get_array().shape == drawn
    assert "filters" in fig.texts[0].get_text()  # the suptitle


def test_layer_activations_are_the_encoders(ae, data):
    X = data[1][:50]
    model = ae.model_
    with torch.no_grad():
        h0 = model.act(model.encoder[0](torch.from_numpy(X)))
    np.testing.assert_allclose(layer_activations(ae, X, 0), h0.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer_activations(ae, X, -1), ae.transform(X), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        layer_activations(ae, X, 2)


@pytest.mark.parametrize("layer", [0, -1])
def test_top_activating(ae, data, layer):
    X = data[0]
    units, indices, values = top_activating(ae, X, layer, units=[1, 3, 2], k=4)
    acts = layer_activations(ae, X, layer)
    assert indices.shape == values.shape == (3, 4)
    np.testing.assert_allclose(values[:, 0], acts[:, [1, 3, 2]].max(axis=0))
    assert np.all(np.diff(values, axis=1) <= 0)  # most activating first
    fig = plot_top_activating(ae, X, layer, units=[1, 3, 2], k=4)
    assert len(image_panels(fig)) == 12
    assert len(image_panels(plot_top_activating(ae, X, layer, k=3))) == (8 if layer == 0 else 4) * 3


@pytest.mark.parametrize("layer", [0, -1])
def test_activation_maximization_raises_the_unit(ae, data, layer):
    units = [0, 1, 2, 3]
    result = maximize_activation(ae, units, layer, steps=150)
    assert result.images.shape == (4, 64)
    assert result.images.min() >= 0.0 and result.images.max() <= 1.0  # stays in the data's range
    # the ascent beats the starting noise by far, and every real instance too
    data_max = layer_activations(ae, data[0], layer)[:, units].max(axis=0)
    assert np.all(result.final_activation > result.start_activation + 1.0)
    assert np.all(result.final_activation > data_max)
    positive = result.start_activation > 0
    assert np.all(result.final_activation[positive] >= 5 * result.start_activation[positive])
    fig = plot_activation_maximization(result, (8, 8))
    assert len(image_panels(fig)) == 4
    assert "→" in fig.axes[0].get_title()


def test_activation_maximization_noise_range(ae):
    result = maximize_activation(ae, [0], -1, steps=0, noise_range=(0.0, 0.2))
    assert 0.0 <= result.images.min() and result.images.max() <= 0.2  # no step: the starting noise itself
    with pytest.raises(ValueError, match="inside value_range"):
        maximize_activation(ae, [0], -1, noise_range=(0.5, 2.0))


def test_latent_map(data):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    codings2 = rng.normal(size=(300, 2)).astype(np.float32)
    fig = plot_latent_map(codings2, labels)
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("z0", "z1")
    assert len(ax.collections) == 3 and len(ax.get_legend().get_texts()) == 3
    np.testing.assert_allclose(np.concatenate([c.get_offsets() for c in ax.collections]).mean(0),
                               codings2.mean(0), atol=1e-5)  # direct: the codings themselves
    codings5 = rng.normal(size=(300, 5)).astype(np.float32)
    assert plot_latent_map(codings5, labels).axes[0].get_xlabel().startswith("PC1")
    assert len(plot_latent_map(codings5, max_points=100).axes[0].collections[0].get_offsets()) == 100
    points, names = embed_2d(codings5[:60], "tsne")
    assert points.shape == (60, 2) and names == ("t-SNE 1", "t-SNE 2")
    with pytest.raises(ValueError, match="unknown projection"):
        embed_2d(codings5, "umap")


def test_samples():
    samples = np.random.default_rng(0).random((23, 64), dtype=np.float32)
    fig = plot_samples(samples, (8, 8), ncols=10)
    assert len(image_panels(fig)) == 23 and len(fig.axes) == 30  # 3 rows, 7 unused cells hidden


def test_history_one_line_per_term():
    history = [{"epoch": e, "loss": 1.0 / e, "reconstruction": 0.9 / e, "sparsity": 0.1 / e, "l2": 0.0,
                "val_loss": 1.1 / e, "val_reconstruction": 1.0 / e, "time": 0.1} for e in range(1, 6)]
    ax = plot_history(history).axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["loss", "reconstruction", "sparsity", "val_loss", "val_reconstruction"]  # l2 is 0: left out
    assert ax.get_yscale() == "log"
    phased = [{**r, "phase": 1 + (i >= 3), "epoch": 1 + i % 3} for i, r in enumerate(history)]
    ax = plot_history(phased).axes[0]
    assert list(ax.get_lines()[0].get_xdata()) == [1, 2, 3, 4, 5]  # epochs numbered across phases
    assert any("phase 2" in t.get_text() for t in ax.texts)


# -- report ----------------------------------------------------------------------------------------------------
def check_page(page: str) -> list[bytes]:
    """The report's images, each checked to be a whole PNG inlined as base64 (nothing loaded from outside)."""
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    pngs = [base64.b64decode(s.split(",", 1)[1], validate=True) for s in sources]
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") and p.endswith(b"IEND\xaeB`\x82") for p in pngs)
    assert "http://" not in page and "https://" not in page
    return pngs


def test_report_cli_dense_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--hidden", "16,4", "--epochs", "3", "--out", str(run), "--quiet"]) == 0
    out = tmp_path / "r" / "report.html"
    assert main(["report", str(run), "--dataset", "digits", "--out", str(out), "--json"]) == 0
    assert f'"out": "{out}"' in capsys.readouterr().out
    page = out.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page, section
    assert 'id="samples"' not in page  # no sample method: no samples section
    # reconstructions, features, 2 x top-activating, 2 x maximisation, latent map, curves
    assert len(check_page(page)) == 8
    assert "test reconstruction MSE (test split, 360 rows)" in page
    assert main(["report", str(run), "--out", str(tmp_path / "nope.html"), "--dataset", "mnist-typo"]) == 2


class _ConvAutoencoder(nn.Module):
    """A stand-in for the conv family to come: conv blocks in ``encoder``, a dense coding layer last."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.ModuleList([
            nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 6, 3, padding=1), nn.ELU()),
            nn.Sequential(nn.Conv2d(6, 4, 3, stride=2, padding=1), nn.ELU()),
            nn.Sequential(nn.Flatten(), nn.Linear(64, 3)),
        ])
        self.decoder = nn.Linear(3, 64)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.encoder:
            x = layer(x)
        return x

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


class _ConvEstimator:
    """Just what the report reads from an estimator, plus ``sample`` (a generative one)."""

    image_shape = (8, 8)

    def __init__(self) -> None:
        self.model_ = _ConvAutoencoder().eval()
        self.history_ = [{"epoch": 1, "loss": 0.2, "reconstruction": 0.2, "time": 0.1}]
        self.n_epochs_ = 1

    def get_params(self) -> dict:
        return {"hidden_layers": (6, 4, 3), "kind": "conv stub"}

    def _run(self, fn, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return fn(torch.from_numpy(np.asarray(X, dtype=np.float32))).numpy()

    def transform(self, X: np.ndarray) -> np.ndarray:
        return self._run(self.model_.encode, X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._run(lambda x: self.model_.decode(self.model_.encode(x)), X)

    def sample(self, n: int) -> np.ndarray:  # as generative estimators will have
        return self._run(self.model_.decode, np.random.default_rng(0).normal(size=(n, 3)))


def test_report_conv_model(data):
    X_train, X_test, y_test = data
    est = _ConvEstimator()
    acts = layer_activations(est, X_test[:5], 0)
    assert acts.shape == (5, 6)  # conv maps: one unit per channel
    page = build_report(est, X_train[:500], X_test, y_test, data_name="digits")
    for section in (*SECTIONS, "samples"):
        assert f'<section id="{section}">' in page, section
    assert "Conv2d 1→6 3x3" in page  # the encoder's layers, described
    assert len(check_page(page)) == 11  # 3 encoder layers: 3 x top-activating, 3 x maximisation; samples


def test_no_display_needed(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    code = (
        "import sys, numpy as np\n"
        "import aekit.viz, aekit.viz.report\n"
        "fig = aekit.viz.plot_samples(np.random.default_rng(0).random((12, 64)), (8, 8))\n"
        f"fig.savefig({str(tmp_path / 'x.png')!r}, dpi=50)\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert Path(tmp_path / "x.png").read_bytes().startswith(b"\x89PNG")
