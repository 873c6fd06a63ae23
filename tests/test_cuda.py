"""The CUDA path: run where a GPU is present (skipped, with the reason, where none is; CI has none).

The rest of the suite also runs on CUDA there, since estimators pick the device automatically; these tests check
what only a GPU has: the step captured as a CUDA graph against the eager step, refusing a NaN update on the
device, recapture on a learning-rate change, and checkpoints moving between devices."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import aekit
from aekit.data.corruption import parse_noise
from aekit.losses.objective import Objective
from aekit.models.dense import DenseAutoencoder
from aekit.losses.penalties import KLSparsity
from aekit.training import DenseChainStep, NonFiniteLoss, ReconstructionStep, make_optimizer, train
from aekit.training.steps import CapturedStep

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

CUDA = torch.device("cuda")


def _model_and_step(cuda_graphs: bool, tied: bool = False, lr: float = 1e-2, noise=None):
    model = DenseAutoencoder(12, [8, 4], tie_weights=tied, seed=5).to(CUDA)
    opt = make_optimizer("adam", model.parameters(), model.regularized_weights(), lr)
    return model, DenseChainStep(model, model.dense_chain(), Objective("mse"), opt, corrupt=noise,
                                 cuda_graphs=cuda_graphs)


def _data(n=210, d=12, seed=4):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed)).to(CUDA)


@pytest.mark.parametrize("tied", [False, True])
def test_captured_step_matches_eager(tied):
    X = _data()  # 210 rows, batch 20: ten full batches and a short last one per epoch (run eagerly)
    results = []
    for graphs in (True, False):
        model, step = _model_and_step(graphs, tied)
        history = train(step, X, epochs=3, batch_size=20, generator=torch.Generator().manual_seed(0))
        assert (step.captured is not None) == graphs
        results.append(([p.detach().clone() for p in model.parameters()], [h["loss"] for h in history]))
    (w_graph, loss_graph), (w_eager, loss_eager) = results
    assert loss_graph == pytest.approx(loss_eager, rel=1e-5)
    for a, b in zip(w_graph, w_eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_autograd_step_captured_matches_eager():
    """The autograd step (here built directly, with a KL sparsity penalty) is captured with autograd's backward."""
    X = _data()
    results = []
    for graphs in (True, False):
        model = DenseAutoencoder(12, [8, 4], coding_activation="sigmoid", seed=5).to(CUDA)
        opt = make_optimizer("adam", model.parameters(), model.regularized_weights(), 1e-2)
        step = ReconstructionStep(model, Objective("mse", [KLSparsity(0.1, 0.5)]), opt, cuda_graphs=graphs)
        history = train(step, X, epochs=3, batch_size=20, generator=torch.Generator().manual_seed(0))
        assert (step.captured is not None) == graphs
        results.append(([p.detach().clone() for p in model.parameters()], history[-1]))
    (w_graph, h_graph), (w_eager, h_eager) = results
    for key in ("loss", "reconstruction", "sparsity"):
        assert h_graph[key] == pytest.approx(h_eager[key], rel=1e-5), key
    for a, b in zip(w_graph, w_eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.fixture
def replays(monkeypatch):
    """Counts the steps that ran as graph replays."""
    count = [0]
    original = CapturedStep.__call__

    def counting(self, *args):
        count[0] += 1
        return original(self, *args)

    monkeypatch.setattr(CapturedStep, "__call__", counting)
    return count


def test_vae_trains_through_a_graph(digits, replays, monkeypatch):
    X = digits[0]
    kw = dict(hidden_layers=(64,), latent_dim=4, epochs=6, batch_size=50, random_state=0, device="cuda")
    graphed = aekit.VariationalAutoencoder(**kw).fit(X)
    assert replays[0] >= 6 * (len(X) // 50 - 2)  # all but the first eager steps and the short last batch
    monkeypatch.setenv("AEKIT_CUDA_GRAPHS", "0")
    eager = aekit.VariationalAutoencoder(**kw).fit(X)
    # the sampling noise differs (graphs draw from their own offsets), the training does not
    assert graphed.history_[-1]["loss"] == pytest.approx(eager.history_[-1]["loss"], rel=0.05)
    assert graphed.history_[-1]["loss"] < graphed.history_[0]["loss"]


def test_graph_draws_fresh_noise_at_each_replay(digits):
    """A VAE's sampling inside the graph must not replay the draws it was captured with."""
    X = torch.from_numpy(digits[0][:50]).to(CUDA)
    vae = aekit.VariationalAutoencoder((32,), latent_dim=4, epochs=0, random_state=0, device="cuda").fit(digits[0])
    step = vae._make_step(vae.model_)
    for group in step.optimizer.param_groups:
        group["lr"] = 0.0  # the weights stay put: only the draws can change the loss
    losses = [float(step.train_batch(X, X)["loss"]) for _ in range(6)]
    assert step.captured is not None
    replayed = losses[2:]  # the first two steps run eagerly (the optimizer's state appears at the first)
    assert len(set(replayed)) == len(replayed), losses


def test_one_graph_serves_every_epoch():
    X = _data()
    model, step = _model_and_step(True)
    train(step, X, epochs=1, batch_size=20, generator=torch.Generator().manual_seed(0))
    first = step.captured
    train(step, X, epochs=2, batch_size=20, generator=torch.Generator().manual_seed(1))
    assert step.captured is first  # the short last batch ran eagerly and did not replace the graph


def test_nan_batch_is_refused_on_the_device():
    X = _data()
    model, step = _model_and_step(True)
    train(step, X, epochs=1, batch_size=20, generator=torch.Generator().manual_seed(0))
    assert step.captured is not None
    before = [p.detach().clone() for p in model.parameters()]
    state = [{k: v.clone() for k, v in s.items()} for s in step.optimizer.state.values()]
    bad = X[:20].clone()
    bad[3, 2] = float("nan")
    with pytest.raises(NonFiniteLoss):
        step.train_batch(bad, bad)
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b)  # the update was not applied ...
    for saved, now in zip(state, step.optimizer.state.values()):
        for k in saved:
            assert torch.equal(saved[k], now[k]), k  # ... nor the moments or step counters moved
    terms = step.train_batch(X[:20], X[:20])  # and the next good batch trains through the same graph
    assert math.isfinite(float(terms["loss"])) and not torch.equal(before[0], model.encoder[0].weight)


def test_learning_rate_change_recaptures():
    X = _data()
    runs = []
    for graphs in (True, False):
        model, step = _model_and_step(graphs)
        train(step, X, epochs=1, batch_size=20, generator=torch.Generator().manual_seed(0))
        first = step.captured
        for group in step.optimizer.param_groups:
            group["lr"] = 1e-3
        train(step, X, epochs=2, start_epoch=1, batch_size=20, generator=torch.Generator().manual_seed(0))
        if graphs:
            assert isinstance(step.captured, CapturedStep) and step.captured is not first
        runs.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_denoising_noise_is_drawn_outside_the_graph():
    X = _data()
    model, step = _model_and_step(True, noise=parse_noise("gaussian:0.2"))
    torch.manual_seed(0)
    history = train(step, X, epochs=4, batch_size=20, generator=torch.Generator().manual_seed(0))
    assert step.captured is not None and not step.captured.self_target  # corrupted input, clean target
    assert history[-1]["loss"] < history[0]["loss"]


def test_estimator_fits_on_cuda_like_on_cpu(digits):
    X, X_test = digits
    kw = dict(hidden_layers=(32, 16), epochs=8, random_state=0)
    gpu = aekit.Autoencoder(device="cuda", **kw).fit(X)
    cpu = aekit.Autoencoder(device="cpu", **kw).fit(X)
    assert gpu.device_.type == "cuda" and next(gpu.model_.parameters()).is_cuda
    assert gpu.score(X_test) == pytest.approx(cpu.score(X_test), rel=0.02)
    assert np.abs(gpu.transform(X_test) - cpu.transform(X_test)).max() < 0.05


def test_checkpoint_moves_between_devices(digits, tmp_path):
    X, X_test = digits
    gpu = aekit.Autoencoder((32, 16), epochs=2, random_state=0, device="cuda").fit(X)
    gpu.save(tmp_path / "run")
    on_cpu = aekit.load(tmp_path / "run", device="cpu")
    assert next(on_cpu.model_.parameters()).device.type == "cpu"
    np.testing.assert_allclose(on_cpu.transform(X_test), gpu.transform(X_test), rtol=1e-4, atol=1e-5)
    cpu = aekit.Autoencoder((32, 16), epochs=2, random_state=0, device="cpu").fit(X)
    cpu.save(tmp_path / "cpu-run")
    back = aekit.load(tmp_path / "cpu-run", device="cuda")
    np.testing.assert_allclose(back.transform(X_test), cpu.transform(X_test), rtol=1e-4, atol=1e-5)
    back.set_params(epochs=4, warm_start=True).fit(X)  # resumes training on the other device (optimizer state moved with it)
    assert back.n_epochs_ == 4 and back.history_[-1]["loss"] < back.history_[1]["loss"]


@pytest.mark.parametrize("make", [
    lambda: aekit.VariationalAutoencoder((32,), latent_dim=4, epochs=2, random_state=0, device="cuda"),
    lambda: aekit.AdversarialAutoencoder((32,), latent_dim=2, epochs=2, random_state=0, device="cuda"),
    lambda: aekit.GSN((32,), epochs=2, random_state=0, device="cuda"),
    lambda: aekit.Autoencoder(arch="conv", image_shape=(8, 8), epochs=2, random_state=0, device="cuda"),
    lambda: aekit.Autoencoder((32, 16), sparsity="kl:0.1:0.5", epochs=2, random_state=0, device="cuda"),
])
def test_other_families_train_on_cuda(make, digits, replays):
    X = digits[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed capture warns: none may
        est = make().fit(X)
    assert next(est.model_.parameters()).is_cuda
    assert np.isfinite(est.history_[-1]["loss"])
    if not isinstance(est, aekit.AdversarialAutoencoder):  # its three updates are a step of their own, eager
        assert replays[0] > 0
