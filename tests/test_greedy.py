import os
import shutil
import signal

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main
from aekit.models import DenseAutoencoder
from aekit.training.greedy import LayerPair, Phase, greedy_pretrain
from aekit.training.loop import TrainingInterrupted


def make_step_factory(record):
    est = aekit.Autoencoder(learning_rate=1e-2)

    def make_step(module, params, regularized, lr, loss, coding_layer):
        params = list(params)
        record.append((module, [id(p) for p in params], [id(p) for p in regularized], loss))
        return est._reconstruction_step(module, params, regularized, lr, loss, coding_layer)

    return make_step


@pytest.mark.parametrize("strategy", ["phases", "separate"])
def test_lower_layers_stay_frozen(digits, strategy):
    X = torch.from_numpy(digits[0])
    model = DenseAutoencoder(64, [32, 16, 8], seed=0)
    snapshots = {}

    def on_checkpoint(step, position):  # at each epoch's end: the last of phase 1, the first of phases 2 and 3
        if position.phase == 1 or position.phase not in snapshots:
            snapshots[position.phase] = {n: p.detach().clone() for n, p in model.named_parameters()}

    calls = []
    greedy_pretrain(model, X, strategy=strategy, phases=[Phase(2, 64, 1e-2)] * 3, make_step=make_step_factory(calls),
                    loss="mse", generator=torch.Generator().manual_seed(0), on_checkpoint=on_checkpoint)
    # "separate" copies the shallow autoencoder into the model's pair before each checkpoint
    after_phase1, final = snapshots[1], dict(model.named_parameters())
    for name in ("encoder.0.weight", "encoder.0.bias", "decoder.2.weight", "decoder.2.bias"):
        assert torch.equal(after_phase1[name], final[name]), name  # pair 0 untouched by phases 2 and 3
    assert not torch.equal(after_phase1["encoder.1.weight"], final["encoder.1.weight"])
    assert [loss for *_, loss in calls] == ["mse", "mse", "mse"]
    if strategy == "phases":  # the optimizer of phase k holds pair k only; only its weights are regularized
        for k, (_, params, regularized, _) in enumerate(calls):
            assert params == [id(p) for p in model.pair_parameters(k)]
            assert regularized == [id(model.encoder[k].weight), id(model.decoder[2 - k].weight)]


def test_stacked_model_equals_composition_of_shallow_autoencoders(digits):
    X = digits[0]
    est = aekit.Autoencoder((32, 16, 8), pretrain="greedy", greedy_strategy="separate", phase_epochs=2,
                            random_state=0).fit(X)
    ae1, ae2, ae3 = est.shallow_autoencoders_
    x = torch.from_numpy(X[:50]).to(est.device_)
    with torch.no_grad():
        h1 = ae1.encode(x)
        h2 = ae2.encode(h1)
        inner = ae2.output(ae2.decode(ae3.reconstruct(h2)))
        composed = ae1.output(ae1.decode(inner))
    assert np.allclose(est.predict(X[:50]), composed.cpu().numpy(), atol=1e-6)
    assert np.allclose(est.transform(X[:50]), ae3.encode(h2).detach().cpu().numpy(), atol=1e-6)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("strategy", ["phases", "separate"])
def test_any_depth(digits, depth, strategy):
    X = digits[0]
    layers = (48, 32, 24, 16)[:depth]
    est = aekit.Autoencoder(layers, pretrain="greedy", greedy_strategy=strategy, phase_epochs=1,
                            fine_tune_epochs=1, tie_weights=depth == 2, random_state=0).fit(X)
    phases = [r["phase"] for r in est.history_]
    assert phases == [*range(1, depth + 1), "fine-tune"]
    assert est.transform(X[:3]).shape == (3, layers[-1])


def test_cache_gives_the_same_training_as_recomputing(digits):
    X = digits[0]
    kw = dict(hidden_layers=(32, 16), pretrain="greedy", phase_epochs=(2, 2), random_state=0)
    cached = aekit.Autoencoder(**kw).fit(X)
    recomputed = aekit.Autoencoder(**kw, cache_codings=False).fit(X)
    for (name, a), b in zip(cached.model_.state_dict().items(), recomputed.model_.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name


def test_greedy_reconstructs_better_than_its_start(digits):
    X, X_test = digits
    untrained = aekit.Autoencoder((32, 16), epochs=0, random_state=0).fit(X)
    est = aekit.Autoencoder((32, 16), pretrain="greedy", phase_epochs=(30, 30), random_state=0).fit(X)
    assert -est.score(X_test) < 0.2 * -untrained.score(X_test)


def test_phase_pair_reads_hidden_activations():
    model = DenseAutoencoder(6, [4, 2], seed=0)
    x = torch.rand(3, 6)
    out = LayerPair(model, 1, through_prefix=True)(x)
    assert torch.equal(out.target, model.encode_prefix(x, 1))
    assert out.reconstruction.shape == (3, 4)


def test_mismatched_phase_settings_are_refused(digits):
    with pytest.raises(aekit.DataError, match="phase_epochs has 3 values, but the model has 2 layer pairs"):
        aekit.Autoencoder((8, 4), pretrain="greedy", phase_epochs=(1, 1, 1)).fit(digits[0])


def test_cli_greedy(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--hidden", "32,16", "--greedy", "phases", "--phase-epochs", "2,1", "--phase-lrs", "0.01",
                 "--no-cache", "--fine-tune-epochs", "1", "--out", str(run), "--quiet"]) == 0
    est = aekit.load(run)
    assert est.get_params()["phase_epochs"] == (2, 1) and est.cache_codings is False
    assert [r["phase"] for r in est.history_] == [1, 1, 2, "fine-tune"]


GREEDY = dict(hidden_layers=(32, 16), pretrain="greedy", phase_epochs=(3, 3), fine_tune_epochs=2, batch_size=64,
              noise="gaussian:0.1", checkpoint_every=5, random_state=0)


def _stop_at(monkeypatch, batch, sig=signal.SIGTERM):
    """Send ``sig`` to this process inside training batch number ``batch`` (counted over all phases)."""
    from aekit.training import steps

    count, original = [0], steps.ReconstructionStep.train_batch

    def train_batch(self, x, y):
        count[0] += 1
        if count[0] == batch:
            os.kill(os.getpid(), sig)
        return original(self, x, y)

    monkeypatch.setattr(steps.ReconstructionStep, "train_batch", train_batch)


@pytest.mark.parametrize("strategy,cache", [("phases", True), ("phases", False), ("separate", True)])
def test_stopped_inside_a_greedy_phase_resumes_bit_for_bit(digits, tmp_path, monkeypatch, strategy, cache):
    X = digits[0]  # 1,437 rows: 23 batches of 64 per epoch
    kw = dict(GREEDY, greedy_strategy=strategy, cache_codings=cache)
    full = aekit.Autoencoder(**kw, checkpoint_dir=str(tmp_path / "full")).fit(X)
    with monkeypatch.context() as m:
        _stop_at(m, 3 * 23 + 12)  # phase 2, epoch 1, batch 12: the signal stops training after that batch
        with pytest.raises(TrainingInterrupted, match="greedy phase 2, epoch 1, batch 12") as stopped:
            aekit.Autoencoder(**kw, checkpoint_dir=str(tmp_path / "run")).fit(X)
    assert stopped.value.position.phase == 2
    saved = aekit.load(tmp_path / "run")
    assert int(saved._train_state["position.phase"]) == 2 and int(saved._train_state["position.step"]) == 12
    assert [r["phase"] for r in saved.history_] == [1, 1, 1]
    resumed = saved.set_params(warm_start=True).fit(X)
    assert _without_time(resumed.history_) == _without_time(full.history_)
    for (name, a), b in zip(full.model_.state_dict().items(), resumed.model_.state_dict().values()):
        assert torch.equal(a, b), name
    if strategy == "separate":
        for a, b in zip(full.shallow_autoencoders_, resumed.shallow_autoencoders_):
            assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_crash_after_a_greedy_phase_resumes_with_the_next(digits, tmp_path, monkeypatch):
    """A crash right after phase 1's last checkpoint (its final epoch's end): the resumed run trains phase 2
    from its start and ends where an uninterrupted run does."""
    X = digits[0]
    save = aekit.Autoencoder.save

    def save_and_copy(self, path):  # keep the folder as it stood after that checkpoint: what a crash leaves
        out = save(self, path)
        state = self._train_state
        if int(state["position.phase"]) == 1 and int(state["position.epoch"]) == 3 and not (tmp_path / "crash").exists():
            shutil.copytree(path, tmp_path / "crash")
        return out

    monkeypatch.setattr(aekit.Autoencoder, "save", save_and_copy)
    full = aekit.Autoencoder(**GREEDY, checkpoint_dir=str(tmp_path / "full")).fit(X)
    est = aekit.load(tmp_path / "crash")
    assert [r["phase"] for r in est.history_] == [1, 1, 1] and int(est._train_state["position.step"]) == 0
    resumed = est.set_params(warm_start=True).fit(X)
    assert _without_time(resumed.history_) == _without_time(full.history_)
    for (name, a), b in zip(full.model_.state_dict().items(), resumed.model_.state_dict().values()):
        assert torch.equal(a, b), name


def _without_time(history):
    return [{k: v for k, v in record.items() if k != "time"} for record in history]
