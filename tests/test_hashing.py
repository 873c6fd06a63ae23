import json

import numpy as np
import pytest
import torch
from sklearn.base import clone

import aekit
from aekit.cli import main
from aekit.hashing import (HammingIndex, LSHHasher, PCAITQHasher, SupervisedHasher, bucket_stats, evaluate_codes,
                           gini_purity, hamming_distances, mean_average_precision, pack_bits, plot_buckets,
                           radius_precision_recall, unpack_bits)
from aekit.models.hashing import HashingAutoencoder


@pytest.fixture(scope="module")
def fitted(digits):
    X, _ = digits
    return aekit.SemanticHasher(11, hidden_layers=(32,), noise_std=2.0, epochs=3, random_state=0).fit(X)


def clustered_codes(n_bits: int, n: int) -> np.ndarray:
    """Codes around a few centres, so that many pairs lie at distances 0, 1, 2, 3."""
    rng = np.random.default_rng(0)
    centres = rng.random((6, n_bits)) < 0.5
    bits = centres[rng.integers(0, 6, n)]
    flips = rng.random((n, n_bits)) < 1.5 / n_bits
    return pack_bits(bits ^ flips)


# -- model -----------------------------------------------------------------------------------------------------
def test_noise_only_in_training_mode():
    model = HashingAutoencoder(8, hidden_layers=(6,), n_bits=5, noise_std=3.0, seed=0)
    x = torch.rand(4, 8)
    model.eval()
    a, b = model.encode(x), model.encode(x)
    assert torch.equal(a, b) and torch.allclose(a, torch.sigmoid(model.coding_logits(x)))
    assert torch.equal(model.bits(x), a > 0.5)
    model.train()
    assert not torch.allclose(model.encode(x), model.encode(x))
    assert torch.equal(HashingAutoencoder(8, hidden_layers=(6,), n_bits=5, noise_std=0.0, seed=0).train().encode(x), a)
    rebuilt = aekit.models.build_model("hashing", model.config)
    assert rebuilt.config == model.config and rebuilt.n_bits == 5


def test_hash_shape_dtype_and_packing(fitted, digits):
    _, X = digits
    codes = fitted.hash(X)
    assert codes.shape == (len(X), 2) and codes.dtype == np.uint8  # ceil(11 / 8) bytes
    bits = fitted.bits(X)
    assert bits.shape == (len(X), 11) and bits.dtype == bool
    assert np.array_equal(unpack_bits(codes, 11), bits)
    assert np.array_equal(bits, fitted.transform(X) > 0.5)
    assert not np.any(codes[:, 1] >> 3)  # the 5 padding bits are zero
    assert list(fitted.get_feature_names_out())[:2] == ["semantichasher0", "semantichasher1"]


# -- index -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_bits", [13, 70])
@pytest.mark.parametrize("strategy", ["hash", "flat", "auto"])
def test_radius_query_matches_brute_force(n_bits, strategy):
    codes = clustered_codes(n_bits, 420)
    db, queries = codes[:400], codes[400:]
    index = HammingIndex(n_bits, strategy).add(db)
    brute = hamming_distances(queries, db)
    for radius in (0, 1, 2, 3):
        ids, dists = index.range_search(queries, radius)
        for q in range(len(queries)):
            expected = np.flatnonzero(brute[q] <= radius)  # distance == radius is included
            assert sorted(ids[q].tolist()) == expected.tolist()
            assert np.array_equal(dists[q], brute[q, ids[q]]) and np.all(np.diff(dists[q]) >= 0)
    assert any(len(i) and d.max() == 3 for i, d in zip(*index.range_search(queries, 3)))


def test_knn_query_and_ids_mapping():
    codes = clustered_codes(20, 310)
    db, queries = codes[:300], codes[300:]
    ids = 1000 + 7 * np.arange(len(db))
    index = HammingIndex(20).add(db[:200], ids[:200]).add(db[200:], ids[200:])
    brute = hamming_distances(queries, db)
    found, dists = index.search(queries, k=5)
    for q in range(len(queries)):
        assert np.array_equal(dists[q], np.sort(brute[q])[:5])
        assert np.array_equal(brute[q, (found[q] - 1000) // 7], dists[q])
    found, _ = index.search(queries[:1], k=10_000)
    assert len(found[0]) == len(db)  # k larger than the index: everything
    default = HammingIndex(20).add(db[:3]).add(db[3:5])
    assert default.ids.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="unique"):
        index.add(db[:1], ids[:1])


def test_index_rejects_bad_codes_and_arguments():
    index = HammingIndex(11)
    with pytest.raises(aekit.AekitError, match="empty"):
        index.range_search(np.zeros((1, 2), np.uint8), 1)
    with pytest.raises(ValueError, match="packed uint8 of shape"):
        index.add(np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="padding bits must be 0"):
        index.add(np.full((1, 2), 255, np.uint8))
    index.add(np.zeros((2, 2), np.uint8))
    with pytest.raises(aekit.AekitError, match=">= 0"):
        index.range_search(np.zeros((1, 2), np.uint8), -1)
    with pytest.raises(aekit.AekitError, match="integer"):
        index.range_search(np.zeros((1, 2), np.uint8), 1.5)
    with pytest.raises(aekit.AekitError, match="positive"):
        index.search(np.zeros((1, 2), np.uint8), 0)


# -- estimator -------------------------------------------------------------------------------------------------
def test_index_query_and_bad_input(fitted, digits):
    X, X_test = digits
    est = clone(fitted).set_params(epochs=1).fit(X[:200])
    with pytest.raises(ValueError, match="index is empty"):
        est.query(X_test[:2], radius=1)
    est.index(X[:300], ids=np.arange(300) + 10)
    with pytest.raises(ValueError, match="64 features"):
        est.query(X_test[:2, :10], radius=1)
    with pytest.raises(ValueError, match="exactly one of radius"):
        est.query(X_test[:2])
    with pytest.raises(ValueError, match="exactly one of radius"):
        est.query(X_test[:2], radius=1, k=3)
    with pytest.raises(ValueError, match=">= 0"):
        est.query(X_test[:2], radius=-1)
    ids, dists = est.query(X_test[:4], radius=2)
    brute = hamming_distances(est.hash(X_test[:4]), est.hash(X[:300]))
    for q in range(4):
        assert sorted(ids[q] - 10) == np.flatnonzero(brute[q] <= 2).tolist()
    est.index(X[300:310], append=True)
    assert len(est.index_) == 310 and est.index_.ids[-1] == 309
    est.fit(X[:200])
    assert len(est.index_) == 0  # a refitted model hashes differently: the index is dropped
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        aekit.SemanticHasher(4, loss="bce", epochs=1).fit(-np.ones((10, 3)))
    # the default loss="auto" is BCE for data in [0, 1] only, else MSE
    assert aekit.SemanticHasher(4, epochs=1).fit(-np.ones((10, 3))).loss_ == "mse"
    assert est.loss_ == "bce"


def test_save_load_round_trip_keeps_model_and_index(fitted, digits, tmp_path):
    X, X_test = digits
    est = clone(fitted).fit(X)
    est.index(X, ids=np.arange(len(X)) * 3)
    est.save(tmp_path / "run")
    loaded = aekit.load(tmp_path / "run")
    assert isinstance(loaded, aekit.SemanticHasher) and len(loaded.index_) == len(X)
    assert np.array_equal(loaded.hash(X_test), est.hash(X_test))
    for kwargs in ({"radius": 0}, {"radius": 2}, {"k": 7}):
        for a, b in zip(est.query(X_test[:20], **kwargs), loaded.query(X_test[:20], **kwargs)):
            assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not any(k.startswith("index.") for k in loaded._train_state)
    loaded.set_params(warm_start=True, epochs=est.n_epochs_ + 1).fit(X)  # resumes; the index is dropped
    assert loaded.n_epochs_ == est.n_epochs_ + 1 and len(loaded.index_) == 0


def test_sklearn_params_and_clone():
    est = aekit.SemanticHasher(12, noise_std=3.0, random_state=0)
    assert est.get_params()["n_bits"] == 12 and est.get_params()["noise_std"] == 3.0
    assert clone(est.set_params(hidden_layers=(16,))).get_params()["hidden_layers"] == (16,)
    with pytest.raises(ValueError, match="noise_std"):
        aekit.SemanticHasher(noise_std=-1.0).fit(np.zeros((5, 3)))


# float32 matmuls may round one element of a permuted batch 1 ulp differently (seen once: 2.98e-08 against the
# check's rtol=1e-7), so the sample-order check is allowed to fail
# -- metrics ---------------------------------------------------------------------------------------------------
def test_metrics_on_hand_made_buckets():
    # 4-bit codes: bucket A = 0000 (labels 0, 0, 1), bucket B = 1111 (1, 1), bucket C = 0001 (2)
    bits = np.array([[0, 0, 0, 0]] * 3 + [[1, 1, 1, 1]] * 2 + [[0, 0, 0, 1]], dtype=bool)
    db, labels = pack_bits(bits), np.array([0, 0, 1, 1, 1, 2])
    assert gini_purity(db, labels) == pytest.approx((3 * 5 / 9 + 2 * 1.0) / 5)  # A: (2/3)^2 + (1/3)^2
    assert gini_purity(db, labels, min_size=1) == pytest.approx((3 * 5 / 9 + 2 + 1) / 6)
    stats = bucket_stats(db, n_bits=4)
    assert (stats["buckets"], stats["largest"], stats["singleton_share"]) == (3, 3, pytest.approx(1 / 6))
    # query 1: code 0000, label 0; query 2: code 0111 (distance 1 from B, 2 from C), label 1
    queries = pack_bits(np.array([[0, 0, 0, 0], [0, 1, 1, 1]], dtype=bool))
    q_labels = np.array([0, 1])
    pr = radius_precision_recall(queries, q_labels, db, labels, radii=(0, 1, 2))
    assert pr[0]["precision"] == pytest.approx((2 / 3 + 0) / 2)  # query 2 retrieves nothing: precision 0
    assert pr[0]["precision_answered"] == pytest.approx(2 / 3) and pr[0]["answered"] == 0.5
    assert pr[0]["recall"] == pytest.approx((2 / 2 + 0) / 2)
    assert pr[1]["precision"] == pytest.approx((2 / 4 + 1.0) / 2)  # query 1 adds C; query 2 finds B
    assert pr[1]["recall"] == pytest.approx((1 + 2 / 3) / 2)
    assert pr[2]["precision"] == pytest.approx((2 / 4 + 2 / 3) / 2)  # query 2 adds C (label 2)
    # mAP@3, ties by database order: query 1 ranks 0, 1, 2 -> relevant, relevant, not: AP = 1;
    # query 2 ranks 3, 4 (d=1), 5 (d=2) -> relevant, relevant, not: AP = 1
    assert mean_average_precision(queries, q_labels, db, labels, k=3) == pytest.approx(1.0)
    # k=6 for query 2: ranks 3, 4, 5, then 0, 1, 2 (d=3) -> rel at 1, 2 and 6 (item 2, label 1): (1 + 1 + 3/6) / 3
    assert mean_average_precision(queries[1:], q_labels[1:], db, labels, k=6) == pytest.approx((2 + 0.5) / 3)
    assert set(evaluate_codes(db, labels, queries, q_labels, 4, k=3)) >= {"gini_purity", "precision@r2", "map@3"}


# -- baselines and figure --------------------------------------------------------------------------------------
def test_baselines(digits):
    X, X_test = digits
    y = aekit.load_dataset("digits").y_train
    lsh = LSHHasher(16, random_state=0).fit(X)
    itq = PCAITQHasher(16, n_iter=20, random_state=0).fit(X)
    assert lsh.hash(X_test).shape == itq.hash(X_test).shape == (len(X_test), 2)
    assert np.all(np.diff(itq.quantization_loss_) <= 1e-6)  # ITQ never increases its quantization loss
    sup = SupervisedHasher(16, hidden_layers=(32,), learning_rate=0.01, epochs=10).fit(X, y)
    assert sup.hash(X_test).shape == (len(X_test), 2) and sup.score(X, y) > 0.8
    with pytest.raises(ValueError, match="features"):
        itq.hash(X_test[:, :10])


def test_plot_buckets(fitted, digits):
    X, _ = digits
    fig = plot_buckets(X, fitted.hash(X), (8, 8), labels=np.arange(len(X)) % 10, n_buckets=3, per_bucket=4,
                       n_bits=11)
    assert len(fig.axes) == 12
    with pytest.raises(ValueError, match="no bucket"):
        plot_buckets(X[:3], pack_bits(np.eye(3, dtype=bool)), (8, 8))


# -- command line ----------------------------------------------------------------------------------------------
def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_train_index_query_evaluate(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["hash", "train", "--dataset", "digits", "--bits", "12", "--hidden", "32", "--noise-std", "2",
                 "--epochs", "3", "--out", run, "--quiet", "--json"]) == 0
    assert last_json(capsys)["epochs"] == 3
    assert main(["hash", "index", run, "--json"]) == 0
    assert last_json(capsys)["size"] == 1437
    assert main(["hash", "query", run, "--radius", "1", "--rows", "0,3", "--json"]) == 0
    queries = last_json(capsys)["queries"]
    assert [q["row"] for q in queries] == [0, 3] and all(max(q["distances"], default=0) <= 1 for q in queries)
    assert main(["hash", "query", run, "--k", "4", "--json"]) == 0
    assert [len(q["ids"]) for q in last_json(capsys)["queries"]] == [4] * 5
    assert main(["hash", "evaluate", run, "--baselines", "lsh,itq", "--k", "50", "--figure",
                 str(tmp_path / "buckets.png"), "--json"]) == 0
    results = last_json(capsys)["results"]
    assert len(results) == 3 and all(0 <= r["precision@r2"] <= 1 for r in results.values())
    assert (tmp_path / "buckets.png").stat().st_size > 1000
    assert main(["hash", "query", run]) == 2
    assert "exactly one of --radius" in capsys.readouterr().err
    assert main(["hash", "train", "--dataset", "digits", "--bits", "8", "--out", run, "--quiet"]) == 2
    assert "other settings (n_bits" in capsys.readouterr().err
