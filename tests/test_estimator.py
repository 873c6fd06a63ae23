import numpy as np
import pytest
import scipy.sparse as sp
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

import aekit
from aekit.data import make_tilted_sheet


def test_transformer_api(digits):
    X, X_test = digits
    est = aekit.Autoencoder((32, 10), epochs=5, random_state=0).fit(X)
    Z = est.transform(X_test)
    assert Z.shape == (len(X_test), 10) and Z.dtype == np.float32
    R = est.inverse_transform(Z)
    assert np.allclose(R, est.predict(X_test), atol=1e-6)
    errors = est.reconstruction_error(X_test)
    assert errors.shape == (len(X_test),) and (errors >= 0).all()
    assert np.allclose(est.score_samples(X_test), -errors)
    assert est.score(X_test) == pytest.approx(-np.mean((R - X_test) ** 2), rel=1e-5)
    assert list(est.get_feature_names_out()) == [f"autoencoder{i}" for i in range(10)]


def test_anomalies_score_lower(digits):
    X, X_test = digits
    est = aekit.Autoencoder((32, 10), epochs=20, random_state=0).fit(X)
    noise = np.random.default_rng(0).random(X_test.shape, dtype=np.float32)
    assert est.score_samples(noise).mean() < est.score_samples(X_test).mean()


def test_pipeline_and_grid_search(digits):
    X, _ = digits
    pipe = make_pipeline(MinMaxScaler(), aekit.Autoencoder((16,), epochs=3, random_state=0))
    assert pipe.fit_transform(X[:300]).shape == (300, 16)
    grid = GridSearchCV(aekit.Autoencoder(epochs=3, random_state=0),
                        {"hidden_layers": [(4,), (32,)]}, cv=2).fit(X[:400])
    assert grid.best_params_ == {"hidden_layers": (32,)}  # a wider code reconstructs better


def test_linear_autoencoder_finds_pca_subspace():
    X = make_tilted_sheet()  # the book's 3-D toy data
    m = len(X)
    est = aekit.Autoencoder((2,), activation="linear", learning_rate=0.01, batch_size=m, epochs=1000,
                            random_state=0).fit(X)
    pca = PCA(2).fit(X)
    W = est.model_.decoder[0].weight.detach().cpu().numpy()  # (3, 2): columns span the decoder's image
    assert np.degrees(subspace_angles(W, pca.components_.T)).max() < 1.0
    pca_mse = np.mean((pca.inverse_transform(pca.transform(X)) - X) ** 2)
    assert -est.score(X) == pytest.approx(pca_mse, rel=0.01)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_autoencoder_reaches_pca_with_default_training_settings(seed):
    """Only the architecture is given (one linear layer of 2 units), on 500 rows of the book's 3-D data: epochs=
    "auto" trains until the loss settles (10,000 steps at most); 10 epochs (40 steps, the old default) had left
    it 81 degrees away."""
    X = make_tilted_sheet(500)
    est = aekit.Autoencoder((2,), activation="linear", random_state=seed).fit(X)
    pca = PCA(2).fit(X)
    W = est.model_.decoder[0].weight.detach().cpu().numpy()
    assert np.degrees(subspace_angles(W, pca.components_.T)).max() < 1.0
    pca_mse = np.mean((pca.inverse_transform(pca.transform(X)) - X) ** 2)
    assert -est.score(X) == pytest.approx(pca_mse, rel=0.01)


BAD = {
    "nan": (np.array([[0.1, np.nan], [0.2, 0.3]]), "NaN"),
    "inf": (np.array([[0.1, np.inf], [0.2, 0.3]]), "infinity"),
    "no samples": (np.empty((0, 3)), "0 sample"),
    "no features": (np.empty((3, 0)), "0 feature"),
    "1-D": (np.array([0.1, 0.2, 0.3]), "Expected 2D array"),
    "complex": (np.array([[1 + 1j, 2]]), "[Cc]omplex"),
    "strings": (np.array([["a", "b"], ["c", "d"]]), "convert"),
    "sparse": (sp.csr_matrix(np.eye(3)), "[Ss]parse"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_gets_clear_error(name):
    X, message = BAD[name]
    with pytest.raises((ValueError, TypeError), match=message):
        aekit.Autoencoder((2,), epochs=1).fit(X)


def test_wrong_feature_count_at_transform(digits):
    X, _ = digits
    est = aekit.Autoencoder((8,), epochs=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="63 features, but Autoencoder is expecting 64"):
        est.transform(X[:, :63])
    with pytest.raises(ValueError, match="codings have 3 columns, but the coding layer has 8 units"):
        est.inverse_transform(np.zeros((2, 3)))


def test_bce_needs_unit_range():
    with pytest.raises(aekit.DataError, match=r"loss='bce' needs X in \[0, 1\]"):
        aekit.Autoencoder((2,), loss="bce", epochs=1).fit(np.array([[0.0, 2.0], [1.0, 0.5]]))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="learning_rate"):
        aekit.Autoencoder(learning_rate=-1).fit(np.ones((4, 2)))
    with pytest.raises(ValueError, match="activation"):
        aekit.Autoencoder(activation="swishy").fit(np.ones((4, 2)))
