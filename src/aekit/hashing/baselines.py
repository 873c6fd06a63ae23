"""Baselines that hash to the same number of bits as the semantic hasher, each with ``fit`` and ``hash``:

* :class:`LSHHasher`: random-projection LSH (Charikar 2002, "Similarity estimation techniques from rounding
  algorithms"): the sign of ``(x - mean) @ w`` for ``n_bits`` Gaussian directions ``w``. Data-independent.
* :class:`PCAITQHasher`: PCA-ITQ (Gong & Lazebnik 2011, "Iterative quantization: a Procrustean approach to
  learning binary codes"): PCA to ``n_bits`` dimensions, then the orthogonal rotation ``R`` that minimises the
  quantisation loss ``||B - V R||_F`` by alternating ``B = sign(V R)`` and an orthogonal Procrustes step.
* :class:`SupervisedHasher`: the exercise's supervised variant (Géron, semantic hashing exercise): a classifier
  whose penultimate layer has ``n_bits`` units through a sigmoid; the hash is that layer rounded. It uses the
  labels, so it is an upper reference rather than a competitor of the unsupervised hashers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils import check_random_state
from torch import nn

from ..errors import DataError
from ..nn.layers import activation as get_activation
from ..nn.layers import linear_layers
from ..training import make_optimizer, map_batches, train
from ..training.steps import NonFiniteLoss
from .index import pack_bits


def _as_float(X: np.ndarray, n_features: int | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise DataError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise DataError(f"X has {X.shape[1]} features, but the hasher was fitted on {n_features}")
    return X


class LSHHasher:
    """Random-projection LSH: bit j of x is ``(x - mean) . w_j > 0`` with ``w_j ~ N(0, I)``."""

    def __init__(self, n_bits: int = 30, random_state: int | None = 0) -> None:
        self.n_bits = n_bits
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> LSHHasher:
        X = _as_float(X)
        self.mean_ = X.mean(axis=0)
        self.projection_ = check_random_state(self.random_state).standard_normal((X.shape[1], self.n_bits))
        self.projection_ = self.projection_.astype(np.float32)
        return self

    def bits(self, X: np.ndarray) -> np.ndarray:
        return (_as_float(X, len(self.mean_)) - self.mean_) @ self.projection_ > 0

    def hash(self, X: np.ndarray) -> np.ndarray:
        return pack_bits(self.bits(X))


class PCAITQHasher:
    """PCA to ``n_bits`` components, then ITQ's rotation (``n_iter`` alternations), then the sign."""

    def __init__(self, n_bits: int = 30, n_iter: int = 50, random_state: int | None = 0) -> None:
        self.n_bits = n_bits
        self.n_iter = n_iter
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> PCAITQHasher:
        X = _as_float(X)
        if self.n_bits > min(X.shape):
            raise DataError(f"PCA-ITQ needs n_bits <= min(n_samples, n_features) = {min(X.shape)}, got {self.n_bits}")
        from sklearn.decomposition import PCA

        self.pca_ = PCA(self.n_bits, random_state=self.random_state).fit(X)
        V = self.pca_.transform(X).astype(np.float64)  # (n, n_bits), centred
        rng = check_random_state(self.random_state)
        R, _ = np.linalg.qr(rng.standard_normal((self.n_bits, self.n_bits)))  # random orthogonal start
        self.quantization_loss_ = []
        for _ in range(self.n_iter):
            B = np.where(V @ R >= 0, 1.0, -1.0)
            # orthogonal Procrustes: R = argmax tr(B^T V R) over rotations; V^T B = U S W^T gives R = U W^T
            U, _, Wt = np.linalg.svd(V.T @ B)
            R = U @ Wt
            self.quantization_loss_.append(float(((B - V @ R) ** 2).sum() / len(V)))
        self.rotation_ = R.astype(np.float32)
        return self

    def bits(self, X: np.ndarray) -> np.ndarray:
        V = self.pca_.transform(_as_float(X, self.pca_.n_features_in_)).astype(np.float32)
        return V @ self.rotation_ >= 0

    def hash(self, X: np.ndarray) -> np.ndarray:
        return pack_bits(self.bits(X))


class _BitClassifier(nn.Module):
    """``features - hidden_layers - n_bits (sigmoid) - n_classes``; the sigmoid layer is the code."""

    def __init__(self, n_features: int, hidden_layers: Sequence[int], n_bits: int, n_classes: int,
                 activation: str, noise_std: float, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.body = linear_layers([n_features, *hidden_layers, n_bits], "he", generator)
        self.head = linear_layers([n_bits, n_classes], "xavier", generator)[0]
        self.act = get_activation(activation)
        self.noise_std = noise_std

    def coding_logits(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.body[:-1]:
            x = self.act(layer(x))
        return self.body[-1](x)  # (batch, n_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.coding_logits(x)
        if self.training and self.noise_std > 0:
            logits = logits + self.noise_std * torch.randn_like(logits)
        return self.head(torch.sigmoid(logits))  # class logits (batch, n_classes)


class _ClassificationStep:
    """Cross-entropy on class indices; the one loop drives it like any other step."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer

    def train_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = F.cross_entropy(self.model(inputs), targets)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"loss is {loss.item()}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def eval_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": F.cross_entropy(self.model(inputs), targets)}


class SupervisedHasher:
    """A classifier's penultimate layer (``n_bits`` sigmoid units) rounded to bits; trained with the one loop."""

    def __init__(self, n_bits: int = 30, hidden_layers: Sequence[int] = (500,), activation: str = "elu",
                 noise_std: float = 0.0, learning_rate: float = 1e-3, batch_size: int = 150, epochs: int = 5,
                 random_state: int = 0) -> None:
        self.n_bits = n_bits
        self.hidden_layers = hidden_layers
        self.activation = activation
        self.noise_std = noise_std
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> SupervisedHasher:
        X = _as_float(X)
        if y is None or len(y) != len(X):
            raise DataError("SupervisedHasher needs one label per row of X")
        self.classes_, y_index = np.unique(np.asarray(y), return_inverse=True)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self.model_ = _BitClassifier(X.shape[1], self.hidden_layers, self.n_bits, len(self.classes_),
                                     self.activation, self.noise_std, seed)
        optimizer = make_optimizer("adam", self.model_.parameters(), [], self.learning_rate)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.history_ = train(_ClassificationStep(self.model_, optimizer), torch.from_numpy(X),
                                  torch.from_numpy(y_index.reshape(-1).astype(np.int64)), epochs=self.epochs,
                                  batch_size=self.batch_size, generator=torch.Generator().manual_seed(seed),
                                  description="SupervisedHasher")
        self.model_.eval()
        self.n_features_in_ = X.shape[1]
        return self

    def bits(self, X: np.ndarray) -> np.ndarray:
        X = torch.from_numpy(_as_float(X, self.n_features_in_))
        self.model_.eval()
        return map_batches(lambda xb: self.model_.coding_logits(xb) > 0, X).numpy()

    def hash(self, X: np.ndarray) -> np.ndarray:
        return pack_bits(self.bits(X))

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Classification accuracy (how good the classifier under the codes is)."""
        X = torch.from_numpy(_as_float(X, self.n_features_in_))
        pred = map_batches(lambda xb: self.model_(xb).argmax(dim=1), X).numpy()
        return float((self.classes_[pred] == np.asarray(y)).mean())
