import json

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main
from aekit.errors import ConfigError, DataError
from aekit.experiments import epochs_for_steps, labelled_subset
from aekit.training import train
from aekit.training.classification import ClassificationStep


def small(**kwargs):
    params = dict(autoencoder_params={"hidden_layers": (8,), "epochs": 2}, epochs=10, learning_rate=1e-2,
                  random_state=0, device="cpu")
    return aekit.PretrainedClassifier(**{**params, **kwargs})


@pytest.fixture(scope="module")
def digits_labelled():
    ds = aekit.load_dataset("digits")
    return ds.X_train, ds.y_train, ds.X_test, ds.y_test


@pytest.fixture(scope="module")
def ae(digits_labelled):
    X = digits_labelled[0]
    return aekit.Autoencoder((32, 16), noise="mask:0.2", epochs=10, random_state=0, device="cpu").fit(X)


def encoder_state(module):
    return {k: v.detach().clone() for k, v in module.encoder.state_dict().items()}


def test_encoder_is_copied_and_scratch_is_not(ae, digits_labelled):
    X, y, X_test, _ = digits_labelled
    pretrained = aekit.PretrainedClassifier(ae, epochs=0, random_state=0, device="cpu").fit(X, y)
    assert np.array_equal(pretrained.encode(X_test), ae.transform(X_test))  # same weights and activations
    scratch = aekit.PretrainedClassifier(ae, pretrain=False, epochs=0, random_state=0).fit(X, y)
    assert scratch.model_.config == pretrained.model_.config  # the identical network ...
    assert not np.allclose(scratch.encode(X_test), ae.transform(X_test))  # ... from a random init
    assert scratch.encoder_source_["weights"].startswith("random init")


@pytest.mark.parametrize("freeze, n_frozen", [("all", 2), (1, 1), ("none", 0)])
def test_frozen_layers_stay_bit_identical(ae, digits_labelled, freeze, n_frozen):
    X, y, *_ = digits_labelled
    before = encoder_state(ae.model_)
    clf = aekit.PretrainedClassifier(ae, freeze=freeze, hidden_layers=(16,), epochs=3, random_state=0,
                                     device="cpu").fit(X, y)
    assert clf.n_frozen_ == n_frozen
    after = clf.model_.encoder
    for k in range(2):
        same = torch.equal(after[k].weight, before[f"{k}.weight"]) and torch.equal(after[k].bias, before[f"{k}.bias"])
        assert same == (k < n_frozen), k
        assert after[k].weight.requires_grad == (k >= n_frozen)
    for name, value in encoder_state(ae.model_).items():  # the caller's autoencoder is never modified
        assert torch.equal(value, before[name]), name


def test_semi_supervised_convention(digits_labelled):
    X, y, X_test, y_test = digits_labelled
    y_semi = y.copy()
    y_semi[200:] = -1  # only 200 labelled rows
    clf = aekit.PretrainedClassifier(autoencoder_params={"hidden_layers": (32,), "epochs": 3}, epochs=5,
                                     random_state=0).fit(X, y_semi)
    assert clf.encoder_source_["n_samples"] == len(X)  # the autoencoder saw every row
    assert clf.autoencoder_.n_epochs_ == 3
    assert list(clf.classes_) == list(range(10))  # -1 is not a class
    assert clf.predict_proba(X_test).shape == (len(X_test), 10)
    with pytest.raises(DataError, match="no labelled rows"):
        aekit.PretrainedClassifier(autoencoder_params={"epochs": 1}).fit(X[:20], np.full(20, -1))
    # unlabelled=None: -1 is an ordinary class
    signs = np.where(y[:300] < 5, -1, 1)
    clf = aekit.PretrainedClassifier(autoencoder_params={"hidden_layers": (8,), "epochs": 1}, epochs=2,
                                     unlabelled=None, random_state=0).fit(X[:300], signs)
    assert list(clf.classes_) == [-1, 1]


def test_save_load_roundtrip_with_string_labels(ae, digits_labelled, tmp_path):
    X, y, X_test, _ = digits_labelled
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    ae.save(tmp_path / "ae")
    clf = aekit.PretrainedClassifier(str(tmp_path / "ae"), freeze=1, epochs=3, random_state=0).fit(X, names[y])
    assert clf.encoder_source_["checkpoint"] == str(tmp_path / "ae")
    clf.save(tmp_path / "clf")
    loaded = aekit.load(tmp_path / "clf")
    assert isinstance(loaded, aekit.PretrainedClassifier)
    assert np.array_equal(loaded.classes_, clf.classes_) and loaded.classes_.dtype == clf.classes_.dtype
    assert np.array_equal(loaded.predict(X_test), clf.predict(X_test))
    assert np.array_equal(loaded.predict_proba(X_test), clf.predict_proba(X_test))
    assert loaded.get_params() == clf.get_params()
    loaded.set_params(epochs=5, warm_start=True).fit(X, names[y])  # continues to 5 epochs in total
    assert loaded.n_epochs_ == 5 and len(loaded.history_) == 5


def test_user_errors(ae, digits_labelled):
    X, y, *_ = digits_labelled
    with pytest.raises(ValueError, match="1 class"):
        aekit.PretrainedClassifier(ae).fit(X[:10], np.zeros(10, dtype=int))
    with pytest.raises(DataError, match="X has 10 features, but the autoencoder's encoder expects 64"):
        aekit.PretrainedClassifier(ae).fit(X[:, :10], y)
    with pytest.raises(ConfigError, match="freeze=3, but the encoder has only 2 layers"):
        aekit.PretrainedClassifier(ae, freeze=3).fit(X, y)
    with pytest.raises(ConfigError, match="autoencoder_params applies only"):
        aekit.PretrainedClassifier(ae, autoencoder_params={"epochs": 1}).fit(X, y)


def test_cached_prefix_gives_the_same_logits_and_dropout_only_trains():
    from aekit.models.classifier import EncoderClassifier

    model = EncoderClassifier(12, [8, 6, 4], n_classes=3, hidden_layers=[5], dropout=0.5, seed=0).eval()
    x = torch.rand(7, 12)
    with torch.no_grad():
        full = model(x)
        for k in range(4):  # frozen block of k layers computed separately, then the rest: what training caches
            assert torch.allclose(model.forward_from(model.encode_prefix(x, k), k), full, atol=1e-6), k
        model.train()
        assert not torch.equal(model(x), model(x))  # dropout in training only


def test_loop_trains_with_integer_targets(digits_labelled):
    X, y, *_ = digits_labelled
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    step = ClassificationStep(model, torch.optim.Adam(model.parameters(), lr=1e-2))
    history = train(step, torch.from_numpy(X), torch.from_numpy(y), epochs=5, batch_size=64,
                    generator=torch.Generator().manual_seed(0))
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["accuracy"] > 0.9


def test_labelled_subset_is_stratified_and_budget_in_steps():
    y = np.repeat(np.arange(10), [100 + 10 * c for c in range(10)])
    rows = labelled_subset(y, 0.1, seed=3)
    assert list(np.bincount(y[rows])) == [10 + c for c in range(10)]
    assert not np.array_equal(rows, labelled_subset(y, 0.1, seed=4))
    assert len(labelled_subset(y, 1.0, seed=0)) == len(y)
    assert epochs_for_steps(600, 64, 2000) == 200 and epochs_for_steps(60000, 64, 2000) == 3


def test_cli_classify_and_few_labels_experiment(tmp_path, capsys):
    run, out = tmp_path / "ae", tmp_path / "exp"
    assert main(["train", "--hidden", "32,16", "--noise", "mask:0.2", "--epochs", "3", "--out", str(run),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["classify", "--encoder", str(run), "--label-fraction", "0.2", "--freeze", "all", "--steps", "30",
                 "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 <= result["test_accuracy"] <= 1 and result["n_labels"] == 287 and result["freeze"] == "all"
    assert main(["classify", "--encoder", str(run), "--label-fraction", "0.2", "--epochs", "2", "--lr-schedule",
                 "cosine", "--out", str(tmp_path / "clf"), "--quiet", "--json"]) == 0  # --epochs is a number
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["epochs"] == 2
    args = ["experiment", "few-labels", "--dataset", "digits", "--fractions", "0.1,1.0", "--seeds", "2",
            "--ae-hidden", "16", "--ae-epochs", "2", "--steps", "20", "--out", str(out), "--quiet", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"]
    assert [row["n_labels"] for row in summary] == [142, 1437]
    assert all(row[v]["n_seeds"] == 2 for row in summary for v in ("scratch", "frozen", "fine-tuned"))
    for name in ("few_labels.md", "few_labels.json", "few_labels.png", "autoencoder/checkpoint.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "few_labels.json").read_text())
    assert len(saved["runs"]) == 12 and saved["complete"]
    assert main(args) == 0  # finished: reruns nothing, same table
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"] == summary
    assert main([*args[:-4], "--steps", "21", "--out", str(out)]) == 2  # other settings are refused


@pytest.mark.slow
def test_pretraining_beats_scratch_with_one_percent_of_mnist(data_dir):
    ds = aekit.load_dataset("mnist")
    ae = aekit.Autoencoder((300, 150), noise="mask:0.3", loss="bce", epochs=15, random_state=0).fit(ds.X_train)
    rows = labelled_subset(ds.y_train, 0.01, seed=0)
    scores = {}
    for name, kwargs in {"scratch": {"pretrain": False}, "fine-tuned": {}}.items():
        clf = aekit.PretrainedClassifier(ae, epochs=200, random_state=0, **kwargs).fit(ds.X_train[rows],
                                                                                       ds.y_train[rows])
        scores[name] = clf.score(ds.X_test, ds.y_test)
    assert scores["fine-tuned"] > scores["scratch"] + 0.01, scores


def test_defaults_pretrain_the_winning_recipe_and_scratch_is_the_same_network(digits):
    """autoencoder_params=None pretrains docs/results.md's few-labels recipe (denoising, BCE, 300-150, He, 15
    epochs); pretrain=False builds the same network from a random init without training anything (it used to
    raise AttributeError for want of the autoencoder's resolved loss)."""
    from aekit.estimators.classifier import PRETRAINING

    X, _ = digits
    y = np.arange(len(X)) % 3
    pre = aekit.PretrainedClassifier(epochs=1, random_state=0).fit(X, y)
    assert pre.autoencoder_.get_params()["noise"] == PRETRAINING["noise"] == "mask:0.3"
    assert pre.autoencoder_.n_epochs_ == 15 and pre.autoencoder_.loss_ == "bce"
    scratch = aekit.PretrainedClassifier(pretrain=False, epochs=1, random_state=0).fit(X, y)
    assert not hasattr(scratch, "autoencoder_")
    shapes = lambda est: [tuple(p.shape) for p in est.model_.parameters()]
    assert shapes(scratch) == shapes(pre)
