"""The common test, driven by the registries: whatever registers itself (an estimator, a model, an executor's
allow-list entry) is checked here without being named, so a new one cannot ship unchecked.

- every registered estimator through scikit-learn's ``parametrize_with_checks`` at its default parameters, only
  epochs and sizes shrunk (each parameter's declared ``small`` value);
- every registered model, built by some estimator configuration (defaults, and each part's variants), through a
  config round trip, save/load and output shapes;
- every configuration a fast executor accepts, equal to autograd in float64 (1e-10);
- the two contributor scenarios: a subclass that overrides an encoder method and an activation added without a
  hand-written form both train through autograd, with autograd's results;
- a toy family defined in this file alone trains, saves, loads, and trains from the CLI by its registered name.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

import aekit
from aekit.cli import main
from aekit.estimators.base import AutoencoderEstimator
from aekit.estimators.parts import ImageShape, Reconstruction, Training
from aekit.losses.objective import Objective
from aekit.models.base import AEOutput, AutoencoderModule, build_model
from aekit.models.dense import DenseAutoencoder
from aekit.nn.layers import ACTIVATIONS, register_activation
from aekit.params import UNSET, Flag, Param, positive_int
from aekit.registry import ESTIMATORS, FAMILIES, MODELS, register_estimator, register_model
from aekit.training import ReconstructionStep, make_optimizer, reconstruction_step, train
from aekit.training.executors import EXECUTORS


# -- a toy family, defined here alone: its model file would hold exactly this ---------------------------------------
@register_model("toy-linear")
class ToyLinear(AutoencoderModule):
    """A linear autoencoder with a tanh bottleneck: the smallest family there is."""

    def __init__(self, n_features: int, width: int = 3, seed: int | None = None) -> None:
        super().__init__()
        self.config = {"n_features": int(n_features), "width": int(width)}
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.enc = torch.nn.Linear(n_features, width)
        self.dec = torch.nn.Linear(width, n_features)
        with torch.no_grad():
            for layer in (self.enc, self.dec):
                layer.weight.normal_(0, 0.3, generator=generator)
                layer.bias.zero_()

    @property
    def n_codings(self) -> int:
        return self.config["width"]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.enc(x))

    def decode(self, codings: torch.Tensor) -> torch.Tensor:
        return self.dec(codings)


@register_estimator("ToyAutoencoder", cli="toy")
class ToyAutoencoder(AutoencoderEstimator):
    """A toy family: one parameter of its own, the reconstruction loss, training."""

    model_name = "toy-linear"
    own_params = (Param("width", 3, positive_int(), "Size of the codings.", type="int", flag=Flag()),)
    parts = (Reconstruction("mse", ("mse", "bce")), ImageShape(), Training(epochs=3, batch_size=32))

    def _model_config(self, n_features: int) -> dict:
        return {"n_features": n_features, "width": self.width}


# -- scikit-learn's checks, every registered estimator at its defaults ---------------------------------------------
def shrunk(cls: type, **more):
    """``cls`` at its default parameters, only epochs and declared sizes shrunk."""
    params = {p.name: p.small for p in cls.declared_params() if p.small is not UNSET}
    return cls(**params, epochs=2, **more)


# Measured on this machine's CPU (AMD EPYC, torch 2.13 with MKL): float32 GEMMs of narrow layers (<= 8 outputs
# from ~4-50 inputs) give a row 1-ulp different results depending on its position in the batch, so predictions of
# the shrunk models are not bit-invariant under reordering (rtol 1e-7); for every layer shape from 3 to 784 units
# with >= 16 outputs the bits are the same (see TorchEstimator._map, which also pads small chunks to 8 rows so that
# a row never depends on how many rows came with it). Not strict: which shapes take that kernel is MKL's choice.
FLOAT32_POSITION = {
    "check_methods_sample_order_invariance": "float32 GEMMs of narrow layers may differ by 1 ulp with a row's "
                                             "position in the batch (MKL)",
}
EXPECTED = {
    # the hybrid score divides by the training rows' spread (tiny for the check's 20 rows), which turns the 1-ulp
    # float32 differences of FLOAT32_POSITION into relative differences of ~1e-6, above the check's rtol of 1e-7
    "AnomalyDetector": {"check_methods_subset_invariance": "the hybrid score scales 1-ulp float32 differences of a "
                                                           "row's position in the batch (FLOAT32_POSITION) by "
                                                           "1/spread"},
    # labels -1 mark unlabelled rows (scikit-learn's semi-supervised convention); the check trains on labels {-1, 1},
    # which leaves one class. scikit-learn exempts its own semi-supervised classifiers from it by name.
    "PretrainedClassifier": {"check_classifiers_classes": "-1 marks unlabelled rows (unlabelled=-1): the check's "
                                                          "labels {-1, 1} leave one class"},
}


def _expected(est) -> dict[str, str]:
    return {**FLOAT32_POSITION, **EXPECTED.get(type(est).__name__, {})}


@parametrize_with_checks([shrunk(cls) for _, cls in ESTIMATORS.items()], expected_failed_checks=_expected)
def test_sklearn_checks(estimator, check):
    check(estimator)


def test_the_checks_cover_every_registered_estimator():
    checked = {type(est).__name__ for est, _ in _checked()}
    assert checked == set(ESTIMATORS.available())


def _checked():
    return [(shrunk(cls), name) for name, cls in ESTIMATORS.items()]


def test_every_parameter_is_declared_once_with_a_doc_and_default_that_validates():
    for name, cls in ESTIMATORS.items():
        params = cls.declared_params()
        assert len({p.name for p in params}) == len(params), name
        assert set(cls._get_param_names()) == {p.name for p in params}, name
        for p in params:
            assert p.doc.strip() and p.name in cls.__doc__, (name, p.name)
        cls()._validate_params()  # every default satisfies its own constraint


def test_invalid_parameters_are_value_errors():
    for name, cls in ESTIMATORS.items():
        with pytest.raises(ValueError):
            cls(batch_size=0).fit(np.random.default_rng(0).random((20, 4)), np.arange(20) % 2)
    with pytest.raises(ValueError, match="hidden_layers"):
        aekit.Autoencoder(hidden_layers=(0,), epochs=1).fit(np.random.default_rng(0).random((20, 4)))


# -- every registered model: built by an estimator configuration, round trip, save/load, shapes ----------------------
def _configurations():
    """Every estimator at its shrunk defaults and with each of its parts' variants (e.g. ``arch="conv"``)."""
    for name, cls in ESTIMATORS.items():
        yield name, {}
        for part in cls.parts:
            for variant in part.variants:
                yield name, variant


CONFIGURATIONS = list(_configurations())


@pytest.fixture(scope="module")
def data16():
    rng = np.random.default_rng(0)
    X = rng.random((48, 16), dtype=np.float32)
    return X, (X[:, 0] > 0.5).astype(int)


@pytest.fixture(scope="module")
def fitted(data16):
    X, y = data16
    out = {}
    for name, variant in CONFIGURATIONS:
        est = shrunk(ESTIMATORS.get(name), random_state=0, **variant)
        out[(name, json.dumps(variant, sort_keys=True))] = est.fit(X, y)
    return out


def test_every_registered_model_is_built_by_some_estimator(fitted):
    built = {est.model_.registry_name for est in fitted.values()}
    assert built == set(MODELS.available())


@pytest.mark.parametrize("name,variant", CONFIGURATIONS, ids=[f"{n}{v or ''}" for n, v in CONFIGURATIONS])
def test_model_round_trip_save_load_and_shapes(name, variant, fitted, data16, tmp_path):
    X, _ = data16
    est = fitted[(name, json.dumps(variant, sort_keys=True))]
    model = est.model_.eval()
    # config round trip: the saved config rebuilds the same model
    config = json.loads(json.dumps(model.config))
    rebuilt = build_model(model.registry_name, config)
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    x = torch.from_numpy(X[:5])
    extra = getattr(model, "n_inputs", X.shape[1]) - X.shape[1]  # columns a model reads beside the features
    x = torch.cat([x, x.new_zeros(len(x), extra)], 1)  # (a conditional family's label: none)
    with torch.no_grad():  # the deterministic outputs (a VAE's forward samples its codings)
        first, second = (m.reconstruct(x) if isinstance(m, AutoencoderModule) else m(x) for m in (model, rebuilt))
    torch.testing.assert_close(second, first, rtol=0, atol=0)
    # output shapes
    if isinstance(model, AutoencoderModule):
        with torch.no_grad():
            codings = model.encode(x)
            logits = model.decode(codings)
            output = model.train()(x)
        model.eval()
        assert codings.shape == (5, model.n_codings) and logits.shape == (5, X.shape[1])
        assert isinstance(output, AEOutput) and output.logits.shape == (5, X.shape[1])
        assert output.codings.shape == (5, model.n_codings)
    # save / load: the same estimator, the same outputs
    est.save(tmp_path / "ckpt")
    loaded = aekit.load(tmp_path / "ckpt")
    assert type(loaded) is type(est) and loaded.get_params() == est.get_params()
    method = "transform" if hasattr(est, "transform") else "predict_proba"
    np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(est, method)(X))


# -- fast executors: every configuration they accept equals autograd -------------------------------------------------
EXAMPLES = [example for executor in EXECUTORS for example in executor.examples()]


def _grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_fast_executor_equals_autograd(example):
    module, objective, x = example.module, example.objective, example.x
    opt = make_optimizer("adam", module.parameters(), [], 1e-3)
    fast = reconstruction_step(module, objective, opt)
    assert type(fast) is not ReconstructionStep, f"{example.name}: no executor accepted its own example"
    results = []
    for step in (fast, ReconstructionStep(module, objective, opt)):
        for p in module.parameters():
            p.grad = None
        torch.manual_seed(3)  # the same random draws (VAE sampling, binarization) for both
        terms = {k: float(v) for k, v in step.forward_backward(x, x).items()}
        results.append((terms, _grads(module)))
    (terms_fast, grads_fast), (terms_auto, grads_auto) = results
    assert terms_fast.keys() == terms_auto.keys()
    for key in terms_auto:
        assert terms_fast[key] == pytest.approx(terms_auto[key], rel=1e-10, abs=1e-12), key
    assert grads_fast.keys() == grads_auto.keys()
    for key in grads_auto:
        torch.testing.assert_close(grads_fast[key], grads_auto[key], rtol=1e-10, atol=1e-12, msg=key)


def test_the_examples_cover_every_allow_list_entry():
    for executor in EXECUTORS:
        covered = [e.covers for e in executor.examples()]
        assert {c["model"] for c in covered} == set(executor.allowed), executor.name
        assert {c["loss"] for c in covered} == set(executor.losses), executor.name
        assert {t for c in covered for t in c["penalties"]} == set(executor.penalties), executor.name
        activations = {a for c in covered for a in c["activations"]}
        assert set(executor.hand_written_activations()) <= activations, executor.name


# -- the contributor scenarios -------------------------------------------------------------------------------------
class DoubledCodings(DenseAutoencoder):
    """A contributor's subclass: the same layers, but encode computes something else."""

    def pair_encode(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return 2.0 * super().pair_encode(x, k)


def _train(model, step_of, X):
    opt = make_optimizer("adam", model.parameters(), model.regularized_weights(), 1e-2)
    step = step_of(model, opt)
    train(step, X, epochs=2, batch_size=16, generator=torch.Generator().manual_seed(0))
    return step, [p.detach().clone() for p in model.parameters()]


def test_a_subclass_overriding_an_encoder_method_trains_through_autograd(data16):
    X = torch.from_numpy(data16[0])
    objective = Objective("mse")
    chosen, w_chosen = _train(DoubledCodings(16, [8, 4], seed=0), lambda m, o: reconstruction_step(m, objective, o), X)
    assert chosen.executor == "autograd"
    _, w_autograd = _train(DoubledCodings(16, [8, 4], seed=0), lambda m, o: ReconstructionStep(m, objective, o), X)
    for a, b in zip(w_chosen, w_autograd):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # what the old dispatch by exclusion did: the spec's hand-written step trains the parent's model instead
    fast = EXECUTORS[0].step_class
    _, w_wrong = _train(DoubledCodings(16, [8, 4], seed=0),
                        lambda m, o: fast(m, m.dense_chain(), objective, o), X)
    assert any(not torch.allclose(a, b) for a, b in zip(w_wrong, w_autograd))


@pytest.fixture
def softsign():
    register_activation("softsign", torch.nn.functional.softsign)  # no hand-written form
    yield "softsign"
    del ACTIVATIONS["softsign"]


def test_an_added_activation_is_accepted_and_trains_through_autograd(softsign, data16):
    X = data16[0]
    est = aekit.Autoencoder((8, 4), activation=softsign, epochs=2, random_state=0).fit(X)
    assert est.executor_ == "autograd"
    model = DenseAutoencoder(16, [8, 4], activation=softsign, seed=est.seed_)
    opt = make_optimizer("adam", model.parameters(), [], 1e-3)
    with torch.random.fork_rng():
        torch.manual_seed(est.seed_)
        train(ReconstructionStep(model, Objective("mse"), opt), torch.from_numpy(X), epochs=2, batch_size=150,
              generator=torch.Generator().manual_seed(est.seed_))
    for a, b in zip(est.model_.parameters(), model.parameters()):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)


# -- the toy family: the API, checkpoints and the CLI, from its registration alone -----------------------------------
def test_toy_family_trains_saves_loads(data16, tmp_path):
    X = data16[0]
    est = ToyAutoencoder(width=4, random_state=0).fit(X)
    assert est.transform(X).shape == (48, 4) and len(est.history_) == 3
    est.save(tmp_path / "toy")
    loaded = aekit.load(tmp_path / "toy")
    assert type(loaded) is ToyAutoencoder and loaded.width == 4
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    loaded.set_params(epochs=5, warm_start=True).fit(X)  # resumes like any family
    assert loaded.n_epochs_ == 5


def test_toy_family_trains_from_the_cli(tmp_path, capsys):
    assert FAMILIES.get("toy") is ToyAutoencoder
    run = tmp_path / "run"
    assert main(["train", "--model", "toy", "--width", "5", "--epochs", "2", "--out", str(run), "--quiet",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["epochs"] == 2 and np.isfinite(result["test_mse"])
    est = aekit.load(run)
    assert type(est) is ToyAutoencoder and est.width == 5 and est.batch_size == 32  # its own defaults
    assert main(["train", "--model", "ae", "--width", "5", "--out", str(tmp_path / "x")]) == 2
    assert "--width does not apply to --model ae; add --model toy" in capsys.readouterr().err
