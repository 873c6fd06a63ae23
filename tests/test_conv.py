"""Convolutional autoencoders (issue 5): geometry, estimator, checkpoints, spatial WTA, greedy, regularizers, CLI,
CIFAR-10 batches."""

import itertools
import json
import math
import os
import pickle

import numpy as np
import pytest
import torch

import aekit
from aekit.io import checkpoint_dir
from aekit.cli import main
from aekit.errors import ConfigError, DataError
from aekit.losses.penalties import Contractive
from aekit.models import ConvAutoencoder, build_model
from aekit.nn.conv import conv_encoder, conv_shapes, conv_stages, transposed_decoder
from aekit.nn.wta import LifetimeWTA, SpatialWTA

SMALL = {"channels": (4, 8), "epochs": 2, "batch_size": 16, "random_state": 0}


def images(n, shape, seed=0):
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


# -- geometry ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,config", [
    ((1, 8, 8), {"channels": (4, 8)}),
    ((3, 7, 9), {"channels": (4, 8)}),
    ((1, 30, 30), {"channels": (4, 8, 8), "kernel_sizes": (5, 3, 3)}),
    ((3, 30, 30), {"channels": (4, 8), "strides": 1, "pool_sizes": 2, "coding_size": 5}),
    ((1, 28, 28), {"channels": (16, 32, 64), "strides": 1, "pool_sizes": 2, "coding_size": 30}),  # the book's: 7 -> 3 -> 7
    ((2, 9, 7), {"channels": (3,), "kernel_sizes": 4, "strides": 3}),
])
def test_output_has_the_input_shape(shape, config):
    model = ConvAutoencoder(shape, **config, seed=0)
    x = torch.rand(3, math.prod(shape))
    out = model(x)
    assert out.logits.shape == x.shape
    assert out.codings.shape == (3, model.n_codings)
    assert model.n_codings == (config.get("coding_size") or math.prod(model.map_shape))


def test_every_geometry_is_mirrored_exactly_or_refused_for_a_reason():
    for h, k, s, p in itertools.product(range(1, 16), (1, 2, 3, 5), (1, 2, 3), (1, 2)):
        shape = (1, h, h + 3)
        stages = conv_stages([2], k, s, p)
        try:
            shapes = conv_shapes(shape, stages)
        except ConfigError:
            assert stages[0].output_size(h) < 1 or k + s <= s * p, (h, k, s, p)
            continue
        x = torch.zeros(1, *shape)
        maps = conv_encoder(shape, stages)[0](x)
        assert maps.shape[1:] == shapes[1]
        assert transposed_decoder(shapes, stages)[0](maps).shape == x.shape, (h, k, s, p)


# -- estimator ----------------------------------------------------------------------------------------------------
def test_grayscale_rows_with_image_shape():
    X = images(48, (7, 9)).reshape(48, -1)
    est = aekit.Autoencoder(arch="conv", image_shape=(7, 9), **SMALL).fit(X)
    assert est.transform(X).shape == (48, est.model_.n_codings) == (48, 30)  # coding_size="auto": the book's 30
    maps = aekit.Autoencoder(arch="conv", image_shape=(7, 9), coding_size=None, **SMALL).fit(X)
    assert maps.transform(X).shape == (48, 8 * 2 * 3)  # None: the flattened last maps are the codings
    assert aekit.Autoencoder(arch="conv", image_shape=(7, 9), wta=0.2, **SMALL).fit(X).model_.n_codings == 48
    assert est.predict(X).shape == X.shape
    assert est.inverse_transform(est.transform(X)).shape == X.shape
    assert np.isfinite(est.score(X))


def test_colour_images_in_and_out():
    X = images(48, (3, 10, 11))
    est = aekit.Autoencoder(arch="conv", **SMALL).fit(X)  # the image shape comes from X
    assert est.model_.config["image_shape"] == [3, 10, 11]
    assert est.predict(X).shape == X.shape  # images in, images out
    assert np.allclose(est.predict(X.reshape(48, -1)), est.predict(X).reshape(48, -1))
    assert est.transform(X).shape == (48, 30)  # the default dense coding layer (coding_size="auto")
    assert est.reconstruction_error(X).shape == (48,)
    before = est.score(X)
    est.set_params(epochs=6, warm_start=True).fit(X)
    assert est.score(X) > before  # it learns


def test_checkpoint_round_trip(tmp_path):
    X = images(40, (3, 7, 9))
    est = aekit.Autoencoder(arch="conv", coding_size=6, wta=0.2, **SMALL).fit(X)
    est.save(tmp_path / "run")
    loaded = aekit.load(tmp_path / "run")
    assert np.array_equal(loaded.predict(X), est.predict(X))
    assert np.array_equal(loaded.transform(X), est.transform(X))
    config = json.loads((checkpoint_dir(tmp_path / "run") / "config.json").read_text())["model"]
    assert config["name"] == "conv" and config["config"]["coding_size"] == 6
    rebuilt = build_model("conv", config["config"])
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in est.model_.parameters()]
    loaded.set_params(epochs=3, warm_start=True).fit(X)  # resumes from the checkpoint
    assert loaded.n_epochs_ == 3


def test_mismatched_shapes_are_clear_errors():
    X = images(20, (1, 8, 8))
    with pytest.raises(DataError, match="64 features, but image_shape .* holds 63"):
        aekit.Autoencoder(arch="conv", image_shape=(7, 9), **SMALL).fit(X.reshape(20, -1))
    with pytest.raises(DataError, match="needs the shape of one image"):
        aekit.Autoencoder(arch="conv", **SMALL).fit(X.reshape(20, -1))
    with pytest.raises(DataError, match=r"images of shape \(1, 8, 8\), but the model expects \(3, 8, 8\)"):
        aekit.Autoencoder(arch="conv", image_shape=(3, 8, 8), **SMALL).fit(X)
    est = aekit.Autoencoder(arch="conv", **SMALL).fit(X)
    with pytest.raises(DataError, match=r"images of shape \(8, 9\), but the model expects \(1, 8, 8\)"):
        est.transform(images(2, (8, 9)))
    with pytest.raises(ValueError, match="features"):
        est.predict(images(2, (1, 8, 9)).reshape(2, -1))
    with pytest.raises(ConfigError, match="shrink"):
        aekit.Autoencoder(arch="conv", channels=(4, 4, 4, 4), strides=1, pool_sizes=2, epochs=1).fit(X)


# -- winner-take-all ----------------------------------------------------------------------------------------------
def test_spatial_wta_keeps_each_maps_maximum_then_the_top_samples():
    batch, shape, rate = 40, (6, 5, 7), 0.1
    x = torch.randn(batch, math.prod(shape), requires_grad=True)
    wta = SpatialWTA(rate, shape).train()
    out = wta(x).view(batch, 6, -1)
    maps = x.detach().view(batch, 6, -1)
    nonzero = out != 0
    assert nonzero.sum(dim=2).max() <= 1  # at most one value per map per sample
    winners = nonzero.any(dim=2)  # (batch, maps)
    assert (winners.sum(dim=0) == math.ceil(rate * batch)).all()  # exactly ceil(k * batch) winners per map
    peak = maps.max(dim=2).values
    kept = out.sum(dim=2)
    assert torch.equal(kept[winners], peak[winners])  # the kept value is the map's maximum
    for c in range(6):  # the winners are the samples with the largest maxima
        assert set(winners[:, c].nonzero().flatten().tolist()) == set(peak[:, c].topk(4).indices.tolist())
    out.sum().backward()
    assert torch.equal(x.grad.view(batch, 6, -1) != 0, nonzero)  # gradients reach the winners only
    # at inference the same sparsity: each map's maximum, kept above that map's running threshold (here: from this
    # one batch, so the same winners)
    assert torch.equal(wta.eval()(x), wta.train()(x))
    assert torch.equal(SpatialWTA(rate, shape).eval()(x), x)  # never trained: no threshold yet
    spatial_only = SpatialWTA(1.0, shape).train()(x).view(batch, 6, -1)
    assert ((spatial_only != 0).sum(dim=2) == 1).all()


def test_wta_on_conv_models():
    assert isinstance(ConvAutoencoder((8, 8), (4,), wta=0.1).coding_filter, SpatialWTA)
    assert isinstance(ConvAutoencoder((8, 8), (4,), coding_size=5, wta=0.1).coding_filter, LifetimeWTA)
    model = ConvAutoencoder((8, 8), (4,), activation="linear", wta=0.1, seed=0)
    x = torch.rand(20, 64)
    model.train()
    sparse = model(x).logits
    dense = ConvAutoencoder((8, 8), (4,), activation="linear", seed=0).eval()(x).logits  # the same weights, no WTA
    model.eval()
    assert torch.allclose(sparse, model(x).logits)  # inference decodes the sparse codes it was trained on
    assert not torch.allclose(dense, model(x).logits)
    X = images(60, (1, 12, 12))
    est = aekit.Autoencoder(arch="conv", kernel_sizes=5, strides=1, activation="relu", wta=0.05,
                            **{**SMALL, "channels": (8,)}).fit(X)
    assert np.isfinite(est.history_[-1]["loss"])


# -- greedy layer-wise --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["phases", "separate"])
@pytest.mark.parametrize("coding_size", [None, 5])
def test_greedy_conv_stacks(strategy, coding_size):
    X = images(48, (3, 9, 9)).reshape(48, -1)
    est = aekit.Autoencoder(arch="conv", image_shape=(3, 9, 9), coding_size=coding_size, pretrain="greedy",
                            greedy_strategy=strategy, phase_epochs=(2,), fine_tune_epochs=1, **SMALL).fit(X)
    n_pairs = 2 + (coding_size is not None)
    assert [r["phase"] for r in est.history_] == [p for p in range(1, n_pairs + 1) for _ in range(2)] + ["fine-tune"]
    assert est.transform(X).shape == (48, est.model_.n_codings)


@pytest.mark.parametrize("coding_size", [None, 5])
def test_greedy_separate_stacks_the_shallow_autoencoders(coding_size):
    X = images(48, (3, 9, 9)).reshape(48, -1)
    est = aekit.Autoencoder(arch="conv", image_shape=(3, 9, 9), coding_size=coding_size, pretrain="greedy",
                            greedy_strategy="separate", phase_epochs=(2,), **SMALL).fit(X)
    shallow = est.shallow_autoencoders_
    assert len(shallow) == est.model_.n_pairs == 2 + (coding_size is not None)
    with torch.no_grad():  # the stack = shallow encoders in order, their decoders in reverse order
        h = torch.from_numpy(X).to(est.device_)
        for ae in shallow:
            h = ae.encode(h)
        assert np.allclose(est.transform(X), h.cpu().numpy(), atol=1e-5)
        for ae in reversed(shallow):
            h = ae.output(ae.decode(h))
        assert np.allclose(est.predict(X), h.cpu().numpy(), atol=1e-5)


def test_greedy_phases_freeze_the_lower_conv_layers():
    X = images(48, (1, 9, 9)).reshape(48, -1)
    maps = {"coding_size": None}  # the two conv layer pairs alone (a coding layer would be a third pair)
    est = aekit.Autoencoder(arch="conv", image_shape=(9, 9), pretrain="greedy", phase_epochs=(1, 0), **maps,
                            **SMALL).fit(X)
    first = {n: p.detach().clone() for n, p in est.model_.named_parameters()}
    est2 = aekit.Autoencoder(arch="conv", image_shape=(9, 9), pretrain="greedy", phase_epochs=(1, 2), **maps,
                             **SMALL).fit(X)
    for name, p in est2.model_.named_parameters():  # same seed: phase 2 changed only pair 1
        pair1 = name.startswith(("encoder.1.", "decoder.0."))
        assert torch.equal(first[name], p) != pair1, name


# -- regularizers -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("settings,terms", [
    ({"noise": "gaussian:0.1"}, []),
    ({"noise": "mask:0.3", "sparsity": "l1:1e-3"}, ["sparsity"]),
    ({"sparsity": "kl:0.1:0.1"}, ["sparsity"]),
    ({"contractive": "1e-3:exact"}, ["contractive"]),
    ({"contractive": "1e-3:hutchinson", "coding_size": 4}, ["contractive"]),
])
def test_regularizers_compose_with_conv(settings, terms):
    X = images(32, (2, 6, 7))
    est = aekit.Autoencoder(arch="conv", **{**SMALL, **settings}).fit(X)
    record = est.history_[-1]
    assert all(np.isfinite(record[t]) and record[t] > 0 for t in ["reconstruction", *terms])
    if "kl" in str(settings.get("sparsity")):
        assert est.model_.config["coding_activation"] == "sigmoid"


def test_exact_contractive_penalty_is_the_jacobian_norm():
    model = ConvAutoencoder((2, 5, 6), (3, 4), seed=0)
    x = torch.rand(3, 60)
    penalty = Contractive(1.0, "exact")(model(x), x, model)
    jac = torch.stack([torch.autograd.functional.jacobian(lambda v: model.encode(v[None])[0], row) for row in x])
    assert penalty.item() == pytest.approx(jac.pow(2).sum(dim=(1, 2)).mean().item(), rel=1e-5)


# -- command line -------------------------------------------------------------------------------------------------
def test_cli_arch_conv_on_digits(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--arch", "conv", "--channels", "8,16", "--kernel-sizes", "3", "--strides", "2",
                 "--epochs", "2", "--out", str(run), "--quiet", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert np.isfinite(metrics["test_mse"])
    assert main(["encode", str(run), "--out", str(tmp_path / "z.npy")]) == 0
    assert np.load(tmp_path / "z.npy").shape == (360, 30)  # --coding-size auto: the book's 30
    capsys.readouterr()
    assert main(["info", str(run), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["model"]["image_shape"] == [1, 8, 8] and info["params"]["arch"] == "conv"
    np.save(tmp_path / "table.npy", np.random.default_rng(0).random((30, 10), dtype=np.float32))
    assert main(["train", "--arch", "conv", "--data", str(tmp_path / "table.npy"), "--epochs", "1",
                 "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "needs the shape of one image" in capsys.readouterr().err


# -- CIFAR-10 batches -----------------------------------------------------------------------------------------------
def write_fake_cifar(folder, n=4, protocol=2):
    """A cifar-10-batches-py folder in the official layout: pickled dicts with byte-string keys."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate([*(f"data_batch_{j}" for j in range(1, 6)), "test_batch"]):
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, n)],
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
        if i == 0:
            batch[b"data"][0] = 255  # one white image
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=protocol)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_batches(tmp_path, protocol, monkeypatch):
    write_fake_cifar(tmp_path / "cifar10" / "cifar-10-batches-py", protocol=protocol)
    ds = aekit.load_dataset("cifar10", data_dir=tmp_path)
    assert ds.X_train.shape == (20, 3072) and ds.X_test.shape == (4, 3072)
    assert ds.X_train.dtype == np.float32 and 0 <= ds.X_train.min() and ds.X_train.max() <= 1
    assert ds.image_shape == (3, 32, 32) and ds.y_train.dtype == np.int64 and len(ds.y_train) == 20
    assert (ds.X_train[0] == 1).all()
    monkeypatch.setenv("AEKIT_DATA_DIR", str(tmp_path))  # searched like the other datasets
    assert np.array_equal(aekit.load_dataset("cifar10").X_test, ds.X_test)


def test_cifar10_missing_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("AEKIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AEKIT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="cifar-10-python.tar.gz.*image"):
        aekit.load_dataset("cifar10")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_cifar10_refuses_other_pickled_code(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar(folder)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f, protocol=2)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="refusing to load the global"):
        aekit.load_dataset("cifar10", data_dir=tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_cli_conv_on_a_folder_of_colour_images(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    run = tmp_path / "run"
    assert main(["train", "--arch", "conv", "--data", str(folder), "--channels", "4,8", "--epochs", "1",
                 "--out", str(run), "--quiet"]) == 0
    assert aekit.load(run).model_.config["image_shape"] == [3, 9, 11]
    assert main(["reconstruct", str(run), "--out", str(tmp_path / "r.npy")]) == 0
    assert np.load(tmp_path / "r.npy").shape == (2, 3 * 9 * 11)  # the held-out test rows: 0.2 of the folder's 12
    assert main(["reconstruct", str(run), "--split", "train", "--out", str(tmp_path / "t.npy")]) == 0
    assert np.load(tmp_path / "t.npy").shape == (10, 3 * 9 * 11)
