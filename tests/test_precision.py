"""bfloat16 mixed precision: every training path takes it, checkpoints stay float32, a seeded run and a resumed
run are bit-for-bit repeatable, and a device that cannot run it fast refuses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aekit
from aekit.errors import ConfigError
from aekit.io import checkpoint_dir, load_checkpoint
from aekit.losses import Objective
from aekit.models.dense import DenseAutoencoder
from aekit.training import ReconstructionStep, make_optimizer, reconstruction_step
from aekit.training import precision as precision_module
from aekit.training.precision import Precision

needs_bf16 = pytest.mark.skipif(not precision_module.cpu_has_bf16(), reason="this CPU has no bfloat16 units")


def test_precision_is_validated_and_16_mixed_is_for_cuda(digits):
    with pytest.raises(ValueError):
        aekit.Autoencoder((8,), precision="bf16", epochs=1).fit(digits[0])
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="16-mixed' is for CUDA"):
            aekit.Autoencoder((8,), precision="16-mixed", epochs=1, device="cpu").fit(digits[0])


def test_a_cpu_without_bf16_units_refuses_it(digits, monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: False)
    with pytest.raises(ConfigError, match="needs a CPU with bfloat16 units"):
        aekit.Autoencoder((8,), precision="bf16-mixed", epochs=1, device="cpu").fit(digits[0])
    monkeypatch.setenv("AEKIT_ALLOW_SLOW_BF16", "1")  # the explicit way to run it anyway, said once
    with pytest.warns(RuntimeWarning, match="without bfloat16 units"):
        aekit.Autoencoder((8,), precision="bf16-mixed", epochs=1, device="cpu").fit(digits[0])


@needs_bf16
@pytest.mark.parametrize("kw", [dict(hidden_layers=(32, 16)), dict(hidden_layers=(32, 16), tie_weights=True),
                                dict(hidden_layers=(32, 16), sparsity="kl:0.1:0.2")], ids=["untied", "tied", "kl"])
def test_bf16_dense_takes_the_hand_written_executor_and_matches_fp32(digits, kw, tmp_path):
    X, X_test = digits
    fp32 = aekit.Autoencoder(**kw, epochs=10, random_state=0, device="cpu").fit(X)
    bf16 = aekit.Autoencoder(**kw, epochs=10, random_state=0, device="cpu", precision="bf16-mixed",
                             checkpoint_dir=str(tmp_path / "run")).fit(X)
    assert bf16.executor_ == "hand-written dense chain"
    assert -bf16.score(X_test) == pytest.approx(-fp32.score(X_test), rel=0.05)
    assert bf16.transform(X_test).dtype == np.float32
    weights = load_checkpoint(tmp_path / "run").weights
    assert all(w.dtype == torch.float32 for w in weights.values())  # checkpoints stay float32
    in_fp32 = aekit.load(tmp_path / "run").set_params(precision="32-true")  # loads under any precision
    np.testing.assert_allclose(in_fp32.transform(X_test), bf16.transform(X_test), rtol=0.05, atol=0.02)


@needs_bf16
@pytest.mark.parametrize("tied", [False, True])
def test_bf16_hand_written_gradients_match_autocast_autograd(tied):
    torch.manual_seed(0)
    model = DenseAutoencoder(64, [32, 16], seed=0, tie_weights=tied)
    x = torch.rand(50, 64)
    opt = make_optimizer("adam", model.parameters(), [], 1e-3)
    bf16 = Precision("bf16-mixed")
    fast = reconstruction_step(model, Objective("mse"), opt, precision=bf16)
    assert fast.executor == "hand-written dense chain"
    grads = []
    for step in (fast, ReconstructionStep(model, Objective("mse"), opt, precision=bf16)):
        for p in model.parameters():
            p.grad = None
        step.forward_backward(x, x)
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        assert a.dtype == torch.float32 and torch.allclose(a, b, rtol=0.05, atol=0.05 * float(b.abs().max()))


@needs_bf16
def test_bf16_runs_are_repeatable_and_resume_bit_for_bit(digits, tmp_path):
    X = digits[0]
    kw = dict(hidden_layers=(32, 16), epochs=3, random_state=0, device="cpu", precision="bf16-mixed",
              checkpoint_every=3)
    full = aekit.Autoencoder(**kw).fit(X)
    again = aekit.Autoencoder(**kw).fit(X)
    part = aekit.Autoencoder(**{**kw, "epochs": 1}, checkpoint_dir=str(tmp_path / "run")).fit(X)
    resumed = aekit.load(tmp_path / "run").set_params(epochs=3, warm_start=True).fit(X)
    for name, w in full.model_.state_dict().items():
        assert torch.equal(w, again.model_.state_dict()[name]) and torch.equal(w, resumed.model_.state_dict()[name])
    assert [r["loss"] for r in resumed.history_] == [r["loss"] for r in full.history_]
    assert part.n_epochs_ == 1


@needs_bf16
@pytest.mark.parametrize("make", [
    lambda: aekit.VariationalAutoencoder((32,), latent_dim=4, precision="bf16-mixed"),
    lambda: aekit.VariationalAutoencoder((16,), latent_dim=3, arch="conv", channels=(4,), image_shape=(8, 8),
                                         precision="bf16-mixed"),
    lambda: aekit.Autoencoder(arch="conv", channels=(4, 8), image_shape=(8, 8), precision="bf16-mixed"),
    lambda: aekit.Autoencoder((32, 16), pretrain="greedy", phase_epochs=1, fine_tune_epochs=1,
                              precision="bf16-mixed"),
    lambda: aekit.Autoencoder((32, 16), contractive="1e-3", noise="gaussian:0.1", precision="bf16-mixed"),
    lambda: aekit.AdversarialAutoencoder((32,), latent_dim=2, discriminator_layers=(8,), precision="bf16-mixed"),
    lambda: aekit.GSN((32,), precision="bf16-mixed"),
    lambda: aekit.SemanticHasher(8, hidden_layers=(32,), precision="bf16-mixed"),
    lambda: aekit.PretrainedClassifier(autoencoder_params={"hidden_layers": (16,), "epochs": 1},
                                       precision="bf16-mixed", steps=300),
], ids=["vae", "conv-vae", "conv", "greedy", "contractive+noise", "aae", "gsn", "hasher", "classifier"])
def test_every_training_path_takes_bf16(digits, make):
    X = digits[0][:300]
    est = make().set_params(epochs=2, random_state=0, device="cpu")
    if isinstance(est, aekit.PretrainedClassifier):
        y = aekit.load_dataset("digits").y_train[:300]
        est.set_params(epochs=None).fit(X, y)
        assert est.predict_proba(X[:5]).dtype == np.float64 and est.score(X, y) > 0.8
        assert est.autoencoder_.precision == "bf16-mixed"  # the pretraining follows the classifier's precision
    else:
        est.fit(X)
        out = est.transform(X[:5])
        assert out.dtype == np.float32 and np.isfinite(out).all()
    assert all(np.isfinite(r["loss"]) for r in est.history_)
    assert all(p.dtype == torch.float32 for p in est.model_.parameters())  # master weights stay float32


@needs_bf16
@pytest.mark.parametrize("make", [
    lambda **kw: aekit.VariationalAutoencoder((32,), latent_dim=4, free_bits=0.1, **kw),  # free bits: autograd
    lambda **kw: aekit.IWAE((32,), latent_dim=4, k=3, gradient="dreg", **kw),
    lambda **kw: aekit.VampPriorVAE((32,), latent_dim=4, n_components=5, **kw),
], ids=["vae-free-bits", "iwae-dreg", "vamp"])
def test_bf16_variational_autograd_samples_in_float32_and_tracks_fp32(digits, make):
    """The matrix multiplies in bfloat16, the posterior's parameters, the draws and the log-weights in float32 (as
    the hand-written chain does): the bf16 run's losses stay within 1% of the fp32 run's."""
    X = digits[0][:400]
    kw = dict(epochs=3, random_state=0, device="cpu", loss="bce")
    fp32 = make(**kw).fit(X)
    bf16 = make(precision="bf16-mixed", **kw).fit(X)
    model = bf16.model_
    with Precision("bf16-mixed").autocast(torch.device("cpu")):
        mu, logvar = model.encode_distribution(torch.as_tensor(X[:8]))
        h = model.encode_hidden(torch.as_tensor(X[:8]))
    assert h.dtype == torch.bfloat16  # the layers did run in bfloat16
    assert mu.dtype == logvar.dtype == torch.float32
    for a, b in zip(fp32.history_, bf16.history_):
        assert abs(a["loss"] - b["loss"]) <= 0.01 * abs(a["loss"])
