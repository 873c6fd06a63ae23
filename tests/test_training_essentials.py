"""What users of skorch, Keras and Lightning expect from training, on every estimator trained by the loop:
learning-rate schedules, gradient clipping, early stopping that restores the best weights, ``epochs="auto"``,
callbacks, and the run folder's metrics log; each resumable bit for bit."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import aekit
from aekit.callbacks import CSVLogger, JSONLLogger
from aekit.cli import main
from aekit.errors import ConfigError
from aekit.params import UNSET
from aekit.runs import read_metrics
from aekit.training.schedules import parse_schedule

from _resume import Interrupt, assert_same_run, interrupted_then_resumed  # noqa: F401  (tests/_resume.py)


# -- schedules -------------------------------------------------------------------------------------------------
def test_schedule_factors():
    f = lambda text, total=10, history=(): [parse_schedule(text).factor(e, total, list(history)) for e in range(total)]
    assert f("constant") == [1.0] * 10
    assert f("step:3:0.5")[:7] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    cos = f("cosine:2")
    assert cos[:2] == [1 / 3, 2 / 3] and cos[2] == 1.0 and cos[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    one = f("onecycle")
    assert one[0] == pytest.approx(1 / 25) and one[3] == 1.0 and one[-1] == pytest.approx(1 / 25e4)
    flat = [{"epoch": e + 1, "loss": 1.0} for e in range(10)]  # never improves after epoch 1
    plateau = f("plateau:2:0.5", history=flat)
    assert plateau[:4] == [1, 1, 1, 1] and plateau[4] == 0.5 and plateau[7] == 0.25
    for bad in ("cosine:x", "linear", "step:0:0.5", "plateau:1:2", "onecycle:1:1:1"):
        with pytest.raises(ConfigError):
            parse_schedule(bad)


def test_a_bad_schedule_is_refused_before_training(digits):
    X, _ = digits
    with pytest.raises(ConfigError, match="lr_schedule"):
        aekit.Autoencoder((16, 4), epochs=1, lr_schedule="warmup").fit(X)


@pytest.mark.parametrize("schedule", ["step:2:0.5", "cosine:1", "onecycle", "plateau:0:0.5"])
def test_schedules_resume_bit_for_bit(digits, tmp_path, schedule):
    X, _ = digits
    params = dict(hidden_layers=(16, 4), epochs=8, batch_size=64, random_state=0, lr_schedule=schedule,
                  learning_rate=0.2 if schedule.startswith("plateau") else 1e-3)  # 0.2: the loss stalls
    full = aekit.Autoencoder(**params).fit(X)
    lrs = [r["lr"] for r in full.history_]
    assert len(set(lrs)) > 1 and max(lrs) <= params["learning_rate"]  # the rate moved, never above the base
    assert_same_run(full, interrupted_then_resumed(aekit.Autoencoder, X, tmp_path, **params))


def test_schedule_applies_to_every_family(digits):
    X, _ = digits
    for est in (aekit.VariationalAutoencoder((16,), latent_dim=2, epochs=3, lr_schedule="step:1:0.5"),
                aekit.AdversarialAutoencoder((16,), latent_dim=2, epochs=3, lr_schedule="step:1:0.5"),
                aekit.Autoencoder(arch="conv", channels=(4,), image_shape=(8, 8), epochs=3,
                                  lr_schedule="step:1:0.5")):
        lrs = [r["lr"] for r in est.set_params(random_state=0).fit(X).history_]
        assert lrs == [est.learning_rate, est.learning_rate / 2, est.learning_rate / 4], type(est).__name__


# -- gradient clipping -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [{}, {"arch": "conv", "channels": (4,), "image_shape": (8, 8)}],
                         ids=["hand-written", "autograd"])
def test_clip_grad_norm_bounds_the_update(digits, config):
    """One full-batch SGD step (lr 1, no momentum history yet): the update is the gradient, so its norm is the
    clipped gradient's."""
    X, _ = digits
    params = dict(optimizer="sgd", learning_rate=1.0, epochs=1, batch_size=len(X), random_state=0, **config)
    if not config:
        params["hidden_layers"] = (16, 4)
    start = aekit.Autoencoder(**{**params, "epochs": 0}).fit(X)
    before = torch.cat([p.detach().flatten() for p in start.model_.parameters()])
    free = aekit.Autoencoder(**params).fit(X)
    clipped = aekit.Autoencoder(**params, clip_grad_norm=0.01).fit(X)
    step = lambda est: float((torch.cat([p.detach().flatten() for p in est.model_.parameters()]) - before).norm())
    assert step(free) > 0.02
    assert step(clipped) == pytest.approx(0.01, rel=1e-4)


# -- early stopping: best weights, resumable -------------------------------------------------------------------
def test_restore_best_weights(digits):
    X, X_test = digits
    params = dict(hidden_layers=(64, 32), epochs=40, early_stopping=True, patience=3, learning_rate=0.05,
                  random_state=0)
    best = aekit.Autoencoder(**params).fit(X)
    last = aekit.Autoencoder(**params, restore_best_weights=False).fit(X)
    val = [r["val_loss"] for r in best.history_]
    assert best.n_epochs_ == last.n_epochs_ and np.argmin(val) < len(val) - 1  # it stopped after a worse epoch
    assert "early stopping" in best.stopped_ and f"epoch {int(np.argmin(val)) + 1} restored" in best.stopped_
    assert "last weights kept" in last.stopped_
    assert not all(torch.equal(a, b) for a, b in zip(best.model_.parameters(), last.model_.parameters()))


def test_early_stopping_resumes_bit_for_bit(digits, tmp_path):
    X, _ = digits
    params = dict(hidden_layers=(64, 32), epochs=40, early_stopping=True, patience=3, learning_rate=0.05,
                  batch_size=64, random_state=0)
    full = aekit.Autoencoder(**params).fit(X)
    resumed = interrupted_then_resumed(aekit.Autoencoder, X, tmp_path, at=2, **params)
    assert_same_run(full, resumed)  # the best weights came back from the checkpoint
    assert resumed.stopped_ == full.stopped_


# -- epochs="auto" ---------------------------------------------------------------------------------------------
def test_epochs_auto_stops_when_the_loss_stops_improving(digits):
    X, _ = digits
    est = aekit.Autoencoder((16, 4), epochs="auto", tol=0.05, n_iter_no_change=2, random_state=0).fit(X)
    assert 2 < est.n_epochs_ < est._auto_epochs() and est.stopped_.startswith("converged")
    capped = aekit.Autoencoder((16, 4), epochs="auto", max_epochs=3, random_state=0).fit(X)
    assert capped.n_epochs_ == 3 and capped.stopped_.startswith("not converged")
    assert aekit.Autoencoder((16, 4), epochs=2, random_state=0).fit(X).stopped_ == "all 2 epochs ran"
    with pytest.raises(ValueError):
        aekit.Autoencoder(epochs="forever").fit(X)


def test_epochs_auto_on_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--hidden", "16,4", "--epochs", "auto", "--max-epochs", "4", "--out", str(run),
                 "--quiet", "--json"]) == 0
    assert aekit.load(run).n_epochs_ == 4
    out = capsys.readouterr().out.strip().splitlines()
    assert "not converged: the cap of 4 epochs" in out[-2] and json.loads(out[-1])["stopped"].startswith("not")
    with pytest.raises(SystemExit) as info:  # argparse's usage error
        main(["train", "--epochs", "some", "--out", str(tmp_path / "x")])
    assert info.value.code == 2 and not (tmp_path / "x").exists()


# -- callbacks and the metrics log -----------------------------------------------------------------------------
class Recorder:
    def __init__(self, stop_at=None):
        self.calls, self.stop_at = [], stop_at

    def on_train_begin(self, est):
        self.calls.append(("begin", type(est).__name__))

    def on_epoch_begin(self, est, epoch):
        self.calls.append(("epoch_begin", epoch))

    def on_epoch_end(self, est, logs):
        self.calls.append(("epoch_end", logs["epoch"], sorted(logs)))
        return self.stop_at is not None and logs["epoch"] >= self.stop_at

    def on_train_end(self, est):
        self.calls.append(("end", est.n_epochs_))


def test_user_callbacks_are_called_in_order_and_can_stop(digits):
    X, _ = digits
    rec = Recorder()
    aekit.Autoencoder((16, 4), epochs=2, lr_schedule="step:1:0.5", callbacks=[rec], random_state=0).fit(X)
    assert [c[0] for c in rec.calls] == ["begin", "epoch_begin", "epoch_end", "epoch_begin", "epoch_end", "end"]
    assert rec.calls[1] == ("epoch_begin", 1) and "lr" in rec.calls[2][2] and "loss" in rec.calls[2][2]
    stopper = Recorder(stop_at=2)
    est = aekit.Autoencoder((16, 4), epochs=10, callbacks=[stopper], random_state=0).fit(X)
    assert est.n_epochs_ == 2 and stopper.calls[-1] == ("end", 2)
    with pytest.raises(ConfigError, match="is a class"):
        aekit.Autoencoder(epochs=1, callbacks=[Recorder]).fit(X)  # the class, not an instance


def test_built_in_loggers(digits, tmp_path):
    X, _ = digits
    csv, jsonl = tmp_path / "m.csv", tmp_path / "m.jsonl"
    est = aekit.Autoencoder((16, 4), epochs=3, callbacks=[CSVLogger(csv), JSONLLogger(jsonl)],
                            random_state=0).fit(X)
    rows = csv.read_text().splitlines()
    assert rows[0].split(",")[:2] == ["epoch", "loss"] and len(rows) == 4
    assert float(rows[3].split(",")[1]) == pytest.approx(est.history_[-1]["loss"])
    assert len(jsonl.read_text().splitlines()) == 3


def test_every_run_folder_has_its_metrics_log(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--hidden", "16,4", "--epochs", "3", "--out", str(run), "--quiet"]) == 0
    records = read_metrics(run)
    est = aekit.load(run)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["loss"] for r in records] == [r["loss"] for r in est.history_]
    assert main(["train", "--resume", str(run), "--epochs", "5", "--quiet"]) == 0  # resumed: the log goes on
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2, 3, 4, 5]


def test_tensorboard_logger_writes_what_tensorboard_reads(digits, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from aekit.callbacks import TensorBoardLogger

    X, _ = digits
    aekit.Autoencoder((16, 4), epochs=3, early_stopping=True, callbacks=[TensorBoardLogger(tmp_path / "tb")],
                      random_state=0).fit(X)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "val/loss"} <= set(tags)
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3]


# -- the variational families: KL warm-up, free bits -------------------------------------------------------------
def test_kl_warmup_weights_the_kl_term_on_both_paths(digits, monkeypatch):
    from aekit.training import executors

    X, _ = digits
    params = dict(hidden_layers=(32,), latent_dim=4, epochs=5, kl_warmup=3, random_state=0)
    fast = aekit.VariationalAutoencoder(**params).fit(X)
    monkeypatch.setattr(executors, "EXECUTORS", [])  # no fast path: autograd, the reference
    slow = aekit.VariationalAutoencoder(**params).fit(X)
    monkeypatch.undo()
    assert fast.executor_ == "hand-written variational chain" and slow.executor_ == "autograd"
    assert [r["kl_weight"] for r in fast.history_] == [0.25, 0.5, 0.75, 1.0, 1.0]
    np.testing.assert_allclose([r["loss"] for r in fast.history_], [r["loss"] for r in slow.history_], rtol=2e-4)
    assert fast.model_.kl_weight == 1.0  # back to the ELBO after training
    plain = aekit.VariationalAutoencoder(**{**params, "kl_warmup": 0}).fit(X)
    assert fast.history_[0]["kl"] < plain.history_[0]["kl"]  # a quarter of the weight in the first epoch


def test_kl_warmup_resumes_bit_for_bit(digits, tmp_path):
    X, _ = digits
    params = dict(hidden_layers=(32,), latent_dim=4, epochs=5, kl_warmup=3, batch_size=64, random_state=0)
    full = aekit.VariationalAutoencoder(**params).fit(X)
    assert_same_run(full, interrupted_then_resumed(aekit.VariationalAutoencoder, X, tmp_path, at=2, **params))


def test_free_bits_keep_every_unit_above_the_floor(digits):
    X, _ = digits
    est = aekit.VariationalAutoencoder((32,), latent_dim=4, epochs=3, free_bits=0.5, random_state=0).fit(X)
    assert est.executor_ == "autograd"  # the hand-written chain does not take free bits: it fails closed
    assert all(r["kl"] >= 4 * 0.5 - 1e-9 for r in est.history_)  # each unit counts at least 0.5 nats
    elbo = est.elbo(X[:50], random_state=0)
    assert np.isfinite(elbo).all()
    with pytest.raises(ValueError):
        aekit.VariationalAutoencoder(free_bits=-1).fit(X)


def test_mlflow_logger_records_each_epoch(digits, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from aekit.callbacks import MLflowLogger

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a local folder as the tracking store
    X, _ = digits
    uri = (tmp_path / "mlruns").as_uri()
    aekit.Autoencoder((16, 4), epochs=3, callbacks=[MLflowLogger(run_name="t", tracking_uri=uri)],
                      random_state=0).fit(X)
    client = mlflow.tracking.MlflowClient(uri)
    run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
    assert run.info.run_name == "t" and run.data.params["hidden_layers"] == "(16, 4)"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3]


def _variational_families():
    from aekit.registry import FAMILIES

    return sorted(name for name, cls in FAMILIES.items() if "kl_warmup" in cls._get_param_names())


def test_every_variational_family_is_listed():
    assert {"vae", "beta-vae", "beta-tcvae", "iwae", "vamp", "cvae"} <= set(_variational_families())


@pytest.mark.parametrize("name", _variational_families())
def test_kl_warmup_and_free_bits_reach_every_variational_family(name, digits):
    from aekit.registry import FAMILIES

    X, _ = digits
    y = aekit.load_dataset("digits").y_train
    cls = FAMILIES.get(name)
    small = {p.name: p.small for p in cls.declared_params() if p.small is not UNSET}
    base = dict(small, hidden_layers=(16,), latent_dim=3, epochs=3, batch_size=64, random_state=0)
    args = (X, y) if getattr(cls, "conditional", False) else (X,)
    warm = cls(**base, kl_warmup=2).fit(*args)
    assert [r["kl_weight"] for r in warm.history_] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert warm.model_.kl_weight == 1.0  # restored after training
    plain = cls(**base).fit(*args)
    assert warm.history_[0]["loss"] != plain.history_[0]["loss"]  # the weight reached the loss
    if "free_bits" in cls._get_param_names():
        floor = cls(**base, free_bits=3.0).fit(*args)
        assert floor.history_[0]["loss"] > plain.history_[0]["loss"]  # the floor adds nats the KL lacked
