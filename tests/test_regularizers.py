import math

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main
from aekit.data.corruption import parse_noise
from aekit.errors import ConfigError
from aekit.losses import Objective
from aekit.losses.penalties import Contractive, KLSparsity, L1Codings, jacobian_frobenius, parse_sparsity
from aekit.models import AEOutput, DenseAutoencoder
from aekit.nn.wta import LifetimeWTA
from aekit.training import ReconstructionStep, make_optimizer


@pytest.mark.parametrize("spec", ["gaussian:0.5", "dropout:0.3", "mask:0.3", "saltpepper:0.2"])
def test_corruption_only_in_training_and_target_stays_clean(spec):
    torch.manual_seed(0)
    model = DenseAutoencoder(20, [8], seed=0)
    seen, targets = [], []

    class Spy(Objective):
        def __call__(self, output, target, inputs, model):
            seen.append(inputs.clone())
            targets.append(target.clone())
            return super().__call__(output, target, inputs, model)

    step = ReconstructionStep(model, Spy("mse"), make_optimizer("adam", model.parameters(), [], 1e-3),
                              corrupt=parse_noise(spec))
    x = torch.rand(64, 20)
    step.train_batch(x, x)
    step.eval_batch(x, x)
    assert not torch.equal(seen[0], x)  # corrupted in training
    assert torch.equal(targets[0], x)  # the target is the clean input
    assert torch.equal(seen[1], x)  # never at evaluation
    est = aekit.Autoencoder((8,), noise=spec, epochs=1, random_state=0).fit(x.numpy())
    assert np.array_equal(est.predict(x.numpy()), est.predict(x.numpy()))  # inference is deterministic


def test_corruption_statistics():
    torch.manual_seed(0)
    x = torch.full((200, 500), 0.5)
    assert (parse_noise("gaussian:0.3")(x) - x).std().item() == pytest.approx(0.3, rel=0.02)
    assert (parse_noise("mask:0.3")(x) == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    dropped = parse_noise("dropout:0.3")(x)
    assert (dropped == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert dropped[dropped > 0].unique().tolist() == pytest.approx([0.5 / 0.7])  # inverted dropout rescales
    sp = parse_noise("saltpepper:0.2")(x)
    assert ((sp == 0) | (sp == 1)).float().mean().item() == pytest.approx(0.2, abs=0.01)


def out(codings):
    return AEOutput(torch.zeros(len(codings), 1), codings)


def test_kl_is_zero_at_target_and_positive_elsewhere():
    kl = KLSparsity(0.1, 0.2)
    at_target = torch.full((32, 5), 0.1)
    assert kl(out(at_target), None, None).item() == pytest.approx(0.0, abs=1e-6)
    off = torch.full((32, 5), 0.3)
    expected = 5 * (0.1 * math.log(0.1 / 0.3) + 0.9 * math.log(0.9 / 0.7))
    assert kl(out(off), None, None).item() == pytest.approx(expected, rel=1e-5)
    assert math.isfinite(kl(out(torch.zeros(4, 3)), None, None).item())  # clamped away from 0


def test_l1_codings():
    z = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    assert L1Codings(1e-3)(out(z), None, None).item() == pytest.approx(3.0)


@pytest.mark.parametrize("bad", ["kl:1.5:0.2", "kl:0.1", "l1:x", "gauss:0.1"])
def test_bad_specs(bad):
    with pytest.raises(ConfigError, match="not understood"):
        parse_noise(bad) if bad.startswith("gauss") else parse_sparsity(bad)
    with pytest.raises(ConfigError):
        aekit.Autoencoder((4,), sparsity=bad if not bad.startswith("gauss") else None,
                          noise=bad if bad.startswith("gauss") else None, epochs=1).fit(np.ones((4, 3)))


@pytest.mark.parametrize("rate,batch", [(0.05, 150), (0.1, 33), (0.5, 7), (0.01, 10)])
def test_wta_keeps_exactly_ceil_rate_batch_per_unit(rate, batch):
    torch.manual_seed(0)
    z = torch.rand(batch, 40) + 0.01  # positive, distinct
    wta = LifetimeWTA(rate).train()
    kept = (wta(z) != 0).sum(dim=0)
    assert (kept == max(1, math.ceil(rate * batch))).all()
    top = z.topk(int(kept[0]), dim=0).values[-1]
    assert ((wta(z) != 0) == (z >= top)).all()  # the winners are the largest of each unit
    # at inference the same sparsity, from each unit's running threshold (here: this one batch's): the same winners
    assert torch.equal(wta.eval()(z), wta.train()(z)) and torch.equal(wta.threshold, top)
    assert torch.equal(LifetimeWTA(rate).eval()(z), z)  # never trained: no threshold yet, every unit kept


def finite_difference_jacobian(model, x, eps=1e-6):
    x = x.double()
    cols = []
    for i in range(x.shape[0]):
        d = torch.zeros_like(x)
        d[i] = eps
        cols.append((model.encode(x + d) - model.encode(x - d)) / (2 * eps))
    return torch.stack(cols, dim=-1)  # (latent, in)


@pytest.mark.parametrize("layers,coding", [([6], "sigmoid"), ([7, 5], "elu")])
def test_contractive_matches_finite_differences(layers, coding):
    torch.manual_seed(0)
    model = DenseAutoencoder(9, layers, activation="elu", coding_activation=coding, seed=0).double()
    X = torch.rand(4, 9, dtype=torch.float64)
    fd = torch.stack([finite_difference_jacobian(model, x) for x in X]).flatten(1).pow(2).sum(1).mean()
    output = model(X)
    methods = ["closed", "exact"] if coding == "sigmoid" and len(layers) == 1 else ["exact"]
    assert methods[0] == ("closed" if Contractive.closed_form_applies(model) else "exact")
    for method in methods:
        assert Contractive(1.0, method)(output, X, model).item() == pytest.approx(fd.item(), rel=1e-6), method
    hutch = torch.stack([Contractive(1.0, "hutchinson")(output, X, model) for _ in range(3000)]).mean()
    assert hutch.item() == pytest.approx(fd.item(), rel=0.05)
    assert jacobian_frobenius(model, X).pow(2).mean().item() == pytest.approx(fd.item(), rel=1e-6)


def test_contractive_penalty_trains_a_flatter_encoder(digits):
    X, X_test = digits
    kw = dict(hidden_layers=(32,), coding_activation="sigmoid", epochs=15, random_state=0)
    plain = aekit.Autoencoder(**kw).fit(X)
    cae = aekit.Autoencoder(**kw, contractive=0.1).fit(X)
    x = torch.from_numpy(X_test).to(cae.device_)
    assert jacobian_frobenius(cae.model_, x).mean() < jacobian_frobenius(plain.model_, x).mean()


def test_sparse_kl_drives_mean_activation_to_target(digits):
    X, X_test = digits
    est = aekit.Autoencoder((100,), sparsity="kl:0.1:0.5", loss="bce", learning_rate=0.01, epochs=40,
                            random_state=0).fit(X)
    assert est.model_.config["coding_activation"] == "sigmoid"
    assert est.transform(X_test).mean() == pytest.approx(0.1, abs=0.03)


def test_everything_composes_and_each_term_is_logged(digits):
    X, _ = digits
    est = aekit.Autoencoder((32, 16), noise="gaussian:0.1", sparsity="kl:0.1:0.2", contractive=1e-3, wta=0.2,
                            loss="bce", l2=1e-4, epochs=2, random_state=0).fit(X)
    assert {"reconstruction", "sparsity", "contractive", "l2", "loss"} <= set(est.history_[-1])
    r = est.history_[-1]
    assert r["loss"] == pytest.approx(r["reconstruction"] + 0.2 * r["sparsity"] + 1e-3 * r["contractive"], rel=1e-4)
    loaded_twice = aekit.Autoencoder(**est.get_params()).fit(X)
    assert loaded_twice.history_[-1]["loss"] == est.history_[-1]["loss"]  # seeded noise and WTA: repeatable


def test_greedy_denoising_applies_penalties_on_the_coding_layer_only(digits):
    X, _ = digits
    est = aekit.Autoencoder((32, 16), noise="mask:0.2", sparsity="l1:1e-3", pretrain="greedy", phase_epochs=1,
                            random_state=0).fit(X)
    assert "sparsity" not in est.history_[0] and "sparsity" in est.history_[1]


def test_cli_regularization_flags(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--hidden", "32", "--noise", "dropout:0.3", "--sparsity", "kl:0.1:0.2", "--loss", "bce",
                 "--contractive", "1e-3", "--wta", "0.1", "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    est = aekit.load(run)
    assert (est.noise, est.sparsity, est.contractive, est.wta) == ("dropout:0.3", "kl:0.1:0.2", "1e-3", 0.1)
    assert main(["train", "--noise", "gaussian", "--out", str(tmp_path / "bad"), "--quiet"]) == 2


@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_wta_predictions_use_the_trained_sparsity(digits, arch):
    """predict / score decode the sparse codes the decoder was trained on (a running threshold per unit): the
    test error is of the training loss's size, not the dense codes' (for conv-WTA on MNIST: 4377 vs 0.06)."""
    from aekit.models.base import build_model

    X, X_test = digits
    kw = dict(hidden_layers=(200,)) if arch == "dense" else dict(arch="conv", channels=(16,), kernel_sizes=5,
                                                                 image_shape=(8, 8))
    est = aekit.Autoencoder(**kw, activation="relu", wta=0.05, epochs=10, batch_size=100, random_state=0).fit(X)
    train_loss = est.history_[-1]["reconstruction"]
    assert -est.score(X_test) < 2 * train_loss
    np.testing.assert_allclose(est.predict(X_test[:7]), est.predict(X_test)[:7], rtol=1e-6, atol=1e-7)
    # saved before thresholds existed: it loads, and inference keeps every unit as it did then
    old = {k: v for k, v in est.model_.state_dict().items() if not k.endswith("threshold")}
    model = build_model(est.model_.registry_name, est.model_.config)
    model.load_state_dict(old)
    assert model.coding_filter.threshold.numel() == 0
