"""Conditional VAE (src/aekit/models/cvae.py)."""

import json

import numpy as np
import pytest

import aekit
from aekit.cli import main


@pytest.fixture(scope="module")
def fitted(digits):
    ds = aekit.load_dataset("digits")
    return aekit.ConditionalVAE((64,), latent_dim=4, epochs=40, random_state=0).fit(ds.X_train, ds.y_train), ds


def test_samples_are_of_the_class_asked_for(fitted):
    from sklearn.linear_model import LogisticRegression

    est, ds = fitted
    judge = LogisticRegression(max_iter=2000).fit(ds.X_train, ds.y_train)  # ~97% on the real test digits
    asked = np.resize(est.classes_, 500)
    samples = est.sample(500, y=asked, random_state=0)
    assert samples.shape == (500, 64) and samples.min() >= 0 and samples.max() <= 1
    assert (judge.predict(samples) == asked).mean() > 0.7  # measured 0.82; chance is 0.1
    # one label for all, and the default grid of every class in turn
    assert (judge.predict(est.sample(50, y=3, random_state=1)) == 3).mean() > 0.6
    assert np.array_equal(est.sample(20, random_state=0), est.sample(20, y=np.resize(est.classes_, 20),
                                                                      random_state=0))


def test_labels_condition_every_method(fitted):
    est, ds = fitted
    X, y = ds.X_test[:100], ds.y_test[:100]
    assert est.score(X, y) > est.score(X, (y + 1) % 10)  # the right labels reconstruct better
    assert est.transform(X, y).shape == (100, 4)
    assert not np.allclose(est.transform(X, y), est.transform(X))  # no label: the unconditional model
    ll = est.log_likelihood(X, y, k=200, random_state=0)
    assert np.isfinite(ll).all() and ll.mean() >= est.elbo(X, y, random_state=0).mean() - 0.5
    assert ll.mean() > est.log_likelihood(X, (y + 1) % 10, k=200, random_state=0).mean()
    assert est.predict(X, y).shape == X.shape
    with pytest.raises(ValueError, match="not seen in fit"):
        est.transform(X, y + 20)
    with pytest.raises(ValueError, match="labels"):
        est.transform(X, y[:5])
    with pytest.raises(ValueError, match="requires y"):
        aekit.ConditionalVAE((8,), epochs=1).fit(X)


def test_save_load_keeps_classes(fitted, tmp_path):
    est, ds = fitted
    loaded = aekit.load(est.save(tmp_path / "c"))
    assert np.array_equal(loaded.classes_, est.classes_)
    assert np.array_equal(loaded.sample(10, y=7, random_state=0), est.sample(10, y=7, random_state=0))


def test_cli_trains_on_the_labels_and_refuses_unlabelled_data(tmp_path, capsys):
    run = tmp_path / "c"
    assert main(["train", "--model", "cvae", "--hidden", "16", "--latent-dim", "3", "--epochs", "2", "--out", str(run),
                 "--quiet", "--json"]) == 0
    est = aekit.load(run)
    assert type(est).__name__ == "ConditionalVAE" and est.classes_.tolist() == list(range(10))
    capsys.readouterr()
    assert main(["generate", str(run), "--n", "10", "--out", str(tmp_path / "g.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["shape"] == [10, 64]
    table = tmp_path / "rows.csv"
    np.savetxt(table, np.random.default_rng(0).random((40, 5)), delimiter=",")
    assert main(["train", "--model", "cvae", "--data", str(table), "--out", str(tmp_path / "u")]) == 2
    assert "conditioned on labels" in capsys.readouterr().err
    assert not (tmp_path / "u").exists()
