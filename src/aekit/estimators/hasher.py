"""``aekit.SemanticHasher``: semantic hashing (Salakhutdinov & Hinton 2008) as a scikit-learn transformer with a
Hamming index: ``fit``, ``hash`` (packed bits), ``index``, ``query`` by radius or k nearest neighbours."""

from __future__ import annotations

import os
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..errors import CheckpointError, DataError
from ..hashing.index import HammingIndex, pack_bits
from ..io import Checkpoint, save_checkpoint
from ..losses import Objective
from ..models.base import AutoencoderModule, build_model
from ..nn.layers import ACTIVATIONS, INITS
from ..registry import register_estimator
from ..training import ReconstructionStep, make_optimizer
from ..training.distributed import distributed
from .base import TRAINING_PARAMETERS, TorchEstimator

# the index travels in the checkpoint's training_state.safetensors under these keys (see ``save``)
_INDEX_CODES, _INDEX_IDS = "index.codes", "index.ids"


@register_estimator("SemanticHasher")
class SemanticHasher(ClassNamePrefixFeaturesOutMixin, TransformerMixin, TorchEstimator):
    """Semantic hashing: a stacked autoencoder whose logistic coding layer of ``n_bits`` units, trained with
    Gaussian noise on its inputs, gives binary codes; similar items share a code or differ by a few bits.

    ``n_features - hidden_layers - n_bits (sigmoid) - reversed(hidden_layers) - n_features``. The hash of an item
    is its codings rounded to bits; :meth:`index` stores hashes in a Hamming index (faiss binary indexes) and
    :meth:`query` finds the items within a Hamming radius or the k nearest.

    Parameters
    ----------
    n_bits : int, default=30
        Size of the coding layer, i.e. bits per hash.
    hidden_layers : sequence of int, default=(500, 250)
        The encoder's hidden layers below the coding layer (the decoder mirrors them).
    activation : {"elu", "selu", "relu", "sigmoid", "tanh", "linear"}, default="elu"
    init : {"he", "lecun", "xavier"}, default="he"
    noise_std : float, default=2.0
        Standard deviation of the zero-mean Gaussian noise added to the coding layer's pre-activations
        (before the sigmoid), in training only. It drives the codings to saturate at 0 or 1.
    loss : {"bce", "mse"}, default="bce"
        Reconstruction loss; ``"bce"`` (cross-entropy from logits, sigmoid outputs) needs X in [0, 1];
        ``"mse"`` uses linear outputs.
    l2 : float, default=0.0
        L2 on weight matrices (never biases), ``l2/2 * sum(W**2)``.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    learning_rate : float, default=1e-3
    batch_size : int, default=150
    epochs : int, default=15
    early_stopping : bool, default=False
    validation_fraction : float, default=0.1
    patience : int, default=10
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling and the coding noise.
    device : str, default="auto"
    checkpoint_dir : str or None, default=None
        If set, a checkpoint folder is written there after every epoch.
    warm_start : bool, default=False
    image_shape : tuple or None, default=None
    verbose : int, default=0

    Attributes
    ----------
    model_ : aekit.models.hashing.HashingAutoencoder
    index_ : aekit.hashing.HammingIndex
        The hashes stored by :meth:`index` (empty after ``fit``: a refitted model hashes differently).
    history_ : list of dict
    n_epochs_ : int
    n_features_in_ : int
    """

    model_name = "hashing"

    _parameter_constraints: dict = {
        **TRAINING_PARAMETERS,
        "n_bits": [Interval(Integral, 1, None, closed="left")],
        "hidden_layers": ["array-like"],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "init": [StrOptions(set(INITS))],
        "noise_std": [Interval(Real, 0, None, closed="left")],
        "loss": [StrOptions({"mse", "bce"})],
        "image_shape": ["array-like", None],
    }

    def __init__(
        self,
        n_bits: int = 30,
        *,
        hidden_layers: tuple[int, ...] = (500, 250),
        activation: str = "elu",
        init: str = "he",
        noise_std: float = 2.0,
        loss: str = "bce",
        l2: float = 0.0,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        batch_size: int = 150,
        epochs: int = 15,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        patience: int = 10,
        random_state: Any = None,
        device: str = "auto",
        checkpoint_dir: str | None = None,
        warm_start: bool = False,
        image_shape: tuple[int, ...] | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_bits = n_bits
        self.hidden_layers = hidden_layers
        self.activation = activation
        self.init = init
        self.noise_std = noise_std
        self.loss = loss
        self.l2 = l2
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.warm_start = warm_start
        self.image_shape = image_shape
        self.verbose = verbose

    # -- hooks for TorchEstimator --------------------------------------------------------------------------
    def _build_model(self, n_features: int, seed: int) -> AutoencoderModule:
        config = dict(n_features=n_features, hidden_layers=list(self.hidden_layers), n_bits=int(self.n_bits),
                      activation=self.activation, init=self.init, noise_std=float(self.noise_std),
                      output_activation="sigmoid" if self.loss == "bce" else "linear")
        return build_model(self.model_name, {**config, "seed": seed})

    def _make_step(self, model: AutoencoderModule) -> ReconstructionStep:
        optimizer = make_optimizer(self.optimizer, model.parameters(), model.regularized_weights(),
                                   self.learning_rate, self.l2)
        return ReconstructionStep(distributed(model), Objective(self.loss), optimizer)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> SemanticHasher:
        """Train the hashing autoencoder on ``X`` (n_samples, n_features); ``y`` is ignored.

        The index is emptied: hashes from an earlier model would not match the new one; call :meth:`index`.
        """
        self.__dict__.pop("index_", None)  # before training: per-epoch checkpoints must not save stale hashes
        super().fit(X, y)
        self.index_ = HammingIndex(self.model_.n_bits)
        return self

    # -- hashing -------------------------------------------------------------------------------------------
    @property
    def _n_features_out(self) -> int:
        return int(self.model_.n_bits)

    def transform(self, X: Any) -> np.ndarray:
        """Codings (the sigmoid outputs, no noise) of ``X``: (n_samples, n_bits) float32 in (0, 1)."""
        check_is_fitted(self, "model_")
        return self._map(self.model_.encode, self._validate(X, reset=False))

    def predict(self, X: Any) -> np.ndarray:
        """Reconstructions of ``X`` (no noise: the codings are the clean sigmoid outputs)."""
        check_is_fitted(self, "model_")
        return self._map(self.model_.reconstruct, self._validate(X, reset=False))

    def bits(self, X: Any) -> np.ndarray:
        """The hashes of ``X`` unpacked: (n_samples, n_bits) bool, the codings rounded."""
        check_is_fitted(self, "model_")
        return self._map(self.model_.bits, self._validate(X, reset=False))

    def hash(self, X: Any) -> np.ndarray:
        """The hashes of ``X`` packed: (n_samples, ceil(n_bits / 8)) uint8, bit ``i`` in bit ``i % 8`` of byte
        ``i // 8`` (little-endian, as faiss's binary indexes take them; padding bits are 0)."""
        return pack_bits(self.bits(X))

    def index(self, X: Any, ids: Any = None, *, append: bool = False) -> SemanticHasher:
        """Hash ``X`` and store the hashes under ``ids`` (default: row numbers, continuing after the items already
        indexed when appending). Replaces the index unless ``append``. Returns ``self``."""
        codes = self.hash(X)
        if not append or not hasattr(self, "index_"):
            self.index_ = HammingIndex(self.model_.n_bits)
        self.index_.add(codes, None if ids is None else np.asarray(ids))
        return self

    def query(self, X: Any, radius: int | None = None, k: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Indexed items near each row of ``X`` in Hamming space: give exactly one of ``radius`` (every item at
        distance ``<= radius``) or ``k`` (the ``k`` nearest).

        Returns
        -------
        ids, distances : list of arrays
            One int64 array of ids and one int32 array of Hamming distances per row of ``X``, sorted by
            distance (then by insertion order).
        """
        check_is_fitted(self, "model_")
        if (radius is None) == (k is None):
            raise DataError("give exactly one of radius= (Hamming radius, >= 0) or k= (number of neighbours)")
        index = getattr(self, "index_", None)
        if index is None or len(index) == 0:
            raise DataError("the index is empty: call index(X) before query(...)")
        codes = self.hash(X)
        return index.range_search(codes, radius) if k is None else index.search(codes, k)

    # -- persistence: the index is its packed codes and ids, saved with the checkpoint ---------------------
    def _config(self) -> dict[str, Any]:
        config = super()._config()
        index = getattr(self, "index_", None)
        config["extra"] = {**config["extra"], "index": {"size": len(index) if index is not None else 0,
                                                        "n_bits": int(self.model_.n_bits), "bit_order": "little"}}
        return config

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted hasher and its index to a checkpoint folder (safetensors + JSON, atomic, no pickle).

        The index is stored as its packed codes and ids (``index.codes``, ``index.ids``) in
        ``training_state.safetensors``, covered by the checkpoint's checksums; faiss's tables are rebuilt on load.
        """
        state = dict(self._train_state)
        index = getattr(self, "index_", None)
        if index is not None and len(index):
            arrays = index.state()
            state[_INDEX_CODES] = torch.from_numpy(arrays["codes"])
            state[_INDEX_IDS] = torch.from_numpy(arrays["ids"])
        return save_checkpoint(path, self._config(), self.model_.state_dict(), state, self._state_meta,
                               self.history_)

    @classmethod
    def _from_checkpoint(cls, ckpt: Checkpoint, device: str | None = None) -> SemanticHasher:
        est = super()._from_checkpoint(ckpt, device)
        est._train_state = dict(est._train_state)
        codes, ids = est._train_state.pop(_INDEX_CODES, None), est._train_state.pop(_INDEX_IDS, None)
        saved = est.checkpoint_extra_.get("index", {})
        size = int(saved.get("size", 0))
        if (codes is None) != (ids is None) or (codes is not None and len(codes) != size) or (codes is None and size):
            raise CheckpointError(f"checkpoint index is inconsistent: config says {size} items, the state holds "
                                  f"{0 if codes is None else len(codes)} codes and {0 if ids is None else len(ids)} ids")
        est.index_ = HammingIndex(est.model_.n_bits)
        if codes is not None:
            est.index_.add(codes.numpy(), ids.numpy())
        return est

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
