"""Semantic hashing autoencoder: a stacked autoencoder whose logistic coding layer is pushed to binary codes.

Salakhutdinov & Hinton (2008), "Semantic hashing": during training only, zero-mean Gaussian noise is added to the
coding layer's inputs (its pre-activations, before the sigmoid); to carry information through the noise the
encoder learns to saturate each coding unit at 0 or 1, so rounding the codings loses little. The hash of an item
is its codings rounded to bits. Géron, Hands-On ML ch. 15/17, exercise "semantic hashing".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ..errors import CheckpointError, ConfigError, DataError
from ..estimators.base import AutoencoderEstimator
from ..estimators.parts import ImageShape, Layers, Reconstruction, Training
from ..io import Checkpoint
from ..params import Flag, Param, non_negative_float, positive_int
from ..registry import register_estimator, register_model
from .dense import DenseAutoencoder

# the index travels in the checkpoint's training_state.safetensors under these keys (see ``_checkpoint_state``)
_INDEX_CODES, _INDEX_IDS = "index.codes", "index.ids"


@register_model("hashing")
class HashingAutoencoder(DenseAutoencoder):
    """``n_features - hidden_layers - n_bits (sigmoid) - reversed(hidden_layers) - n_features``.

    ``noise_std`` is the standard deviation of the Gaussian noise added to the coding layer's pre-activations in
    training mode only (``model.training``); in eval mode the codings are deterministic.
    """

    def __init__(
        self,
        n_features: int,
        hidden_layers: Sequence[int] = (500, 250),
        n_bits: int = 30,
        activation: str = "elu",
        init: str = "he",
        noise_std: float = 2.0,
        output_activation: str = "sigmoid",
        tie_weights: bool = False,
        seed: int | None = None,
    ) -> None:
        hidden_layers = [int(h) for h in hidden_layers]
        if int(n_bits) < 1:
            raise ConfigError(f"n_bits must be a positive number of bits, got {n_bits}")
        if not float(noise_std) >= 0:
            raise ConfigError(f"noise_std must be >= 0, got {noise_std}")
        super().__init__(n_features, [*hidden_layers, int(n_bits)], activation=activation, init=init,
                         tie_weights=tie_weights, output_activation=output_activation, coding_activation="sigmoid",
                         seed=seed)
        # rebuilds this model (DenseAutoencoder reads tie_weights from here)
        self.config = dict(n_features=int(n_features), hidden_layers=hidden_layers, n_bits=int(n_bits),
                           activation=activation, init=init, noise_std=float(noise_std),
                           output_activation=output_activation, tie_weights=bool(tie_weights))
        self.noise_std = float(noise_std)

    @property
    def n_bits(self) -> int:
        return self.config["n_bits"]

    @property
    def n_codings(self) -> int:
        return self.config["n_bits"]

    def coding_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations of the coding layer, without noise: (batch, n_bits). A bit is 1 where this is > 0."""
        for layer in self.encoder[:-1]:
            x = self.act(layer(x))
        return self.encoder[-1](x)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.coding_logits(x)
        if self.training and self.noise_std > 0:
            logits = logits + self.noise_std * torch.randn_like(logits)  # training only: drives codings to 0/1
        return torch.sigmoid(logits)  # (batch, n_bits)

    def bits(self, x: torch.Tensor) -> torch.Tensor:
        """The hash as booleans: codings rounded (coding > 0.5), noise-free. (batch, n_bits)."""
        return self.coding_logits(x) > 0

    def packed_bits(self, x: torch.Tensor) -> torch.Tensor:
        """The hash packed as :func:`aekit.hashing.index.pack_bits` packs it: bit i in bit i % 8 of byte i // 8,
        zero padding last. (batch, ceil(n_bits / 8)) uint8; packed per chunk, so hashing a streamed data set holds
        one byte per 8 bits."""
        bits = self.bits(x).to(torch.uint8)
        bits = torch.nn.functional.pad(bits, (0, -bits.shape[1] % 8)).view(len(bits), -1, 8)
        return (bits << torch.arange(8, dtype=torch.uint8, device=bits.device)).sum(-1, dtype=torch.uint8)


@register_estimator("SemanticHasher")
class SemanticHasher(AutoencoderEstimator):
    """Semantic hashing: a stacked autoencoder whose logistic coding layer of ``n_bits`` units, trained with
    Gaussian noise on its inputs, gives binary codes; similar items share a code or differ by a few bits.

    ``n_features - hidden_layers - n_bits (sigmoid) - reversed(hidden_layers) - n_features``. The hash of an item
    is its codings rounded to bits; :meth:`index` stores hashes in a Hamming index (faiss binary indexes) and
    :meth:`query` finds the items within a Hamming radius or the k nearest. ``transform`` gives the codings (the
    sigmoid outputs, no noise), ``predict`` the reconstructions.

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
    positional = ("n_bits",)
    own_params = (
        Param("n_bits", 30, positive_int(), "Size of the coding layer, i.e. bits per hash.", type="int",
              flag=Flag("--bits"), small=4),
        Param("noise_std", 2.0, non_negative_float(),
              "Standard deviation of the zero-mean Gaussian noise added to the coding layer's pre-activations "
              "(before the sigmoid), in training only. It drives the codings to saturate at 0 or 1.", type="float"),
    )
    parts = (
        Layers(hidden_layers=(500, 250), init="he"),  # the init docs/results.md's hashing numbers were measured with
        Reconstruction("auto", ("bce", "mse"), auto="mse",
                       doc="Reconstruction loss; ``\"bce\"`` (cross-entropy from logits, sigmoid outputs) needs X in "
                           "[0, 1]; ``\"mse\"`` uses linear outputs."),
        ImageShape(),
        Training(epochs=15),
    )

    def _model_config(self, n_features: int) -> dict[str, Any]:
        return dict(n_features=n_features, hidden_layers=list(self.hidden_layers), n_bits=int(self.n_bits),
                    activation=self.activation, init=Layers.resolved_init(self), noise_std=float(self.noise_std),
                    output_activation=self._output_activation())

    def fit(self, X: Any, y: Any = None) -> SemanticHasher:
        """Train the hashing autoencoder on ``X`` (n_samples, n_features); ``y`` is ignored.

        The index is emptied: hashes from an earlier model would not match the new one; call :meth:`index`.
        """
        from ..hashing.index import HammingIndex

        self.__dict__.pop("index_", None)  # before training: per-epoch checkpoints must not save stale hashes
        super().fit(X, y)
        self.index_ = HammingIndex(self.model_.n_bits)
        return self

    # -- hashing -------------------------------------------------------------------------------------------------
    def bits(self, X: Any) -> np.ndarray:
        """The hashes of ``X`` unpacked: (n_samples, n_bits) bool, the codings rounded."""
        check_is_fitted(self, "model_")
        return self._map(self.model_.bits, self._validate(X, reset=False))

    def hash(self, X: Any) -> np.ndarray:
        """The hashes of ``X`` packed: (n_samples, ceil(n_bits / 8)) uint8, bit ``i`` in bit ``i % 8`` of byte
        ``i // 8`` (little-endian, as faiss's binary indexes take them; padding bits are 0)."""
        check_is_fitted(self, "model_")
        return self._map(self.model_.packed_bits, self._validate(X, reset=False))

    def index(self, X: Any, ids: Any = None, *, append: bool = False) -> SemanticHasher:
        """Hash ``X`` and store the hashes under ``ids`` (default: row numbers, continuing after the items already
        indexed when appending). Replaces the index unless ``append``. Returns ``self``."""
        from ..hashing.index import HammingIndex

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

    # -- persistence: the index is its packed codes and ids, saved with the checkpoint ---------------------------
    def _config(self) -> dict[str, Any]:
        config = super()._config()
        index = getattr(self, "index_", None)
        config["extra"] = {**config["extra"], "index": {"size": len(index) if index is not None else 0,
                                                        "n_bits": int(self.model_.n_bits), "bit_order": "little"}}
        return config

    def _checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The training state plus the index, as its packed codes and ids (``index.codes``, ``index.ids``), covered
        by the checkpoint's checksums; faiss's tables are rebuilt on load."""
        state = dict(self._train_state)
        index = getattr(self, "index_", None)
        if index is not None and len(index):
            arrays = index.state()
            state[_INDEX_CODES] = torch.from_numpy(arrays["codes"])
            state[_INDEX_IDS] = torch.from_numpy(arrays["ids"])
        return state

    @classmethod
    def _from_checkpoint(cls, ckpt: Checkpoint, device: str | None = None) -> SemanticHasher:
        from ..hashing.index import HammingIndex

        est = super()._from_checkpoint(ckpt, device)
        codes, ids = est._train_state.pop(_INDEX_CODES, None), est._train_state.pop(_INDEX_IDS, None)
        saved = est.checkpoint_extra_.get("index", {}) if isinstance(est.checkpoint_extra_, dict) else {}
        try:
            size = int(saved.get("size", 0))
        except (TypeError, ValueError):
            size = -1
        if (codes is None) != (ids is None) or (codes is not None and len(codes) != size) or (codes is None and size):
            raise CheckpointError(f"checkpoint index is inconsistent: config says {size} items, the state holds "
                                  f"{0 if codes is None else len(codes)} codes and {0 if ids is None else len(ids)} ids")
        est.index_ = HammingIndex(est.model_.n_bits)
        if codes is not None:
            est.index_.add(codes.numpy(), ids.numpy())
        return est
