"""Reproductions on MNIST (the book's reference model). Slow: run with ``pytest -m slow``."""

import numpy as np
import pytest

import aekit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mnist(data_dir):
    ds = aekit.load_dataset("mnist")
    return ds.X_train, ds.X_test


def book_model(**kwargs):
    return aekit.Autoencoder((300, 150), activation="elu", init="he", batch_size=150, epochs=5, random_state=0,
                             device="cpu", **kwargs)


def test_default_settings_reach_0_0065(mnist):
    X, X_test = mnist
    assert -book_model().fit(X).score(X_test) <= 0.0065


def test_book_recipe_and_tied(mnist):
    X, X_test = mnist
    book = -book_model(learning_rate=0.01, l2=1e-4).fit(X).score(X_test)
    assert 0.008 < book < 0.013  # plain PyTorch with this recipe: ~0.015; the book's last train batch: 0.0104
    tied = book_model(tie_weights=True).fit(X)
    assert sum(p.numel() for p in tied.model_.parameters()) == 281734
    assert -tied.score(X_test) <= 0.0065


def test_mnist_loader_feeds_the_estimator(mnist):
    X, X_test = mnist
    assert X.dtype == np.float32 and X.shape == (60000, 784) and X_test.shape == (10000, 784)
