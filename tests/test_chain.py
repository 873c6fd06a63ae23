"""The hand-written fast path (aekit.nn.chain + DenseChainStep) against autograd on the same model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aekit
from aekit.losses.objective import Objective
from aekit.losses.penalties import Contractive, KLSparsity, L1Codings
from aekit.losses.reconstruction import LOSSES_WITH_GRAD
from aekit.models.dense import DenseAutoencoder
from aekit.models.hashing import HashingAutoencoder
from aekit.training import DenseChainStep, ReconstructionStep, make_optimizer, reconstruction_step, train
from aekit.training.executors import explain
from aekit.training.greedy import LayerPair


def _data(n=32, d=12, seed=0):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed))


def _autograd_grads(module, objective, x, target):
    module.zero_grad(set_to_none=True)
    terms = objective(module(x), target, x, module)
    terms["loss"].backward()
    return float(terms["loss"].detach()), {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def _chain_grads(module, objective, x, target):
    for p in module.parameters():
        p.grad = None
    chain = module.dense_chain()
    outputs = chain.forward(x)
    if chain.target_index is not None:
        target = outputs[chain.target_index]
    loss, grad = LOSSES_WITH_GRAD[objective.reconstruction_name](outputs[-1], target, chain.output_activation)
    chain.backward(outputs, grad)
    return float(loss), {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("activation", ["elu", "selu", "relu", "sigmoid", "tanh", "linear"])
@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("loss,output", [("mse", "linear"), ("mse", "sigmoid"), ("bce", "sigmoid")])
def test_gradients_equal_autograd(activation, tied, loss, output):
    torch.manual_seed(0)
    model = DenseAutoencoder(12, [9, 5, 3], activation=activation, tie_weights=tied, output_activation=output,
                             coding_activation="tanh", seed=1).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # biases off zero, so every term of the gradient shows
    x = _data().double()
    objective = Objective(loss)
    loss_a, grads_a = _autograd_grads(model, objective, x, x)
    loss_c, grads_c = _chain_grads(model, objective, x, x)
    assert loss_c == pytest.approx(loss_a, rel=1e-12)
    assert grads_a.keys() == grads_c.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_c[name], grads_a[name], rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("through_prefix", [False, True])
@pytest.mark.parametrize("k", [0, 1, 2])
def test_layer_pair_chain_equals_autograd(k, through_prefix):
    model = DenseAutoencoder(12, [9, 5, 3], seed=2).double()
    pair = LayerPair(model, k, through_prefix=through_prefix)
    x = _data(seed=3).double()
    inputs = x if through_prefix else model.encode_prefix(x, k).detach()
    loss_a, grads_a = _autograd_grads(pair, Objective("mse"), inputs, inputs)
    loss_c, grads_c = _chain_grads(pair, Objective("mse"), inputs, inputs)
    assert loss_c == pytest.approx(loss_a, rel=1e-12)
    trained = {f"model.{n}" for n, p in model.named_parameters() if any(p is q for q in model.pair_parameters(k))}
    assert set(grads_c) == trained  # frozen lower layers get no gradient
    for name in grads_a:
        torch.testing.assert_close(grads_c[name], grads_a[name], rtol=1e-10, atol=1e-12, msg=name)


def _step_grads(step, x):
    """The terms and gradients one step computes (no optimizer update), the hand-written or the autograd one."""
    for p in step.model.parameters():
        p.grad = None
    terms = step.forward_backward(x, x)
    return ({k: float(v) for k, v in terms.items()},
            {n: p.grad.clone() for n, p in step.model.named_parameters() if p.grad is not None})


@pytest.mark.parametrize("penalty", [KLSparsity(0.2, 0.7), KLSparsity(0.02, 3.0), L1Codings(0.05)])
@pytest.mark.parametrize("pair", [None, 1])
@pytest.mark.parametrize("tied", [False, True])
def test_sparsity_gradients_equal_autograd(penalty, pair, tied):
    """KL and L1 sparsity on the codings, whole model or the innermost greedy pair (through the frozen layer);
    KLSparsity(0.02, ...) on sigmoid codings whose batch means sit near 0.5, and one unit pushed below eps, so
    the clamp's zero gradient shows too."""
    model = DenseAutoencoder(12, [9, 5], activation="elu", coding_activation="sigmoid", tie_weights=tied,
                             seed=1).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()), dtype=p.dtype))
        model.encoder[1].bias[0] = -40.0  # unit 0's codings ~ 4e-18: mean below eps, clamped
    module = model if pair is None else LayerPair(model, pair, through_prefix=True)
    x = _data().double()
    objective = Objective("mse", [penalty])
    opt = make_optimizer("adam", module.parameters(), [], 1e-3)
    fast = reconstruction_step(module, objective, opt)
    assert type(fast) is DenseChainStep
    terms_c, grads_c = _step_grads(fast, x)
    terms_a, grads_a = _step_grads(ReconstructionStep(module, objective, opt), x)
    assert terms_c.keys() == terms_a.keys() == {"reconstruction", "sparsity", "loss"}
    for k in terms_a:
        assert terms_c[k] == pytest.approx(terms_a[k], rel=1e-12), k
    assert grads_a.keys() == grads_c.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_c[name], grads_a[name], rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("penalties", [[Contractive(0.3)], [Contractive(0.3, "closed"), KLSparsity(0.2, 0.7)]])
@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("loss,output", [("mse", "linear"), ("bce", "sigmoid")])
def test_contractive_closed_form_gradients_equal_autograd(penalties, tied, loss, output):
    """One sigmoid coding layer: the contractive term reads the coding layer's weight directly as well."""
    model = DenseAutoencoder(12, [5], coding_activation="sigmoid", tie_weights=tied, output_activation=output,
                             seed=1).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()), dtype=p.dtype))
    x = _data().double()
    objective = Objective(loss, penalties)
    opt = make_optimizer("adam", model.parameters(), [], 1e-3)
    fast = reconstruction_step(model, objective, opt)
    assert type(fast) is DenseChainStep
    terms_c, grads_c = _step_grads(fast, x)
    terms_a, grads_a = _step_grads(ReconstructionStep(model, objective, opt), x)
    assert terms_c.keys() == terms_a.keys()
    for k in terms_a:
        assert terms_c[k] == pytest.approx(terms_a[k], rel=1e-12), k
    assert grads_a.keys() == grads_c.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_c[name], grads_a[name], rtol=1e-10, atol=1e-12, msg=name)


def test_contractive_routing():
    """The closed form is hand-written where it applies (one sigmoid coding layer); the Jacobian-based methods,
    deeper encoders and other coding activations stay on autograd."""
    one = DenseAutoencoder(12, [5], coding_activation="sigmoid", seed=0)
    opt = make_optimizer("adam", one.parameters(), [], 1e-3)
    assert type(reconstruction_step(one, Objective("mse", [Contractive(1e-3)]), opt)) is DenseChainStep
    assert type(reconstruction_step(one, Objective("mse", [Contractive(1e-3, "closed")]), opt)) is DenseChainStep
    for method in ("exact", "hutchinson"):
        assert type(reconstruction_step(one, Objective("mse", [Contractive(1e-3, method)]), opt)) is ReconstructionStep
    for other in (DenseAutoencoder(12, [6, 3], coding_activation="sigmoid", seed=0), DenseAutoencoder(12, [5], seed=0)):
        opt = make_optimizer("adam", other.parameters(), [], 1e-3)
        assert type(reconstruction_step(other, Objective("mse", [Contractive(1e-3)]), opt)) is ReconstructionStep


@pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled")
def test_sparse_estimator_takes_the_fast_path_and_trains_like_autograd(digits):
    X = digits[0][:400]
    kw = dict(hidden_layers=(32, 16), coding_activation="sigmoid", sparsity="kl:0.1:0.5", epochs=3, batch_size=40,
              random_state=0)
    fast = aekit.Autoencoder(**kw).fit(X)
    assert type(fast._make_step(fast.model_)) is DenseChainStep
    with torch.autograd.detect_anomaly(check_nan=False):  # anomaly mode: the autograd step, same update
        slow = aekit.Autoencoder(**kw).fit(X)
        assert type(slow._make_step(slow.model_)) is ReconstructionStep
    assert fast.history_[-1]["sparsity"] == pytest.approx(slow.history_[-1]["sparsity"], rel=1e-4)
    assert fast.history_[-1]["loss"] == pytest.approx(slow.history_[-1]["loss"], rel=1e-4)
    np.testing.assert_allclose(fast.transform(X), slow.transform(X), rtol=1e-4, atol=1e-5)


def test_step_choice():
    model = DenseAutoencoder(12, [6, 3], seed=0)
    opt = make_optimizer("adam", model.parameters(), [], 1e-3)
    assert type(reconstruction_step(model, Objective("mse"), opt)) is DenseChainStep
    assert type(reconstruction_step(model, Objective("bce"), opt)) is DenseChainStep
    # penalties on the codings with a gradient of their own join the fast path; the contractive term does not
    assert type(reconstruction_step(model, Objective("mse", [KLSparsity(0.1, 1.0)]), opt)) is DenseChainStep
    assert type(reconstruction_step(model, Objective("mse", [L1Codings(1e-3)]), opt)) is DenseChainStep
    assert type(reconstruction_step(model, Objective("mse", [Contractive(1e-3)]), opt)) is ReconstructionStep
    assert type(reconstruction_step(model, Objective("mse", [KLSparsity(0.1, 1.0), Contractive(1e-3)]), opt)
                ) is ReconstructionStep
    assert type(reconstruction_step(model, Objective("gaussian"), opt)) is ReconstructionStep
    wta = DenseAutoencoder(12, [6, 3], wta=0.1, seed=0)
    assert type(reconstruction_step(wta, Objective("mse"), opt)) is ReconstructionStep
    hasher = HashingAutoencoder(12, [6], n_bits=3, seed=0)  # noisy codings in its own encode: not a plain chain
    # a subclass of the dense model: never on the executor's allow-list, whatever spec it inherits
    assert "not on its allow-list" in explain(hasher, Objective("mse"))["hand-written dense chain"]
    assert type(reconstruction_step(hasher, Objective("mse"), opt)) is ReconstructionStep


def test_training_matches_autograd_step():
    """A few epochs through the fast step and through autograd end at the same weights (float32 rounding)."""
    X = _data(200, 12, seed=4)
    results = []
    for step_class in (DenseChainStep, ReconstructionStep):
        model = DenseAutoencoder(12, [8, 4], tie_weights=True, seed=5)
        opt = make_optimizer("adam", model.parameters(), model.regularized_weights(), 1e-2, l2=1e-3)
        step = (DenseChainStep(model, model.dense_chain(), Objective("mse"), opt) if step_class is DenseChainStep
                else ReconstructionStep(model, Objective("mse"), opt))
        history = train(step, X, epochs=3, batch_size=20, generator=torch.Generator().manual_seed(0))
        results.append(([p.detach().clone() for p in model.parameters()], history[-1]["loss"]))
    (w_fast, loss_fast), (w_auto, loss_auto) = results
    assert loss_fast == pytest.approx(loss_auto, rel=1e-4)
    for a, b in zip(w_fast, w_auto):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_estimator_uses_fast_path_and_is_deterministic():
    X = np.random.default_rng(0).random((120, 10)).astype(np.float32)
    a = aekit.Autoencoder((6, 3), epochs=2, batch_size=30, random_state=0, noise="gaussian:0.1").fit(X)
    b = aekit.Autoencoder((6, 3), epochs=2, batch_size=30, random_state=0, noise="gaussian:0.1").fit(X)
    assert type(a._make_step(a.model_)) is DenseChainStep
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    assert a.history_[-1]["loss"] < a.history_[0]["loss"]


def _vae(activation="elu", beta=1.0, binarize=False, **kw):
    from aekit.models.variational import VariationalAutoencoderModule as VariationalAutoencoder

    model = VariationalAutoencoder(12, [9, 7], latent_dim=3, activation=activation, beta=beta,
                                   dynamic_binarization=binarize, seed=1, **kw).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()), dtype=p.dtype))
    return model


@pytest.mark.parametrize("activation", ["elu", "selu", "relu", "tanh"])
@pytest.mark.parametrize("loss,output", [("bce", "sigmoid"), ("mse", "sigmoid"), ("mse", "linear")])
@pytest.mark.parametrize("beta, binarize", [(1.0, False), (0.3, True)])
def test_vae_gradients_equal_autograd(activation, loss, output, beta, binarize):
    """The hand-written negative ELBO (reconstruction summed per image + beta * KL) and its gradients, with the
    same random draws (binary image, then the noise), against autograd in float64."""
    model = _vae(activation, beta, binarize, output_activation=output).train()
    objective = Objective(loss, reduction="sum")
    x = _data().double()
    torch.manual_seed(5)
    model.zero_grad(set_to_none=True)
    terms_a = objective(model(x), x, x, model)
    terms_a["loss"].backward()
    grads_a = {n: p.grad.clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = None
    step = reconstruction_step(model, objective, make_optimizer("adam", model.parameters(), [], 1e-3))
    assert type(step).__name__ == "VariationalChainStep"
    torch.manual_seed(5)
    terms_c, backward = step.loss_and_backward(x, x)
    backward()
    for key in ("reconstruction", "kl", "loss"):
        assert float(terms_c[key]) == pytest.approx(float(terms_a[key].detach()), rel=1e-12), key
    assert grads_a.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads_a[name], rtol=1e-10, atol=1e-12, msg=name)


def test_vae_step_choice():
    from aekit.models.variational import VariationalAutoencoderModule as VariationalAutoencoder

    opt = make_optimizer("adam", _vae().parameters(), [], 1e-3)
    assert type(reconstruction_step(_vae(), Objective("bce", reduction="sum"), opt)).__name__ == "VariationalChainStep"
    gaussian = VariationalAutoencoder(12, [9], latent_dim=3, gaussian_decoder=True, seed=0)
    assert gaussian.variational_chain() is None  # its learned scale is not in the hand-written loss
    conv = VariationalAutoencoder(64, [9], latent_dim=3, channels=[4], image_shape=(8, 8), seed=0)
    assert conv.variational_chain() is None
    assert type(reconstruction_step(_vae(), Objective("bce", reduction="sum", penalties=[KLSparsity(0.1, 1.0)]),
                                    opt)) is ReconstructionStep


def test_vae_training_matches_autograd_step():
    """Three epochs through the hand-written VAE step and through autograd, the same draws: the same weights to
    float32 rounding; and the estimator takes the fast path."""
    X = _data(200, 12, seed=4)
    results = []
    for fast in (True, False):
        model = _vae(binarize=True).float()
        objective = Objective("bce", reduction="sum")
        opt = make_optimizer("adam", model.parameters(), [], 1e-2)
        step = reconstruction_step(model, objective, opt) if fast else ReconstructionStep(model, objective, opt)
        assert (type(step).__name__ == "VariationalChainStep") == fast
        torch.manual_seed(7)
        history = train(step, X, epochs=3, batch_size=20, generator=torch.Generator().manual_seed(0))
        results.append(([p.detach().clone() for p in model.parameters()], history[-1]))
    (w_fast, h_fast), (w_auto, h_auto) = results
    for key in ("loss", "reconstruction", "kl"):
        assert h_fast[key] == pytest.approx(h_auto[key], rel=1e-4), key
    for a, b in zip(w_fast, w_auto):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    est = aekit.VariationalAutoencoder((9,), latent_dim=3, epochs=0, random_state=0).fit(X.numpy())
    assert type(est._make_step(est.model_)).__name__ == "VariationalChainStep"
