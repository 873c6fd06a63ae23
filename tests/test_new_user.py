"""What a new user hits: slow paths said out loud, held-out test numbers, sparse models that reconstruct through
their sparsity, and the command line able to do what the API does."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import aekit
from aekit.cli import main
from aekit.runs import load_split


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_data_file_runs_test_on_held_out_rows(tmp_path, capsys):
    X = np.random.default_rng(0).random((200, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--hidden", "3", "--epochs", "2", "--out", str(run),
                 "--quiet", "--json"]) == 0
    result = _last_json(capsys)
    spec = json.loads((run / "run.json").read_text())["data"]
    assert spec["test_fraction"] == 0.2 and spec["split_seed"] == 0  # recorded: every command reuses the split
    split = load_split(spec)
    assert len(split.X_test) == 40 and len(split.X_train) == 160
    train_rows = {r.tobytes() for r in split.X_train}
    assert not any(r.tobytes() in train_rows for r in split.X_test)  # never trained on
    est = aekit.load(run)
    assert result["test_mse"] == pytest.approx(-est.score(split.X_test), rel=1e-6)
    assert main(["evaluate", str(run), "--data", str(tmp_path / "x.npy"), "--json"]) == 0  # the run's own file
    assert _last_json(capsys)["test_mse"] == pytest.approx(result["test_mse"], rel=1e-6)
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--test-fraction", "0", "--hidden", "3", "--epochs",
                 "1", "--out", str(tmp_path / "all"), "--quiet"]) == 0
    assert "whole file" in load_split(json.loads((tmp_path / "all" / "run.json").read_text())["data"]).split


def test_classify_counts_only_labelled_rows_and_tests_on_held_out_ones(tmp_path, capsys):
    rng = np.random.default_rng(0)
    ds = aekit.load_dataset("digits")
    X, y = ds.X_train[:600], ds.y_train[:600].copy()
    y[rng.random(600) < 0.7] = -1  # 70% unlabelled, as semi-supervised CSVs mark them
    table = np.column_stack([X, y])
    np.savetxt(tmp_path / "d.csv", table, delimiter=",", fmt="%.6g")
    run = tmp_path / "ae"
    assert main(["train", "--data", str(tmp_path / "d.csv"), "--label-column", "64", "--hidden", "32",
                 "--epochs", "10", "--out", str(run), "--quiet"]) == 0
    assert main(["classify", "--encoder", str(run), "--steps", "400", "--quiet", "--json"]) == 0
    result = _last_json(capsys)
    split = load_split(json.loads((run / "run.json").read_text())["data"])
    assert result["n_labels"] == int((split.y_train != -1).sum())  # not the 480 training rows
    assert result["n_test"] == int((split.y_test != -1).sum()) < len(split.y_test)
    assert result["test_accuracy"] > 0.5  # measured on labelled held-out rows only (was 0.10 counting -1 as wrong)


def test_a_step_far_slower_than_plain_says_so_once(digits):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aekit.Autoencoder((32, 16), contractive="1e-3:exact", epochs=1, random_state=0).fit(digits[0][:300])
    notices = [w for w in caught if "takes" in str(w.message) and "plain model's step" in str(w.message)]
    assert len(notices) == 1 and "contractive (exact)" in str(notices[0].message)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aekit.Autoencoder((32, 16), epochs=1, random_state=0).fit(digits[0][:300])  # the plain step: no probe
    assert not [w for w in caught if "plain model's step" in str(w.message)]
    est = aekit.Autoencoder((32, 16), contractive=1e-3, epochs=1, random_state=0).fit(digits[0][:300])
    assert est._objective().penalties[0].resolved(est.model_) == "hutchinson"  # auto on a deep encoder


def test_the_probe_changes_no_result(digits):
    """Timing the step before training draws no random numbers and applies no update: runs with and without the
    notice's probe end at the same weights (denoising + sparsity: the probe runs)."""
    from aekit.estimators import base

    kw = dict(hidden_layers=(16, 8), noise="gaussian:0.2", sparsity="l1:1e-3", wta=0.2, epochs=2, random_state=0)
    probed = aekit.Autoencoder(**kw).fit(digits[0])
    original = base.TorchEstimator._notice_slow_step
    base.TorchEstimator._notice_slow_step = lambda self, *args: None
    try:
        plain = aekit.Autoencoder(**kw).fit(digits[0])
    finally:
        base.TorchEstimator._notice_slow_step = original
    for a, b in zip(probed.model_.state_dict().values(), plain.model_.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy())


def test_threads_are_chosen_for_the_work_and_restored(digits):
    import torch

    from aekit.training import threads

    before = torch.get_num_threads()
    small = aekit.Autoencoder((32, 16), epochs=1, random_state=0).fit(digits[0])
    assert small.n_threads_ == 1 and torch.get_num_threads() == before  # restored after fit
    assert threads.chosen(None, 2 * threads.SMALL_STEP) == before and threads.chosen(3, 1.0) == 3
    big = aekit.Autoencoder((32, 16), n_jobs=2, epochs=1, random_state=0).fit(digits[0])
    assert big.n_threads_ == 2
    again = aekit.Autoencoder((32, 16), epochs=1, random_state=0).fit(digits[0])  # the same choice, the same bits
    for a, b in zip(small.model_.parameters(), again.model_.parameters()):
        assert torch.equal(a, b)


def test_cli_rows_and_image_shape_for_conv_on_flat_rows(tmp_path, capsys):
    ds = aekit.load_dataset("digits")
    np.save(tmp_path / "flat.npy", ds.X_train[:300])  # flat rows: nothing says they are 8x8 images
    run = tmp_path / "conv"
    assert main(["train", "--data", str(tmp_path / "flat.npy"), "--arch", "conv", "--channels", "4", "--epochs",
                 "1", "--out", str(tmp_path / "refused"), "--quiet"]) == 2
    assert "--image-shape H,W" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "flat.npy"), "--arch", "conv", "--channels", "4",
                 "--image-shape", "8,8", "--rows", "100", "--epochs", "1", "--out", str(run), "--quiet",
                 "--json"]) == 0
    est = aekit.load(run)
    assert est.model_.config["image_shape"] == [1, 8, 8]
    notes = json.loads((run / "run.json").read_text())
    assert notes["data"]["rows"] == 100 and notes["image_shape"] == [8, 8]
    split = load_split(notes["data"])
    assert len(split.X_train) == 100 and len(split.X_test) == 60  # the subsample trains; the test rows stay whole


@pytest.mark.parametrize("kw", [dict(hidden_layers=(32, 16)), dict(hidden_layers=(32, 16), tie_weights=True, wta=0.1),
                                dict(arch="conv", channels=(4, 8), image_shape=(8, 8))],
                         ids=["dense", "tied-wta", "conv"])
def test_onnx_export_run_with_onnxruntime_matches_transform(kw, tmp_path, capsys):
    import onnxruntime
    import torch

    X = aekit.load_dataset("digits").X_train
    run = tmp_path / "run"
    est = aekit.Autoencoder(epochs=2, random_state=0, checkpoint_dir=str(run), **kw).fit(X)
    for part, expected, given in (("encoder", est.transform(X[:50]), X[:50]), ("model", est.predict(X[:50]), X[:50]),
                                  ("decoder", est.inverse_transform(est.transform(X[:9])), est.transform(X[:9]))):
        out = tmp_path / f"{part}.onnx"
        assert main(["export", str(run), "--format", "onnx", "--part", part, "--out", str(out)]) == 0
        session = onnxruntime.InferenceSession(str(out))
        np.testing.assert_allclose(session.run(None, {"x": given})[0], expected, rtol=0, atol=1e-5)
        script = tmp_path / f"{part}.pt"
        assert main(["export", str(run), "--format", "torchscript", "--part", part, "--out", str(script)]) == 0
        np.testing.assert_allclose(torch.jit.load(str(script))(torch.from_numpy(given)).detach().numpy(), expected,
                                   rtol=0, atol=1e-6)
    module = est.export_module("encoder")
    assert isinstance(module, torch.nn.Module)
    np.testing.assert_allclose(module(torch.from_numpy(X[:5])).detach().numpy(), est.transform(X[:5]), atol=1e-6)
    assert main(["export", str(run), "--out", str(run / "checkpoint.json")]) == 2  # never over the run's files
    if kw.get("arch") != "conv":
        assert "activation='elu'" in repr(est.model_)  # the printed module shows its activations


def test_every_option_has_help_with_its_default():
    import argparse

    from aekit.cli import build_parser

    missing = []

    def walk(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, subparser in action.choices.items():
                    walk(subparser, f"{name} {sub}")
            elif action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                switch = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
                if not action.help or not (switch or "default" in action.help or "required" in action.help
                                           or "give --radius or --k" in action.help):
                    missing.append(f"{name} {action.option_strings[0]}")

    walk(build_parser(None), "aekit")
    assert not missing


def test_a_table_gets_no_picture_of_its_rows(tmp_path):
    np.save(tmp_path / "t.npy", np.random.default_rng(0).random((60, 5)).astype(np.float32))
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "t.npy"), "--hidden", "3", "--epochs", "1", "--out", str(run),
                 "--quiet", "--report"]) == 0
    assert not (run / "reconstructions.png").exists()
    html = (run / "report.html").read_text()
    assert "Training curves" in html and "Reconstructions" not in html
