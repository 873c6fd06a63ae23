"""aekit.AnomalyDetector and ``aekit detect``: scikit-learn's outlier conventions, PyOD's extras, tables as users
have them (scales, NaN, contaminated training rows), explanations, figures, save/load, the command line.
(scikit-learn's own checks run in tests/test_common.py, with every registered estimator.)"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from scipy.stats import binom
from sklearn.metrics import roc_auc_score

import aekit
from aekit.cli import main
from aekit.errors import ConfigError, DataError


def blobs(n=400, d=6, n_out=40, seed=0, scales=None):
    """Normal rows on a 2-D plane in d columns (scaled per column), then ``n_out`` off-plane outliers; ``seed``
    draws the rows, the plane is always the same."""
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, 2))
    mix = np.random.default_rng(1234).normal(size=(2, d))
    X = t @ mix + 0.05 * rng.normal(size=(n, d))
    out = rng.normal(size=(n_out, d)) * 2.0
    rows = np.concatenate([X, out])
    if scales is not None:
        rows = rows * np.asarray(scales)
    return rows.astype(np.float32), np.r_[np.zeros(n), np.ones(n_out)].astype(int)


@pytest.fixture(scope="module")
def fitted():
    X, y = blobs()
    return aekit.AnomalyDetector(model_params={"hidden_layers": (16, 2)}, epochs=60, random_state=0).fit(X), X, y


# -- scikit-learn's conventions and PyOD's -------------------------------------------------------------------
def test_outlier_conventions(fitted):
    det, X, y = fitted
    s = det.score_samples(X)
    assert s.dtype == np.float64 and s.shape == (len(X),)
    np.testing.assert_allclose(det.decision_function(X), s - det.offset_)
    pred = det.predict(X)
    assert set(np.unique(pred)) == {-1, 1}
    np.testing.assert_array_equal(pred == -1, det.decision_function(X) < 0)
    assert det.threshold_ == -det.offset_
    np.testing.assert_array_equal(det.decision_scores_, det.anomaly_score(X))  # predict on X: the training labels
    np.testing.assert_array_equal(det.labels_, (pred == -1).astype(int))
    assert abs((pred == -1).mean() - det.contamination) < 0.01
    np.testing.assert_array_equal(det.fit_predict(X), pred)  # seeded: refitting gives the same detector
    assert roc_auc_score(y, det.anomaly_score(X)) > 0.95


def test_contamination_sets_the_share_flagged_on_new_rows_too():
    """contamination=0.1 fitted on a split with 10% anomalies flags 10% +- 1% of it, and of another split drawn
    the same way (a training row is scored by its neighbours, as a new row is)."""
    X, _ = blobs(n=1800, n_out=200, seed=1)
    X_new, _ = blobs(n=1800, n_out=200, seed=2)
    det = aekit.AnomalyDetector(model_params={"hidden_layers": (16, 2)}, epochs=20, contamination=0.1,
                                random_state=0).fit(X)
    assert abs(np.mean(det.predict(X) == -1) - 0.1) <= 0.01
    assert abs(np.mean(det.predict(X_new) == -1) - 0.1) <= 0.01


def test_predict_proba_and_confidence_follow_pyod(fitted):
    det, X, _ = fitted
    proba = det.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.allclose(proba.sum(1), 1) and ((proba > 0) & (proba < 1)).all()
    scores = det.anomaly_score(X)
    order = np.argsort(scores)
    assert (np.diff(proba[order, 1]) >= 0).all()  # monotone in the score
    for method in ("unify", "linear"):
        other = det.predict_proba(X, method=method)
        assert (np.diff(other[order, 1]) >= -1e-12).all() and other.min() >= 0 and other.max() <= 1
    lo, hi = det.decision_scores_.min(), det.decision_scores_.max()
    np.testing.assert_allclose(det.predict_proba(X, method="linear")[:, 1], np.clip((scores - lo) / (hi - lo), 0, 1))
    with pytest.raises(ConfigError, match="method"):
        det.predict_proba(X, method="softmax")
    # ExCeeD as PyOD computes it, written out here
    n = len(det.decision_scores_)
    counts = np.array([np.count_nonzero(det.decision_scores_ <= s) for s in scores])
    conf = 1 - binom.cdf(n - int(n * det.contamination), n, (1 + counts) / (2 + n))
    outlier = scores > det.threshold_
    conf[~outlier] = 1 - conf[~outlier]
    np.testing.assert_allclose(det.predict_confidence(X), conf)


# -- scores ----------------------------------------------------------------------------------------------------
def test_each_score_and_auto(digits):
    X, X_test = digits
    common = {"model_params": {"hidden_layers": (32, 8)}, "epochs": 3, "random_state": 0}
    assert aekit.AnomalyDetector(**common).fit(X).score_ == "hybrid"
    for score in ("reconstruction", "latent", "hybrid"):
        det = aekit.AnomalyDetector(score_type=score, **common).fit(X)
        assert det.score_ == score and np.isfinite(det.score_samples(X_test)).all()
    rec = aekit.AnomalyDetector(score_type="reconstruction", **common).fit(X)
    np.testing.assert_allclose(rec.anomaly_score(X_test), rec.scorer_.reconstruction_error(X_test), rtol=1e-6)
    with pytest.raises(ConfigError, match="elbo"):  # refused before training
        aekit.AnomalyDetector(score_type="elbo", **common).fit(X)
    for score in ("elbo", "nll"):
        vae = aekit.AnomalyDetector("vae", score_type=score, model_params={"hidden_layers": (32,), "latent_dim": 4},
                                    epochs=2, random_state=0).fit(X)
        a, b = vae.anomaly_score(X_test[:50]), vae.anomaly_score(X_test[:50])
        np.testing.assert_array_equal(a, b)  # seeded sampling: the same scores every call
        assert (a > 0).all()  # nats


def test_fitted_scorer_is_used_as_it_is(digits):
    X, X_test = digits
    ae = aekit.Autoencoder((32, 8), epochs=2, random_state=0).fit(X)
    before = [p.detach().clone() for p in ae.model_.parameters()]
    det = aekit.AnomalyDetector(ae, score_type="reconstruction").fit(X)
    assert det.scorer_ is ae and det.standardize_ is False
    assert all((p == q).all() for p, q in zip(ae.model_.parameters(), before))
    np.testing.assert_allclose(det.anomaly_score(X_test), ae.reconstruction_error(X_test))
    with pytest.raises(ConfigError, match="standardize"):
        aekit.AnomalyDetector(ae, standardize=True).fit(X)
    with pytest.raises(ConfigError, match="model_params"):
        aekit.AnomalyDetector(aekit.Autoencoder(), model_params={"epochs": 1}).fit(X)


def test_conv_scorer_on_images(digits):
    X, X_test = digits
    images = X.reshape(-1, 8, 8)
    det = aekit.AnomalyDetector(model_params={"arch": "conv", "channels": (4, 8), "coding_size": 8}, epochs=2,
                                random_state=0).fit(images)
    assert det.image_shape_ == (8, 8) and det.scorer_.arch == "conv"
    np.testing.assert_array_equal(det.score_samples(X_test.reshape(-1, 8, 8)[:20]),
                                  det.score_samples(X_test.reshape(-1, 8, 8)[:20]))
    with pytest.raises(DataError, match="images of shape"):
        det.score_samples(X_test.reshape(-1, 4, 16))


def test_denoising_scorer(digits):
    X, X_test = digits
    det = aekit.AnomalyDetector(model_params={"hidden_layers": (32, 8), "noise": "mask:0.3"}, epochs=2,
                                random_state=0).fit(X)
    assert det.scorer_.noise == "mask:0.3" and np.isfinite(det.score_samples(X_test)).all()


def test_seed_makes_scores_repeatable_bit_for_bit(digits):
    X, X_test = digits
    a, b = (aekit.AnomalyDetector(epochs=2, random_state=3).fit(X).score_samples(X_test) for _ in range(2))
    np.testing.assert_array_equal(a, b)


# -- tables as users have them ---------------------------------------------------------------------------------
def test_columns_on_different_scales_are_standardized():
    X, y = blobs(scales=[1, 1000, 0.01, 1, 50, 1])
    params = {"model_params": {"hidden_layers": (16, 2)}, "epochs": 60, "random_state": 0}
    det = aekit.AnomalyDetector(**params).fit(X)
    raw = aekit.AnomalyDetector(standardize=False, **params).fit(X)
    assert det.standardize_ is True and raw.standardize_ is False
    np.testing.assert_allclose(det.preprocessing_.mean.numpy(), X.astype(np.float64).mean(0), rtol=1e-6)
    good, bad = roc_auc_score(y, det.anomaly_score(X)), roc_auc_score(y, raw.anomaly_score(X))
    assert good > 0.95 and good > bad + 0.05  # unscaled, the 1000x column drowns the others


def test_images_in_unit_range_are_not_standardized(digits):
    X, _ = digits
    assert aekit.AnomalyDetector(epochs=1, random_state=0).fit(X).standardize_ is False


def test_missing_values_refused_or_imputed():
    X, _ = blobs()
    X[[3, 17], 1] = np.nan
    with pytest.raises(DataError, match=r"NaN .* 2 rows \(row 3, 17\).*missing='impute'"):
        aekit.AnomalyDetector(epochs=1).fit(X)
    det = aekit.AnomalyDetector(missing="impute", epochs=2, random_state=0).fit(X)
    np.testing.assert_allclose(det.preprocessing_.fill.numpy()[1], np.nanmedian(X[:, 1].astype(np.float64)))
    new = X[:5].copy()
    new[0, 0] = np.nan
    assert np.isfinite(det.score_samples(new)).all()
    new[1, 2] = np.inf
    with pytest.raises(DataError, match="inf"):
        det.score_samples(new)


def test_trim_leaves_out_the_worst_rows_while_training():
    X, y = blobs(n=900, n_out=100)
    det = aekit.AnomalyDetector(model_params={"hidden_layers": (16, 2)}, epochs=30, trim=0.1, random_state=0).fit(X)
    kept = det.training_rows_
    assert kept.sum() == 900
    assert y[~kept].mean() > 0.8  # the rows left out are mostly the outliers
    assert det.scorer_.n_epochs_ == 30
    assert det.score_ == "reconstruction"  # auto: the latent distance suffers from anomalies among the references


def test_explain_contributions_sum_to_the_score(fitted):
    det, X, y = fitted
    rec = aekit.AnomalyDetector(score_type="reconstruction", model_params={"hidden_layers": (16, 2)}, epochs=20,
                                random_state=0).fit(X)
    c = rec.explain(X[:10])
    assert c.shape == (10, X.shape[1]) and (c >= 0).all()
    np.testing.assert_allclose(c.sum(1), rec.anomaly_score(X[:10]), rtol=1e-4)
    # an outlier made by shifting one column of a normal row is blamed on that column
    row = X[:1].copy()
    row[0, 4] += 30 * X[:400, 4].std()
    assert int(np.argmax(det.explain(row)[0])) == 4


def test_save_load_round_trip(fitted, tmp_path):
    det, X, _ = fitted
    det.save(tmp_path / "det")
    loaded = aekit.load(tmp_path / "det")
    assert type(loaded) is aekit.AnomalyDetector and loaded.get_params() == det.get_params()
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
    np.testing.assert_array_equal(loaded.decision_scores_, det.decision_scores_)
    assert loaded.threshold_ == det.threshold_ and loaded.score_ == det.score_
    files = {p.name for p in (tmp_path / "det").rglob("*") if p.is_file()}
    assert not any(name.endswith((".pt", ".pkl", ".pickle")) for name in files)


def test_bad_input_is_a_clear_error(fitted):
    det, X, _ = fitted
    with pytest.raises(ValueError, match="features"):
        det.score_samples(X[:, :3])
    with pytest.raises(DataError, match="2 training rows"):
        aekit.AnomalyDetector().fit(X[:1])
    with pytest.raises(ValueError, match="contamination"):
        aekit.AnomalyDetector(contamination=0.7).fit(X)
    with pytest.raises(ValueError, match="model"):
        aekit.AnomalyDetector("no-such-family").fit(X)


# -- figures --------------------------------------------------------------------------------------------------
def test_figures(fitted, digits):
    from aekit.detection.figures import plot_contributions, plot_most_abnormal, plot_roc, plot_score_histogram

    det, X, y = fitted
    scores = det.anomaly_score(X)
    fig = plot_score_histogram(scores, det.threshold_, y, train_scores=det.decision_scores_)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any("threshold" in t and "flags 10.0%" in t for t in labels) and any("anomalies (40)" in t for t in labels)
    assert "AUC" in plot_roc(y, scores).axes[0].get_legend_handles_labels()[1][0]
    assert len(plot_contributions(det.explain(X[-4:]), scores[-4:]).axes) == 4
    D, _ = digits
    img = aekit.AnomalyDetector(epochs=1, random_state=0).fit(D)
    top = D[:3]
    fig = plot_most_abnormal(top, img.reconstruct(top), img.explain(top), img.anomaly_score(top), (8, 8))
    assert len(fig.axes) == 9 and fig.axes[2].get_title() == "error map"


# -- the command line -----------------------------------------------------------------------------------------
def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A CSV as users have them: a header, columns on different scales, a text label column."""
    X, y = blobs(n=300, n_out=30, scales=[1, 100, 0.1, 1, 10, 1])
    path = tmp_path_factory.mktemp("detect") / "table.csv"
    lines = ["a,b,c,d,e,f,kind"] + [",".join(f"{v:.6g}" for v in row) + ("," + ("odd" if t else "ok"))
                                    for row, t in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_detect_train_score_evaluate(table, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["detect", "train", "--data", str(table), "--label-column", "kind", "--normal-class", "ok",
                 "--hidden", "16,2", "--epochs", "30", "--contamination", "0.05", "--out", str(run), "--quiet",
                 "--report", "--json"]) == 0
    result = last_json(capsys)
    assert result["score"] == "hybrid" and result["test"]["roc_auc"] > 0.8 and (run / "report.html").is_file()
    notes = json.loads((run / "run.json").read_text())
    assert notes["detect"]["normal_class"] == ["ok"]
    det = aekit.load(run)
    assert det.contamination == 0.05 and det.scorer_.hidden_layers == (16, 2) and det.random_state == 0
    # score: CSV and .npy with the same columns
    assert main(["detect", "score", str(run), "--out", str(tmp_path / "s.csv")]) == 0
    assert main(["detect", "score", str(run), "--out", str(tmp_path / "s.npy")]) == 0
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "row,anomaly_score,outlier,outlier_probability,confidence"
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (len(lines) - 1, 4) and set(np.unique(arr[:, 1])) <= {0.0, 1.0}
    np.testing.assert_allclose(arr[:, 0], [float(line.split(",")[1]) for line in lines[1:]])
    # evaluate with the run's normal class, and with a labels file
    capsys.readouterr()
    assert main(["detect", "evaluate", str(run), "--json"]) == 0
    metrics = last_json(capsys)
    for key in ("roc_auc", "average_precision", "precision_at_n", "flagged_share", "precision", "recall", "f1"):
        assert 0 <= metrics[key] <= 1, key
    truth = (arr[:, 0] > np.median(arr[:, 0])).astype(int)
    np.save(tmp_path / "truth.npy", truth)
    assert main(["detect", "evaluate", str(run), "--labels", str(tmp_path / "truth.npy"), "--json"]) == 0
    assert last_json(capsys)["roc_auc"] == pytest.approx(1.0)


def test_detect_refusals_leave_the_run_folder_as_it_was(table, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["detect", "train", "--data", str(table), "--label-column", "kind", "--hidden", "8,2", "--epochs",
                 "1", "--out", str(run), "--quiet"]) == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    cases = [
        ["detect", "train", "--data", str(table), "--out", str(run), "--quiet"],  # holds a run
        ["detect", "train", "--data", str(table), "--label-column", "kind", "--normal-class", "nope", "--out",
         str(run), "--overwrite", "--quiet"],
        ["detect", "train", "--data", str(table), "--label-column", "kind", "--score", "elbo", "--out", str(run),
         "--overwrite", "--quiet"],
        ["detect", "train", "--data", str(table), "--label-column", "kind", "--latent-dim", "3", "--out", str(run),
         "--overwrite", "--quiet"],  # a VAE flag with the default ae scorer
        ["detect", "evaluate", str(run), "--labels", str(table)],  # not one column of labels
        ["detect", "score", str(run), "--out", str(tmp_path / "s.parquet")],
        ["evaluate", str(run)],  # commands for autoencoders name the detector's own
        ["encode", str(run), "--out", str(tmp_path / "c.npy")],
        ["reconstruct", str(run), "--out", str(tmp_path / "r.npy")],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"aekit {argv[0]}: error:"), (argv, err)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    fresh = tmp_path / "fresh"
    assert main(["detect", "train", "--data", str(table), "--label-column", "kind", "--normal-class", "nope",
                 "--out", str(fresh), "--quiet"]) == 2
    assert not fresh.exists()


def test_detect_with_a_vae_scorer_from_the_cli(table, tmp_path, capsys):
    run = tmp_path / "vae"
    assert main(["detect", "train", "--model", "vae", "--latent-dim", "2", "--hidden", "16", "--score", "elbo",
                 "--data", str(table), "--label-column", "kind", "--epochs", "2", "--out", str(run), "--quiet",
                 "--json"]) == 0
    result = last_json(capsys)
    assert result["score"] == "elbo" and result["scorer"] == "VariationalAutoencoder"


# -- the one-class protocol on MNIST (Ruff et al. 2018), one class ------------------------------------------------
def test_one_class_mnist_digit_zero(data_dir):
    ds = aekit.load_dataset("mnist")
    det = aekit.AnomalyDetector(random_state=0).fit(ds.X_train[ds.y_train == 0])
    auc = roc_auc_score(ds.y_test != 0, det.anomaly_score(ds.X_test))
    assert auc > 0.99  # benchmarks/one_class.py: 0.997 over 3 seeds
    normal = ds.X_test[ds.y_test == 0]
    assert abs(np.mean(det.predict(normal) == -1) - 0.1) < 0.03  # the threshold holds on new normal rows
